// The step protocol on the coordinator's side: one fixed piscina pool whose workers each run one loop
// task, the shared parameter, gradient, stats and control buffers they were started with; step(), which
// posts a batch and its hyperparameters as one command that the workers carry through to the updated
// parameters, and forward(), which posts a batch to evaluate. Between commands the workers sleep.

import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { once } from 'node:events';
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import {
  allStamped, controlFields, HYPER_FIELDS, kCmdForward, kCmdStep, kCmdStop, kCtlArrivals, kCtlCommand,
  kCtlDataset, kCtlEnd, kCtlFailed, kCtlGeneration, kCtlParity, kCtlShardRows, kCtlShards, kCtlStart, kCtlTasks,
  kPhaseDone, kWorkShard, kWorkStamp, kWorkThread, stamp, stampOf, workField,
  kHypFirst, kHypLr, kHypMaxNorm, kHypMomentum, kHypNormType, kStatComputeMs, kStatLossSum, kTimeReduceMs, kTimeUpdateMs,
  STAT_FIELDS, stateLayout, stateViews, taskShards, TIME_FIELDS, type LoopTask, type WorkerInit,
} from '../shared/contract.js';
import { createSharedMemory } from '../shared/wasm.js';
import { NORM_FIELDS, normChunks } from '../shared/clip.js';
import { paramLayout, type ModelConfig } from '../shared/model.js';
import type { LossSpec } from '../shared/losses.js';
import type { SGDOptions } from '../shared/sgd.js';
import { decideStep, readBatchSums, type BatchSums, type StepDecision } from '../shared/step.js';
import type { SharedDataset } from './data.js';
import { ShardFailure } from './errors.js';
import { checkLength, checkMemory } from './memory.js';
import type { Reduction } from './options.js';

/** What the pool is built with (a subset of the Trainer's resolved options). */
export interface PoolOptions {
  workers: number;
  /** Shard slots: a batch is cut into at most this many shards. */
  shards: number;
  batchSize: number;
  reduction: Reduction;
  kernels: 'wasm' | 'js';
  /** Re-runs of a shard whose worker failed before the command gives up. */
  shardRetries: number;
  /** Milliseconds a command may go without any worker making progress before the stuck ones are stopped. */
  workerTimeout: number;
  /** V8 old-generation heap limit per worker in MB (piscina's resourceLimits), or null for Node's default. */
  workerHeapMb: number | null;
}

/** A step's hyperparameters: the schedule's lr and momentum, and clipping (maxNorm null: none). */
export interface StepHyper {
  lr: number;
  momentum: number;
  maxNorm: number | null;
  normType: number;
}

/** Where a batch's time went on the coordinator's clock, in milliseconds. */
export interface BatchTiming {
  /** The slowest task's compute: the critical path of the parallel part. */
  computeMaxMs: number;
  /** Compute summed over every task (worker-milliseconds). */
  computeSumMs: number;
  /** The slowest worker's share of summing the gradient slots (a step only). */
  reduceMs: number;
  /** The slowest worker's share of clipping and SGD (a step only). */
  updateMs: number;
  tasks: number;
}

// The worker is TypeScript when gradpool runs from source (tests, `npm run train`) and JavaScript when
// it runs from dist/. From source, each worker thread loads tsx, resolved from this package, so that
// it can import the .ts worker whatever the caller's own loader is.
function workerEntry(): { filename: string; execArgv: string[] | undefined } {
  const fromSource = import.meta.url.endsWith('.ts');
  const filename = fileURLToPath(new URL(`../worker/worker.${fromSource ? 'ts' : 'js'}`, import.meta.url));
  if (!fromSource) return { filename, execArgv: undefined };
  const tsx = createRequire(import.meta.url).resolve('tsx');
  return { filename, execArgv: ['--import', pathToFileURL(tsx).href] };
}

/** How long close() waits for the loops to leave before it ends the threads regardless. */
const CLOSE_GRACE_MS = 5000;
/** How long a worker that flagged its own failure may take for its task to reject. */
const DEATH_SETTLE_MS = 10_000;
/** The main thread's Atomics.wait slice while a command runs: between slices the event loop turns. */
const WAIT_SLICE_MS = 20;

