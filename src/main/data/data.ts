// User data into shared memory: validates a Dataset against the model (shapes, finiteness, class range)
// before any work starts, and copies it once into the SharedArrayBuffers every worker maps. The size of
// every shared buffer is checked against the typed-array and memory limits before the first is made.
// Targets follow the loss: class indices (N,) or probabilities (N, K) for the softmax losses, values in
// [0, 1] of shape (N, K) for the sigmoid ones.

import type { DatasetBuffers } from '../../shared/contract.js';
import type { LossSpec } from '../../shared/losses.js';
import { isSoftmaxLoss, type LossName, type ModelConfig } from '../../shared/model.js';
import { DataError, shapeText } from '../errors.js';
import { normalizeInPlace, type Normalization } from '../loaders/prepare.js';
import { checkLength, checkMemory } from './memory.js';

type Numbers = ArrayLike<number>;

/** Rows of features and their targets. Each of x and y is either flat (row-major) or one array per row. */
export interface Dataset {
  /** (N, D): N * D numbers row-major (e.g. a Float32Array), or N rows of D numbers. */
  x: Numbers | readonly Numbers[];
  /** Softmax losses: (N,) class indices (or, for cross-entropy, (N, K) class probabilities). Sigmoid
   *  losses: (N, K) targets in [0, 1], flat row-major or as rows; with one output, (N,) is (N, 1). */
  y: Numbers | readonly Numbers[];
  /** Where row r came from, for error messages (loaders set it: 'train.csv line 12'). */
  rowName?: (row: number) => string;
  /** The feature columns' names (loaders set them from a CSV header): checked against the ones the
   *  model's preprocessing records, which must be the same in the same order. */
  featureNames?: readonly string[];
}

/** Features only, for predict(). */
export type Features = Dataset['x'];

/** A dataset copied into shared memory, with the coordinator's views of it. */
export interface SharedDataset {
  buffers: DatasetBuffers;
  rows: number;
  /** (N) class indices or (N, K) value targets, as given (for reports); null when absent. */
  labels: Int32Array | null;
  values: Float32Array | null;
  order: Int32Array;
  out: Float32Array | null;
  lossOut: Float32Array | null;
}

let nextId = 1;

/** What a shared copy also carries: output probabilities, per-sample losses (reduction 'none'). */
export interface ShareOutputs {
  probabilities?: boolean;
  losses?: boolean;
}

/**
 * Validates `data` for the model and its loss, and copies it into shared buffers, normalising the
 * features by `normalize` when given (the model's preprocessing). `what` names the data in errors
 * ('training data', 'validation data'). Targets are class indices when y has one number per row and the
 * loss is a softmax one; otherwise values of the output's shape (N, K).
 */
export function shareDataset(
  data: Dataset, model: ModelConfig, loss: LossSpec, what: string, outputs: ShareOutputs = {},
  normalize: Normalization | null = null,
): SharedDataset {
  if (typeof data !== 'object' || data === null || !('x' in data) || !('y' in data)) {
    throw new DataError(`${what} must be an object { x, y }; got ${describe(data)}`);
  }
  const K = model.layers[model.layers.length - 1];
  // Class indices take one int32 per row, other targets K float32s; an unusable y is refused below.
  const N = rowCount(data.x, model, what);
  const flat = data.y as Numbers | null | undefined;
  const yColumns = isSoftmaxLoss(loss.name) && typeof flat?.[0] === 'number' && flat.length === N ? 1 : K;
  checkShared(what, N, model, yColumns, outputs);
  const { x, rows } = copyFeatures(data.x, model, what, normalize, data.rowName);
  const shape = targetShape(data.y, `${what}: y`);
  const at = (r: number): string => from(data.rowName, r);
  if (isSoftmaxLoss(loss.name) && shape.length === 1 && shape[0] === rows) {
    const labels = classIndices(data.y as Numbers, rows, K, loss.ignoreIndex, what, at);
    return finish(x, 'index', labels.buffer as SharedArrayBuffer, rows, model, labels, outputs);
  }
  const yRows = shape.length === 2 ? shape[0] : shape[0] === rows * K ? rows : shape[0];
  if (yRows !== rows) {
    const per = isSoftmaxLoss(loss.name) ? 'one class index per row' : `${K} target${K > 1 ? 's' : ''} per row`;
    throw new DataError(`${what}: x has ${rows} rows but y has ${yRows} ${shape.length === 2 ? 'rows' : 'targets'}; expected ${per}`);
  }
  const fits = shape.length === 2 ? shape[1] === K : shape[0] === rows * K;
  if (!fits || loss.name === 'softmax-focal') {
    throw new DataError(`${what}: ${targetsWanted(loss.name, rows, K)}; got targets of shape ${shapeText(shape)}`, targetsHint(loss.name, rows, K, shape));
  }
  const y = valueTargets(data.y, shape.length === 2, rows, K, what, at, isSoftmaxLoss(loss.name) ? 'class probabilities' : 'BCE targets');
  return finish(x, 'values', y.buffer as SharedArrayBuffer, rows, model, null, outputs);
}

