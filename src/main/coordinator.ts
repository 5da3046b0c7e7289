// The step protocol on the coordinator's side: one fixed piscina pool whose workers each run one loop
// task, the shared parameter, gradient, stats and control buffers they were started with, and
// runBatch(), which posts a batch as a command, waits for the workers, and sums the shards' results in
// slot order. The update is applied between batches, while the workers sleep.

import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import {
  CONTROL_FIELDS, kCmdForward, kCmdGrad, kCmdStop, kCtlCommand, kCtlDataset, kCtlDone, kCtlEnd, kCtlFailed,
  kCtlGeneration, kCtlShardRows, kCtlShards, kCtlStart, kCtlTasks, kStatComputeMs, kStatCorrect, kStatCounted,
  kStatLossSum, kStatRows, kStatWeightSum, STAT_FIELDS, taskShards, type LoopTask, type WorkerInit,
} from '../shared/contract.js';
import { paramLayout, type ModelConfig } from '../shared/model.js';
import { clipGradNorm } from '../shared/clip.js';
import type { LossSpec } from '../shared/losses.js';
import { sgdStep, type SGDOptions, type SGDState } from '../shared/sgd.js';
import type { SharedDataset } from './data.js';
import type { Reduction } from './options.js';

/** A batch's totals, summed over its shards in slot order. */
export interface BatchSums {
  lossSum: number;
  /** The 'mean' divisor: see ShardSums.weightSum. */
  weightSum: number;
  correct: number;
  counted: number;
  rows: number;
}

/** Where a batch's time went on the coordinator's clock, in milliseconds. */
export interface BatchTiming {
  /** From posting the tasks to the last result: the workers' compute plus messaging. */
  parallelMs: number;
  /** The slowest task's compute: the critical path of the parallel part. */
  computeMaxMs: number;
  /** Compute summed over every task (worker-milliseconds). */
  computeSumMs: number;
  /** Adding the gradient slots and dividing (the coordinator's own work). */
  reduceMs: number;
  tasks: number;
}

export function emptySums(): BatchSums {
  return { lossSum: 0, weightSum: 0, correct: 0, counted: 0, rows: 0 };
}