export class Coordinator {
  readonly model: ModelConfig;
  readonly P: number;
  /** True once SGD's momentum buffer has started (torch's first step with momentum is done). */
  hasMomentumBuffer = false;
  readonly workers: number;
  readonly slots: number;
  readonly maxShardRows: number;
  private readonly paramHalves: [Float32Array, Float32Array];
  private readonly slotViews: Float32Array[];
  private readonly momentumHalves: [Float32Array, Float32Array];
  private readonly stats: Float64Array;
  private readonly times: Float64Array;
  private readonly partials: Float64Array;
  private readonly hyper: Float64Array;
  private readonly chunks: number;
  private readonly pool: Piscina;
  private readonly control: Int32Array;
  private readonly options: PoolOptions;
  /** Per worker: the port its datasets go to, its loop task's abort controller, and whether it runs. */
  private readonly ports: MessagePort[] = [];
  private readonly stops: AbortController[] = [];
  private readonly loops: (Promise<void> | null)[] = [];
  /** Workers whose loop ended with an error during the current command, and what they were doing. */
  private deaths: { worker: number; shard: number; error: Error }[] = [];
  /** Datasets posted to the workers and not yet released (posted again to a replacement worker). */
  private readonly posted = new Map<number, SharedDataset['buffers']>();
  private closed = false;

  constructor(model: ModelConfig, loss: LossSpec, o: PoolOptions, sgd: SGDOptions) {
    const { workers, shards: slots } = o;
    this.options = o;
    this.model = model;
    this.workers = workers;
    this.slots = slots;
    this.maxShardRows = Math.ceil(o.batchSize / slots);
    this.P = paramLayout(model.layers).total;
    this.chunks = normChunks(this.P);
    const sab = (bytes: number): SharedArrayBuffer => new SharedArrayBuffer(bytes);
    const layout = stateLayout(this.P, slots, this.chunks * NORM_FIELDS);
    // Refused up front, with the size and the limit, rather than by a failed allocation.
    checkLength(`model: ${this.P} parameters`, this.P, 4, 'float32');
    checkMemory(`model: ${this.P} parameters in ${slots + 5} float32 buffers (parameters, momentum, gradient, ${slots} shard slots)`, layout.bytes,
      'fewer or smaller layers, or fewer shards (options.shards), need less');
    // With the WebAssembly kernels the state is a shared WebAssembly memory, so that every worker can
    // run step.wasm's loops on it in place.
    const shared = o.kernels === 'wasm' ? createSharedMemory(layout.bytes) : null;
    const state = shared?.buffer ?? sab(layout.bytes);
    const views = stateViews(state, layout, slots);
    this.paramHalves = views.params;
    this.momentumHalves = views.momentum;
    this.partials = views.partials;
    this.slotViews = views.slots;
    const init = {
      hyper: sab(HYPER_FIELDS * 8),
      stats: sab(slots * STAT_FIELDS * 8),
      times: sab(workers * TIME_FIELDS * 8),
      control: sab(controlFields(workers) * 4),
    };
    this.hyper = new Float64Array(init.hyper);
    this.stats = new Float64Array(init.stats);
    this.times = new Float64Array(init.times);
    this.control = new Int32Array(init.control);
    const workerData: WorkerInit = {
      model, loss, state, stateMemory: shared?.memory ?? null, layout, ...init, slots, maxShardRows: this.maxShardRows,
      workers, kernels: o.kernels, sgd: { ...sgd }, mean: o.reduction === 'mean',
    };
    const { filename, execArgv } = workerEntry();
    this.pool = new Piscina({
      filename,
      execArgv,
      workerData,
      minThreads: workers,
      maxThreads: workers,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: 1,
      ...(o.workerHeapMb === null ? {} : { resourceLimits: { maxOldGenerationSizeMb: o.workerHeapMb } }),
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
      // Stands in for the worker: its stamp passes every barrier of the command, the flag voids it.
      let error = err instanceof Error ? err : new Error(String(err));
      if (error.name === 'AbortError' && error.cause instanceof Error) error = error.cause; // stopped: say why
      const shard = Atomics.load(this.control, workField(w, kWorkShard));
      this.deaths.push({ worker: w, shard, error });
      Atomics.store(this.control, kCtlFailed, 1);
      stamp(this.control, w, stampOf(Atomics.load(this.control, kCtlGeneration), kPhaseDone));
    });
  }

  private get parity(): 0 | 1 {
    return this.control[kCtlParity] === 0 ? 0 : 1;
  }

  /** (P) the current parameters. A view: the workers write the next step's into the other half, so
   *  read it again after a step rather than keeping it. Write it only between commands. */
  get params(): Float32Array {
    return this.paramHalves[this.parity];
  }

  /** (P) SGD's current momentum buffer (meaningful once hasMomentumBuffer); same rules as params. */
  get momentumBuffer(): Float32Array {
    return this.momentumHalves[this.parity];
  }

  /** The timing of the last command. */
  readonly timing: BatchTiming = { computeMaxMs: 0, computeSumMs: 0, reduceMs: 0, updateMs: 0, tasks: 0 };

