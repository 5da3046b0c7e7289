// The step protocol on the coordinator's side: one fixed piscina pool whose workers each run one loop
// task, the shared parameter, gradient, stats and control buffers they were started with; step(), which
// posts a batch and its hyperparameters as one command that the workers carry through to the updated
// parameters, and forward(), which posts a batch to evaluate. Between commands the workers sleep.

import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import {
  CONTROL_FIELDS, HYPER_FIELDS, kCmdForward, kCmdStep, kCmdStop, kCtlCommand, kCtlDataset, kCtlDecided, kCtlDone,
  kCtlEnd, kCtlFailed, kCtlGeneration, kCtlParity, kCtlReduced, kCtlShardRows, kCtlShards, kCtlStart, kCtlTasks,
  kHypFirst, kHypLr, kHypMaxNorm, kHypMomentum, kHypNormType, kStatComputeMs, kTimeReduceMs, kTimeUpdateMs,
  STAT_FIELDS, stateLayout, stateViews, taskShards, TIME_FIELDS, type LoopTask, type WorkerInit,
} from '../shared/contract.js';
import { createSharedMemory } from '../shared/wasm.js';
import { NORM_FIELDS, normChunks } from '../shared/clip.js';
import { paramLayout, type ModelConfig } from '../shared/model.js';
import type { LossSpec } from '../shared/losses.js';
import type { SGDOptions } from '../shared/sgd.js';
import { decideStep, readBatchSums, type BatchSums, type StepDecision } from '../shared/step.js';
import type { SharedDataset } from './data.js';
import type { Reduction } from './options.js';

export { addSums, emptySums, type BatchSums } from '../shared/step.js';

/** A step's hyperparameters: the schedule's lr and momentum, and clipping (maxNorm null: none). */
export interface StepHyper {
  lr: number;
  momentum: number;
  maxNorm: number | null;
  normType: number;
}

/** Where a batch's time went on the coordinator's clock, in milliseconds. */
export interface BatchTiming {
  /** From posting the command to the last worker done: compute, barriers, reduction and update. */
  parallelMs: number;
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

export class Coordinator {
  readonly model: ModelConfig;
  readonly P: number;
  /** (P) the batch gradient of the last step (after clipping). */
  readonly grad: Float32Array;
  /** True once SGD's momentum buffer has started (torch's first step with momentum is done). */
  hasMomentumBuffer = false;
  readonly workers: number;
  readonly slots: number;
  readonly maxShardRows: number;
  private readonly paramHalves: [Float32Array, Float32Array];
  private readonly momentumHalves: [Float32Array, Float32Array];
  private readonly stats: Float64Array;
  private readonly times: Float64Array;
  private readonly partials: Float64Array;
  private readonly hyper: Float64Array;
  private readonly chunks: number;
  private readonly pool: Piscina;
  private readonly control: Int32Array;
  private readonly ports: MessagePort[] = [];
  private readonly loops: Promise<void>[] = [];
  /** Datasets posted to the workers and not yet released. */
  private readonly posted = new Set<number>();
  /** The first error a worker's loop ended with; the pool cannot take commands after it. */
  private failure: Error | null = null;
  private closed = false;