/** Features only, for prediction: validated, normalised as shareDataset does, and shared, with an
 *  output buffer. */
export function shareFeatures(x: Features, model: ModelConfig, what: string, normalize: Normalization | null = null): SharedDataset {
  checkShared(what, rowCount(x, model, what), model, 0, { probabilities: true });
  const f = copyFeatures(x, model, what, normalize);
  return finish(f.x, null, null, f.rows, model, null, { probabilities: true });
}

function finish(
  x: SharedArrayBuffer, targets: DatasetBuffers['targets'], y: SharedArrayBuffer | null, rows: number,
  model: ModelConfig, labels: Int32Array | null, outputs: ShareOutputs,
): SharedDataset {
  const K = model.layers[model.layers.length - 1];
  const order = new Int32Array(new SharedArrayBuffer(rows * 4));
  for (let i = 0; i < rows; i++) order[i] = i;
  const out = outputs.probabilities === true ? new Float32Array(new SharedArrayBuffer(rows * K * 4)) : null;
  const perSample = isSoftmaxLoss(model.loss) ? rows : rows * K;
  const lossOut = outputs.losses === true ? new Float32Array(new SharedArrayBuffer(perSample * 4)) : null;
  const buffers: DatasetBuffers = {
    id: nextId++,
    rows,
    features: model.layers[0],
    x,
    targets,
    y,
    order: order.buffer as SharedArrayBuffer,
    out: out === null ? null : (out.buffer as SharedArrayBuffer),
    lossOut: lossOut === null ? null : (lossOut.buffer as SharedArrayBuffer),
  };
  const values = targets === 'values' ? new Float32Array(y as SharedArrayBuffer) : null;
  return { buffers, rows, labels, values, order, out, lossOut };
}

/** N, the rows of x, refusing an x that is not an array, not whole rows, or empty. */
function rowCount(src: unknown, model: ModelConfig, what: string): number {
  const D = model.layers[0];
  let rows: number;
  if (isNested(src, `${what}: x`)) {
    rows = (src as readonly Numbers[]).length;
  } else {
    const n = (src as Numbers).length;
    if (n % D !== 0) {
      throw new DataError(
        `${what}: x has ${n} values, which is not a whole number of rows of ${D} features (layers[0] = ${D})`,
        `pass x as N * ${D} row-major values, or as N arrays of ${D}`,
      );
    }
    rows = n / D;
  }
  if (rows === 0) throw new DataError(`${what}: x has no rows`);
  return rows;
}

/**
 * Refuses, before any is allocated, shared buffers that a typed array cannot hold or that together do not
 * fit in memory: the features (N, D), the targets (N, yColumns), the row order (N), and the outputs
 * asked for. The message names the data, its shape and the limit.
 */
function checkShared(what: string, rows: number, model: ModelConfig, yColumns: number, outputs: ShareOutputs): void {
  const D = model.layers[0];
  const K = model.layers[model.layers.length - 1];
  const hint = 'train on a part of the data (or predict in batches), or on a machine with more memory';
  checkLength(`${what}: ${rows} x ${D} float32 features`, rows * D, 4, 'float32', hint);
  if (yColumns > 1) checkLength(`${what}: ${rows} x ${K} float32 targets`, rows * yColumns, 4, 'float32', hint);
  if (outputs.probabilities === true) checkLength(`${what}: ${rows} x ${K} float32 outputs`, rows * K, 4, 'float32', hint);
  const perSample = isSoftmaxLoss(model.loss) ? 1 : K;
  const columns = D + yColumns + 1 + (outputs.probabilities === true ? K : 0) + (outputs.losses === true ? perSample : 0);
  const parts = [`${D} float32 features`, yColumns === 0 ? '' : yColumns === 1 ? '1 target' : `${yColumns} targets`,
    'the row order', outputs.probabilities === true ? `${K} outputs` : '', outputs.losses === true ? 'the losses' : '']
    .filter((p) => p !== '').join(', ');
  checkMemory(`${what}: ${rows} rows in shared memory (${parts} per row)`, 4 * rows * columns, hint);
}