  /**
   * One optimizer step on the rows at positions [start, end) of the dataset's order: the workers compute
   * the shards' gradients, reduce them, and apply clipping and SGD (see step.ts). Returns the batch's sums
   * and what was done; the new parameters are current when it returns, unless the decision was not
   * 'update' (then the parameters and momentum are as before).
   */
  async step(data: SharedDataset, start: number, end: number, h: StepHyper): Promise<{ sums: BatchSums; decision: StepDecision }> {
    const y = this.hyper;
    y[kHypLr] = h.lr;
    y[kHypMomentum] = h.momentum;
    y[kHypMaxNorm] = h.maxNorm ?? 0;
    y[kHypNormType] = h.normType;
    y[kHypFirst] = this.hasMomentumBuffer ? 0 : 1;
    const sums = await this.command(kCmdStep, data, start, end);
    const decision = decideStep(sums, this.partials, this.chunks, y);
    if (decision.outcome === 'update') {
      // The workers wrote the other half: it becomes current.
      Atomics.store(this.control, kCtlParity, 1 - this.parity);
      if (Math.fround(h.momentum) !== 0) this.hasMomentumBuffer = true;
    }
    return { sums, decision };
  }

  /** Loss stats (when the data has targets) and probabilities or per-sample losses (when the dataset
   *  has room for them) of the rows at positions [start, end), with the current parameters. */
  async forward(data: SharedDataset, start: number, end: number): Promise<BatchSums> {
    return this.command(kCmdForward, data, start, end);
  }

  /**
   * Posts a command over positions [start, end) of the dataset's order, cut into at most `slots`
   * shards of equal size (the last may be shorter), contiguous runs of shards per worker, and waits for
   * every worker. The cut depends only on the batch, so each slot holds the same sums whatever the
   * worker count.
   */
  private async command(command: number, data: SharedDataset, start: number, end: number): Promise<BatchSums> {
    if (this.closed) throw new Error('this Trainer is closed; create a new one');
    const { shardRows, shards } = this.cut(start, end);
    const tasks = Math.min(this.workers, shards);
    const id = data.buffers.id;
    if (!this.posted.has(id)) {
      for (const port of this.ports) port.postMessage(data.buffers);
      this.posted.set(id, data.buffers);
    }
    const failures = new Map<number, number>();
    for (;;) {
      const c = this.control;
      // Workers that died since the last command (or in the last attempt) start again first.
      for (let w = 0; w < this.workers; w++) if (this.loops[w] === null) this.startLoop(w);
      this.deaths = [];
      Atomics.store(c, kCtlFailed, 0);
      c[kCtlCommand] = command;
      c[kCtlDataset] = id;
      c[kCtlStart] = start;
      c[kCtlEnd] = end;
      c[kCtlShardRows] = shardRows;
      c[kCtlShards] = shards;
      c[kCtlTasks] = tasks;
      // The bump is the release: everything written above is visible to a worker that sees it.
      const g = Atomics.add(c, kCtlGeneration, 1) + 1;
      Atomics.notify(c, kCtlGeneration);
      await this.waitDone(g);
      if (Atomics.load(c, kCtlFailed) === 0) {
        this.time(command === kCmdStep, tasks, shards);
        return readBatchSums(this.stats, shards);
      }
      // A worker failed: nothing of this command was applied. Replace the workers that died and run
      // it again, unless the same shard keeps failing.
      await this.settleDeaths();
      for (const d of this.deaths) {
        const count = (failures.get(d.shard) ?? 0) + 1;
        failures.set(d.shard, count);
        if (count > this.options.shardRetries) {
          const positions: [number, number] = d.shard < 0 ? [start, end] : [start + d.shard * shardRows, Math.min(start + (d.shard + 1) * shardRows, end)];
          const what = d.shard >= 0 ? `shard ${d.shard}` : 'the gradient reduction and update';
          throw new ShardFailure(`${what} failed ${count} times: ${d.error.message}`, d.shard, positions, count, d.error);
        }
      }
      this.retries += this.deaths.length;
    }
  }

  /** How positions [start, end) are cut: `shards` shards of `shardRows` rows (the last may be shorter). */
  private cut(start: number, end: number): { shardRows: number; shards: number } {
    const shardRows = Math.ceil((end - start) / this.slots);
    return { shardRows, shards: Math.ceil((end - start) / shardRows) };
  }

  /** After a step over [start, end) came out non-finite: its shards whose loss sum or gradient is. */
  nonfiniteShards(start: number, end: number): { shard: number; positions: [number, number] }[] {
    const { shardRows, shards } = this.cut(start, end);
    const bad: { shard: number; positions: [number, number] }[] = [];
    for (let sh = 0; sh < shards; sh++) {
      const slot = this.slotViews[sh];
      let finite = Number.isFinite(this.stats[sh * STAT_FIELDS + kStatLossSum]);
      for (let i = 0; finite && i < slot.length; i++) finite = Number.isFinite(slot[i]);
      if (!finite) bad.push({ shard: sh, positions: [start + sh * shardRows, Math.min(start + (sh + 1) * shardRows, end)] });
    }
    return bad;
  }