  constructor(
    model: ModelConfig, loss: LossSpec, workers: number, slots: number, batchSize: number,
    reduction: Reduction, kernels: 'wasm' | 'js', sgd: SGDOptions,
  ) {
    this.model = model;
    this.workers = workers;
    this.slots = slots;
    this.maxShardRows = Math.ceil(batchSize / slots);
    this.P = paramLayout(model.layers).total;
    this.chunks = normChunks(this.P);
    const sab = (bytes: number): SharedArrayBuffer => new SharedArrayBuffer(bytes);
    const layout = stateLayout(this.P, slots, this.chunks * NORM_FIELDS);
    // With the WebAssembly kernels the state is a shared WebAssembly memory, so that every worker can
    // run step.wasm's loops on it in place.
    const shared = kernels === 'wasm' ? createSharedMemory(layout.bytes) : null;
    const state = shared?.buffer ?? sab(layout.bytes);
    const views = stateViews(state, layout, slots);
    this.paramHalves = views.params;
    this.momentumHalves = views.momentum;
    this.grad = views.grad;
    this.partials = views.partials;
    const init = {
      hyper: sab(HYPER_FIELDS * 8),
      stats: sab(slots * STAT_FIELDS * 8),
      times: sab(workers * TIME_FIELDS * 8),
      control: sab(CONTROL_FIELDS * 4),
    };
    this.hyper = new Float64Array(init.hyper);
    this.stats = new Float64Array(init.stats);
    this.times = new Float64Array(init.times);
    this.control = new Int32Array(init.control);
    const workerData: WorkerInit = {
      model, loss, state, stateMemory: shared?.memory ?? null, layout, ...init, slots, maxShardRows: this.maxShardRows,
      workers, kernels, sgd: { ...sgd }, mean: reduction === 'mean',
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
    });
    // One loop task per worker for the pool's life (see contract.ts). With one task per worker at a
    // time, the `workers` tasks land on `workers` distinct threads.
    for (let w = 0; w < workers; w++) {
      const { port1, port2 } = new MessageChannel();
      port1.unref();
      this.ports.push(port1);
      this.loops.push(this.pool.run({ worker: w, port: port2, generation: Atomics.load(this.control, kCtlGeneration) } satisfies LoopTask, { transferList: [port2] }).catch((err: unknown) => {
        this.failure ??= err instanceof Error ? err : new Error(String(err));
      }));
    }
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
  readonly timing: BatchTiming = { parallelMs: 0, computeMaxMs: 0, computeSumMs: 0, reduceMs: 0, updateMs: 0, tasks: 0 };

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
    if (this.failure !== null) throw this.failure;
    const t0 = performance.now();
    const n = end - start;
    const shardRows = Math.ceil(n / this.slots);
    const shards = Math.ceil(n / shardRows);
    const tasks = Math.min(this.workers, shards);
    const id = data.buffers.id;
    if (!this.posted.has(id)) {
      for (const port of this.ports) port.postMessage(data.buffers);
      this.posted.add(id);
    }
    const c = this.control;
    c[kCtlCommand] = command;
    c[kCtlDataset] = id;
    c[kCtlStart] = start;
    c[kCtlEnd] = end;
    c[kCtlShardRows] = shardRows;
    c[kCtlShards] = shards;
    c[kCtlTasks] = tasks;
    c[kCtlReduced] = 0;
    c[kCtlDecided] = 0;
    Atomics.store(c, kCtlDone, 0);
    // The bump is the release: everything written above is visible to a worker that sees it.
    Atomics.add(c, kCtlGeneration, 1);
    Atomics.notify(c, kCtlGeneration);
    await this.waitDone();
    const parallelMs = performance.now() - t0;
    this.time(command === kCmdStep, tasks, shards, parallelMs);
    return readBatchSums(this.stats, shards);
  }

  private time(step: boolean, tasks: number, shards: number, parallelMs: number): void {
    const t = this.timing;
    t.parallelMs = parallelMs;
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
   * Waits until every worker has counted itself done. The main thread blocks on the control block in
   * short slices (Node allows Atomics.wait there): a step's end wakes it within microseconds, where an
   * event-loop round trip costs far more. Between slices it yields to the event loop, so that a worker
   * whose loop died is reported by piscina rather than waited on forever.
   */
  private async waitDone(): Promise<void> {
    const c = this.control;
    for (;;) {
      const done = Atomics.load(c, kCtlDone);
      if (done >= this.workers) break;
      if (Atomics.wait(c, kCtlDone, done, 20) === 'timed-out') {
        await new Promise((resolve) => setImmediate(resolve));
        if (this.failure !== null) throw this.failure;
      }
    }
    if (Atomics.load(c, kCtlFailed) !== 0) {
      await Promise.race(this.loops); // a failed loop settles with its error recorded
      throw this.failure ?? new Error('a worker failed without an error');
    }
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
    await Promise.all(this.loops);
    for (const port of this.ports) port.close();
    await this.pool.destroy();
  }
}
