// The step protocol on the coordinator's side: one fixed piscina pool, the shared parameter, gradient
// and stats buffers it was started with, and runBatch(), which cuts a batch into shards, spreads them
// over the workers, then sums the shards' results in slot order and applies the SGD update.

import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import {
  kNeedDataset, kStatComputeMs, kStatCorrect, kStatCounted, kStatLossSum, kStatRows, kStatWeightSum, STAT_FIELDS,
  type ShardTask, type TaskResult, type WorkerInit,
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

/** The contiguous run of shards [s0, s1) that task t of `tasks` computes. */
function taskShards(t: number, tasks: number, shards: number): [number, number] {
  return [Math.floor((t * shards) / tasks), Math.floor(((t + 1) * shards) / tasks)];
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
  private closed = false;

  constructor(
    model: ModelConfig, loss: LossSpec, workers: number, slots: number, batchSize: number,
    private readonly reduction: Reduction,
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
    const workerData: WorkerInit = { model, loss, params, grads, stats, slots, maxShardRows: this.maxShardRows };
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
  }

  /**
   * Runs the rows at positions [start, end) of the dataset's order as one batch: cut into at most
   * `slots` shards of equal size (the last may be shorter), contiguous runs of shards per worker.
   * The cut depends only on the batch, so each slot holds the same sums whatever the worker count.
   */
  /** The timing of the last runBatch(). */
  readonly timing: BatchTiming = { parallelMs: 0, computeMaxMs: 0, computeSumMs: 0, reduceMs: 0, tasks: 0 };

  async runBatch(kind: ShardTask['kind'], data: SharedDataset, start: number, end: number): Promise<BatchSums> {
    if (this.closed) throw new Error('this Trainer is closed; create a new one');
    const t0 = performance.now();
    const n = end - start;
    const shardRows = Math.ceil(n / this.slots);
    const shards = Math.ceil(n / shardRows);
    const tasks = Math.min(this.workers, shards);
    const runs: Promise<void>[] = [];
    for (let t = 0; t < tasks; t++) {
      const [s0, s1] = taskShards(t, tasks, shards);
      runs.push(this.run(data, {
        kind,
        dataset: data.buffers.id,
        start: start + s0 * shardRows,
        end: Math.min(start + s1 * shardRows, end),
        shardRows,
        firstSlot: s0,
      }));
    }
    await Promise.all(runs);
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
    const { acc, grad, P } = this;
    const divisor = this.reduction === 'mean' ? sums.weightSum : 1;
    acc.fill(0);
    for (let s = 0; s < shards; s++) {
      const g = this.slotGrads[s];
      for (let i = 0; i < P; i++) acc[i] += g[i];
    }
    for (let i = 0; i < P; i++) grad[i] = acc[i] / divisor;
  }

  /** Applies SGD to the parameters with the gradient of the last 'grad' batch. */
  update(sgd: SGDOptions, lr: number): void {
    sgdStep(this.params, this.grad, this.sgdState, sgd, lr);
  }

  /** Clips the last batch's gradient as clip_grad_norm_; returns its total norm before clipping. */
  clip(maxNorm: number, normType: number, errorIfNonfinite: boolean): number {
    return clipGradNorm(this.grad, maxNorm, normType, errorIfNonfinite);
  }

  private async run(data: SharedDataset, task: ShardTask): Promise<void> {
    let r = (await this.pool.run(task)) as TaskResult;
    if (r === kNeedDataset) r = (await this.pool.run({ ...task, data: data.buffers })) as TaskResult;
    if (r === kNeedDataset) throw new Error(`worker refused dataset ${task.dataset} even with its buffers`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.destroy();
  }
}
