// The pool's threads as the step protocol uses them: one fixed piscina pool, each of whose `workers`
// threads runs one loop task for the pool's life (contract.ts). Here the loop tasks are posted (again,
// after a thread died), datasets reach every worker's port, a worker's end is reported with the shard it
// was on, and stuck threads are stopped. What the protocol does about a death is the coordinator's.

import { once } from 'node:events';
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { GradpoolError } from '../errors.js';
import { workerFile } from './worker-entry.js';
import { kCtlGeneration, kWorkShard, kWorkThread, workField, type DatasetBuffers, type LoopTask, type WorkerInit } from '../../shared/contract.js';

/** A worker whose loop task ended with an error, what it was computing (-1: no shard) and why. */
export interface Death {
  worker: number;
  shard: number;
  error: Error;
}

/** How long close() waits for the loops to leave before it ends the threads regardless. */
const CLOSE_GRACE_MS = 5000;
/** How long a worker that flagged its own failure may take for its task to reject. */
const DEATH_SETTLE_MS = 10_000;

export class WorkerLoops {
  /** Workers whose loop ended with an error since the last clearDeaths(). */
  deaths: Death[] = [];
  /** The error of a worker thread that could not start (out of memory under workerHeapMb, say), or
   *  null. piscina starts no thread after one fails while starting, so the pool cannot run again. */
  startFailure: Error | null = null;
  private readonly pool: Piscina;
  private readonly control: Int32Array;
  /** Per worker: the port its datasets go to, its loop task's abort controller, and whether it runs. */
  private readonly ports: MessagePort[] = [];
  private readonly stops: AbortController[] = [];
  private readonly loops: (Promise<void> | null)[] = [];
  /** Datasets posted to the workers and not yet released (posted again to a replacement worker). */
  private readonly posted = new Map<number, DatasetBuffers>();
  private closed = false;

  /** Starts `workers` threads on `workerData` and their loops; `onDeath` is told of each that ends. */
  constructor(
    workerData: WorkerInit, private readonly workers: number, workerHeapMb: number | null, private readonly onDeath: (w: number) => void,
  ) {
    this.control = new Int32Array(workerData.control);
    this.pool = new Piscina({
      filename: workerFile(),
      // Stack traces of a bundled worker (from source) point into the TypeScript.
      execArgv: ['--enable-source-maps'],
      workerData,
      minThreads: workers,
      maxThreads: workers,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: 1,
      ...(workerHeapMb === null ? {} : { resourceLimits: { maxOldGenerationSizeMb: workerHeapMb } }),
    });
    // A thread that fails while starting, before it has a task, is reported as an 'error' event, which
    // would end the process if nothing listened.
    this.pool.on('error', (err: unknown) => {
      this.startFailure ??= err instanceof Error ? err : new Error(String(err));
    });
    // One loop task per worker for the pool's life (see contract.ts). With one task per worker at a
    // time, the `workers` tasks land on `workers` distinct threads.
    for (let w = 0; w < workers; w++) this.startLoop(w);
  }

  /** Posts worker w's loop task (again, after a failure: piscina has replaced a thread that died). */
  private startLoop(w: number): void {
    this.ports[w]?.close();
    const { port1, port2 } = new MessageChannel();
    port1.unref();
    this.ports[w] = port1;
    for (const buffers of this.posted.values()) port1.postMessage(buffers);
    const stop = new AbortController();
    this.stops[w] = stop;
    Atomics.store(this.control, workField(w, kWorkThread), 0); // until the loop starts
    const task: LoopTask = { worker: w, port: port2, generation: Atomics.load(this.control, kCtlGeneration) };
    this.loops[w] = this.pool.run(task, { transferList: [port2], signal: stop.signal }).then(() => undefined, (err: unknown) => {
      this.loops[w] = null;
      if (this.closed) return;
      let error = err instanceof Error ? err : new Error(String(err));
      if (error.name === 'AbortError' && error.cause instanceof Error) error = error.cause; // stopped: say why
      // A loop that never wrote its threadId ended with its thread's start-up.
      if (Atomics.load(this.control, workField(w, kWorkThread)) === 0) {
        this.startFailure ??= error;
        return;
      }
      this.deaths.push({ worker: w, shard: Atomics.load(this.control, workField(w, kWorkShard)), error });
      this.onDeath(w);
    });
  }

  /** Before a command: a loop for every worker whose loop ended, and no deaths on record. */
  restart(): void {
    if (this.closed) throw new GradpoolError('this Trainer is closed', 'create a new one');
    for (let w = 0; w < this.workers; w++) if (this.loops[w] === null) this.startLoop(w);
    this.deaths = [];
  }

  /** Posts a dataset to every worker that has not seen it (a worker maps it at its next command). */
  post(buffers: DatasetBuffers): void {
    if (this.posted.has(buffers.id)) return;
    for (const port of this.ports) port.postMessage(buffers);
    this.posted.set(buffers.id, buffers);
  }

  /** Tells the workers to drop a dataset they will not be asked for again. */
  release(id: number): void {
    if (!this.posted.delete(id)) return;
    for (const port of this.ports) port.postMessage({ release: id });
  }

  /** A worker that threw stamps itself done before its task rejects: waits (bounded) for the rejection. */
  async settleDeaths(): Promise<void> {
    const deadline = performance.now() + DEATH_SETTLE_MS;
    while (this.deaths.length === 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1));
    if (this.deaths.length === 0) throw new Error('a worker reported a failure but its task did not end; the pool is unusable');
  }

  /** The workers whose loop has not started (written its threadId) yet. */
  notStarted(): number[] {
    const waiting: number[] = [];
    for (let w = 0; w < this.workers; w++) if (Atomics.load(this.control, workField(w, kWorkThread)) === 0) waiting.push(w);
    return waiting;
  }

  /** Stops the loops of these workers (their threads end, and each is reported as a death with `why`),
   *  and waits for their threads to exit. */
  async stop(workers: number[], why: (w: number) => Error): Promise<void> {
    const exits: Promise<unknown>[] = [];
    for (const w of workers) {
      if (this.loops[w] === null) continue;
      const thread = this.thread(w);
      if (thread !== undefined) exits.push(once(thread, 'exit'));
      this.stops[w].abort(why(w));
    }
    await Promise.all(exits);
  }

  /** The thread running worker w's loop, by the threadId it wrote at start. */
  private thread(w: number): Worker | undefined {
    const id = Atomics.load(this.control, workField(w, kWorkThread));
    return this.pool.threads.find((t) => t.threadId === id);
  }

  /** Ends the pool once the loops have left (the caller has posted the stop), or after a grace period:
   *  a worker stuck in a command would never read the stop. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.race([Promise.all(this.loops), new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS).unref())]);
    for (const port of this.ports) port.close();
    await this.pool.destroy();
  }
}