function copyFeatures(
  src: unknown, model: ModelConfig, what: string, normalize: Normalization | null, rowName?: (r: number) => string,
): { x: SharedArrayBuffer; rows: number } {
  const D = model.layers[0];
  const nested = isNested(src, `${what}: x`);
  const rows = rowCount(src, model, what);
  const buf = new SharedArrayBuffer(rows * D * 4);
  const x = new Float32Array(buf);
  for (let r = 0; r < rows; r++) {
    const row = nested ? (src as readonly Numbers[])[r] : null;
    if (row !== null && (row === null || typeof row !== 'object' || row.length !== D)) {
      throw new DataError(
        `${what}: x row ${r}${from(rowName, r)} has ${row?.length ?? describe(row)} values; expected ${D} (layers[0])`,
      );
    }
    for (let c = 0; c < D; c++) {
      const v = row !== null ? row[c] : (src as Numbers)[r * D + c];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new DataError(
          `${what}: x row ${r}${from(rowName, r)}, column ${c} is ${describe(v)}; every feature must be a finite number`,
          'remove or impute the missing values before training',
        );
      }
      // Features are float32: a finite double beyond its range would become Infinity there.
      if (!Number.isFinite(Math.fround(v))) {
        throw new DataError(
          `${what}: x row ${r}${from(rowName, r)}, column ${c} is ${v}, outside the float32 range (about ±3.4e38); every feature must fit in a float32`,
          'rescale the features (standardize them, or scale them to about [-1, 1])',
        );
      }
      x[r * D + c] = v;
    }
  }
  if (normalize !== null) {
    const bad = normalizeInPlace(x, rows, D, normalize);
    if (bad >= 0) {
      const r = Math.floor(bad / D);
      const c = bad % D;
      const v = nested ? (src as readonly Numbers[])[r][c] : (src as Numbers)[bad];
      throw new DataError(
        `${what}: x row ${r}${from(rowName, r)}, column ${c} is ${v}, which normalises to ${x[bad]} ` +
          `((x - ${normalize.offset[c]}) * ${normalize.scale[c]}), beyond float32's range`,
        "the model's normalisation was fitted on data of another scale: check the column",
      );
    }
  }
  return { x: buf, rows };
}

function classIndices(
  src: Numbers, rows: number, K: number, ignoreIndex: number, what: string, at: (r: number) => string,
): Int32Array {
  const labels = new Int32Array(new SharedArrayBuffer(rows * 4));
  for (let r = 0; r < rows; r++) {
    const v = src[r];
    if (typeof v !== 'number' || !Number.isInteger(v) || ((v < 0 || v >= K) && v !== ignoreIndex)) {
      throw new DataError(
        `${what}: y[${r}]${at(r)} = ${describe(v)} is not a class index in [0, ${K}) (the model has ${K} outputs)` +
          (ignoreIndex === -100 ? '' : ` nor the ignoreIndex ${ignoreIndex}`),
        Number.isInteger(v) && v >= K ? `end layers in the number of classes (at least ${v + 1})` : undefined,
      );
    }
    labels[r] = v;
  }
  return labels;
}

/** (N, K) values in [0, 1], from rows or from N * K row-major numbers. */
function valueTargets(
  src: unknown, nested: boolean, rows: number, K: number, what: string, at: (r: number) => string, kind: string,
): Float32Array {
  const y = new Float32Array(new SharedArrayBuffer(rows * K * 4));
  for (let r = 0; r < rows; r++) {
    const row = nested ? (src as readonly Numbers[])[r] : null;
    if (row !== null && (typeof row !== 'object' || row === null || row.length !== K)) {
      throw new DataError(`${what}: y row ${r}${at(r)} has ${row?.length ?? describe(row)} values; expected ${K} (the model's outputs)`);
    }
    for (let k = 0; k < K; k++) {
      const v = row !== null ? row[k] : (src as Numbers)[r * K + k];
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
        throw new DataError(`${what}: y row ${r}${at(r)}, output ${k} is ${describe(v)}; ${kind} must be numbers in [0, 1]`);
      }
      y[r * K + k] = v;
    }
  }
  return y;
}

/** The shape y has: (n,) when flat, (n, length of its first row) when nested. */
function targetShape(y: unknown, what: string): number[] {
  const n = (y as Numbers).length;
  if (!isNested(y, what)) return [n];
  return [n, (y as readonly Numbers[])[0].length];
}

function targetsWanted(loss: LossName, rows: number, K: number): string {
  if (loss === 'softmax-focal') return `loss 'softmax-focal' takes class indices of shape ${shapeText([rows])}`;
  if (loss === 'cross-entropy') {
    return `loss 'cross-entropy' takes class indices of shape ${shapeText([rows])} or class probabilities of shape ${shapeText([rows, K])}`;
  }
  return `loss '${loss}' needs targets of the model's output shape ${shapeText([rows, K])}`;
}

function targetsHint(loss: LossName, rows: number, K: number, got: number[]): string | undefined {
  if (isSoftmaxLoss(loss)) return got.length === 2 && got[1] === 1 ? 'flatten y to one class index per row' : undefined;
  if (K > 1 && (got.length === 1 || got[1] === 1)) {
    return `for one class per row among ${K}, use loss 'cross-entropy' with class indices of shape ${shapeText([rows])}`;
  }
  return undefined;
}

/** True when `v` is an array of rows, false when it is flat numbers; throws for anything else. */
function isNested(v: unknown, what: string): boolean {
  if (v === null || typeof v !== 'object' || typeof (v as Numbers).length !== 'number') {
    throw new DataError(`${what} must be an array or typed array; got ${describe(v)}`);
  }
  const first = (v as Numbers).length > 0 ? (v as ArrayLike<unknown>)[0] : undefined;
  return typeof first === 'object' && first !== null;
}

/** ' (train.csv line 12)' when the data knows where row r came from. */
function from(rowName: ((r: number) => string) | undefined, r: number): string {
  return rowName === undefined ? '' : ` (${rowName(r)})`;
}

function describe(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return typeof v === 'string' ? JSON.stringify(v) : typeof v;
}