export function addSums(total: BatchSums, s: BatchSums): void {
  total.lossSum += s.lossSum;
  total.weightSum += s.weightSum;
  total.correct += s.correct;
  total.counted += s.counted;
  total.rows += s.rows;
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

/**
 * out[i] = (((g0[i] + g1[i]) + g2[i]) + ...) / divisor, the sum in double precision in slot order. One
 * fused pass for up to four slots (the usual case) instead of a pass per slot: the same additions in the
 * same order, so the same bits. More slots go through `acc` (P doubles), still in order.
 */
export function sumSlots(out: Float32Array, g: Float32Array[], n: number, divisor: number, acc: Float64Array): void {
  const P = out.length;
  if (n === 1) {
    const a = g[0];
    for (let i = 0; i < P; i++) out[i] = a[i] / divisor;
  } else if (n === 2) {
    const [a, b] = g;
    for (let i = 0; i < P; i++) out[i] = (a[i] + b[i]) / divisor;
  } else if (n === 3) {
    const [a, b, c] = g;
    for (let i = 0; i < P; i++) out[i] = (a[i] + b[i] + c[i]) / divisor;
  } else {
    const [a, b, c, d] = g;
    for (let i = 0; i < P; i++) acc[i] = a[i] + b[i] + c[i] + d[i];
    for (let k = 4; k < n; k++) {
      const e = g[k];
      for (let i = 0; i < P; i++) acc[i] += e[i];
    }
    for (let i = 0; i < P; i++) out[i] = acc[i] / divisor;
  }
}

export class Coordinator {
  readonly model: ModelConfig;
  readonly P: number;
  /** (P) the parameters every worker reads; written here only between steps. */
  readonly params: Float32Array;
  /** (P) the averaged gradient of the last step. */
  readonly grad: Float32Array;
  readonly sgdState: SGDState;
  readonly workers: number;
  readonly slots: number;
  readonly maxShardRows: number;
  private readonly slotGrads: Float32Array[];
  private readonly stats: Float64Array;
  private readonly acc: Float64Array;
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
    private readonly reduction: Reduction, kernels: 'wasm' | 'js',
  ) {
    this.model = model;
    this.workers = workers;
    this.slots = slots;
    this.maxShardRows = Math.ceil(batchSize / slots);
    this.P = paramLayout(model.layers).total;
    const params = new SharedArrayBuffer(this.P * 4);
    const grads = new SharedArrayBuffer(slots * this.P * 4);
    const stats = new SharedArrayBuffer(slots * STAT_FIELDS * 8);
    this.params = new Float32Array(params);
    this.slotGrads = Array.from({ length: slots }, (_, s) => new Float32Array(grads, s * this.P * 4, this.P));
    this.stats = new Float64Array(stats);
    this.grad = new Float32Array(this.P);
    this.acc = new Float64Array(this.P);
    // Optimizer state is shared memory too, so that the update can later be split across workers.
    this.sgdState = { momentumBuffer: new Float32Array(new SharedArrayBuffer(this.P * 4)), hasMomentumBuffer: false };
    this.control = new Int32Array(new SharedArrayBuffer(CONTROL_FIELDS * 4));
    const workerData: WorkerInit = {
      model, loss, params, grads, stats, slots, maxShardRows: this.maxShardRows, control: this.control.buffer as SharedArrayBuffer, workers, kernels,
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

  /** The timing of the last runBatch(). */
  readonly timing: BatchTiming = { parallelMs: 0, computeMaxMs: 0, computeSumMs: 0, reduceMs: 0, tasks: 0 };

  /**
   * Runs the rows at positions [start, end) of the dataset's order as one batch: cut into at most
   * `slots` shards of equal size (the last may be shorter), contiguous runs of shards per worker.
   * The cut depends only on the batch, so each slot holds the same sums whatever the worker count.
   */
  async runBatch(kind: 'grad' | 'forward', data: SharedDataset, start: number, end: number): Promise<BatchSums> {
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
    c[kCtlCommand] = kind === 'grad' ? kCmdGrad : kCmdForward;
    c[kCtlDataset] = id;
    c[kCtlStart] = start;
    c[kCtlEnd] = end;
    c[kCtlShardRows] = shardRows;
    c[kCtlShards] = shards;
    c[kCtlTasks] = tasks;
    Atomics.store(c, kCtlDone, 0);
    // The bump is the release: everything written above is visible to a worker that sees it.
    Atomics.add(c, kCtlGeneration, 1);
    Atomics.notify(c, kCtlGeneration);
    await this.waitDone();
    const t1 = performance.now();
    const sums = emptySums();
    for (let s = 0; s < shards; s++) {
      const r = s * STAT_FIELDS;
      sums.lossSum += this.stats[r + kStatLossSum];
      sums.weightSum += this.stats[r + kStatWeightSum];
      sums.correct += this.stats[r + kStatCorrect];
      sums.counted += this.stats[r + kStatCounted];
      sums.rows += this.stats[r + kStatRows];
    }
    // A batch whose every target is ignored has no gradient (PyTorch's mean would be 0/0 = NaN).
    if (kind === 'grad' && sums.weightSum > 0) this.reduceGradients(shards, sums);
    this.time(tasks, shards, t1 - t0, performance.now() - t1);
    return sums;
  }

  private time(tasks: number, shards: number, parallelMs: number, reduceMs: number): void {
    const t = this.timing;
    t.parallelMs = parallelMs;
    t.reduceMs = reduceMs;
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
  }

  /**
   * grad = (sum of the first `shards` gradient slots, in slot order) / divisor. Shards hold sums, so
   * dividing once here by the batch's total weight (mean) or by 1 (sum) gives the batch's gradient
   * for any split of the batch; the fixed order keeps it bit-identical across worker counts.
   */
  private reduceGradients(shards: number, sums: BatchSums): void {
    sumSlots(this.grad, this.slotGrads, shards, this.reduction === 'mean' ? sums.weightSum : 1, this.acc);
  }

  /** Applies SGD to the parameters with the gradient of the last 'grad' batch. */
  update(sgd: SGDOptions, lr: number, momentum: number): void {
    sgdStep(this.params, this.grad, this.sgdState, sgd, lr, momentum);
  }

  /** Clips the last batch's gradient as clip_grad_norm_; returns its total norm before clipping. */
  clip(maxNorm: number, normType: number, errorIfNonfinite: boolean): number {
    return clipGradNorm(this.grad, maxNorm, normType, errorIfNonfinite);
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