  /** Worker failures recovered from (shards re-run) in this pool's life. */
  retries = 0;

  /** A worker that threw stamps itself done before its task rejects: waits (bounded) for the rejection. */
  private async settleDeaths(): Promise<void> {
    const deadline = performance.now() + DEATH_SETTLE_MS;
    while (this.deaths.length === 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1));
    if (this.deaths.length === 0) throw new Error('a worker reported a failure but its task did not end; the pool is unusable');
  }

  private time(step: boolean, tasks: number, shards: number): void {
    const t = this.timing;
    t.tasks = tasks;
    t.computeMaxMs = 0;
    t.computeSumMs = 0;
    for (let task = 0; task < tasks; task++) {
      const [s0, s1] = taskShards(task, tasks, shards);
      let ms = 0;
      for (let s = s0; s < s1; s++) ms += this.stats[s * STAT_FIELDS + kStatComputeMs];
      t.computeMaxMs = Math.max(t.computeMaxMs, ms);
      t.computeSumMs += ms;
    }
    t.reduceMs = 0;
    t.updateMs = 0;
    if (!step) return;
    for (let w = 0; w < this.workers; w++) {
      t.reduceMs = Math.max(t.reduceMs, this.times[w * TIME_FIELDS + kTimeReduceMs]);
      t.updateMs = Math.max(t.updateMs, this.times[w * TIME_FIELDS + kTimeUpdateMs]);
    }
  }

  /**
   * Waits until every worker has stamped command g done. The main thread blocks on the control block in
   * short slices (Node allows Atomics.wait there): a step's end wakes it within microseconds, where an
   * event-loop round trip costs far more. Between slices it yields to the event loop, so that piscina can
   * report a worker that died (then its stamp is set for it). A command during which no worker makes
   * progress for workerTimeout ms has its unfinished workers stopped, which ends it as a failure.
   */
  private async waitDone(g: number): Promise<void> {
    const c = this.control;
    const done = stampOf(g, kPhaseDone);
    let progress = Atomics.load(c, kCtlArrivals);
    let since = performance.now();
    for (;;) {
      const arrivals = Atomics.load(c, kCtlArrivals);
      if (allStamped(c, this.workers, done)) return;
      // Progress is any stamp; a worker still starting (a replacement loading its code) counts as busy.
      if (arrivals !== progress || !this.allStarted()) {
        progress = arrivals;
        since = performance.now();
      }
      if (Atomics.wait(c, kCtlArrivals, arrivals, WAIT_SLICE_MS) === 'timed-out') {
        await new Promise((resolve) => setImmediate(resolve));
        if (performance.now() - since > this.options.workerTimeout) {
          await this.stopStuck(done);
          since = performance.now();
        }
      }
    }
  }

  private allStarted(): boolean {
    for (let w = 0; w < this.workers; w++) if (Atomics.load(this.control, workField(w, kWorkThread)) === 0) return false;
    return true;
  }

  /** Stops the workers holding the command up: those furthest behind (the others wait for them at a
   *  barrier), and waits for their threads to end. */
  private async stopStuck(done: number): Promise<void> {
    const stamps = Array.from({ length: this.workers }, (_, w) => Atomics.load(this.control, workField(w, kWorkStamp)));
    const behind = Math.min(...stamps);
    if (behind >= done) return;
    const exits: Promise<unknown>[] = [];
    for (let w = 0; w < this.workers; w++) {
      if (stamps[w] !== behind || this.loops[w] === null) continue;
      const thread = this.thread(w);
      if (thread !== undefined) exits.push(once(thread, 'exit'));
      this.stops[w].abort(new Error(
        `worker ${w} made no progress for ${this.options.workerTimeout} ms (options.workerTimeout) and was stopped`,
      ));
    }
    await Promise.all(exits);
  }

  /** The thread running worker w's loop, by the threadId it wrote at start. */
  private thread(w: number): Worker | undefined {
    const id = Atomics.load(this.control, workField(w, kWorkThread));
    return this.pool.threads.find((t) => t.threadId === id);
  }

  /** Tells the workers to drop a dataset they will not be asked for again. */
  release(data: SharedDataset): void {
    const id = data.buffers.id;
    if (!this.posted.delete(id)) return;
    for (const port of this.ports) port.postMessage({ release: id });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const c = this.control;
    c[kCtlCommand] = kCmdStop;
    Atomics.add(c, kCtlGeneration, 1);
    Atomics.notify(c, kCtlGeneration);
    // A worker stuck in a command would never read the stop: destroy() ends every thread regardless.
    await Promise.race([Promise.all(this.loops), new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS).unref())]);
    for (const port of this.ports) port.close();
    await this.pool.destroy();
  }
}
