// User data into shared memory: validates a Dataset against the model (shapes, finiteness, class range)
// before any work starts, and copies it once into the SharedArrayBuffers every worker maps.
// Targets follow the loss: class indices (N,) for cross-entropy, values in [0, 1] of shape (N, K) for BCE.

import type { DatasetBuffers } from '../shared/contract.js';
import type { ModelConfig } from '../shared/model.js';
import { DataError, shapeText } from './errors.js';

type Numbers = ArrayLike<number>;

/** Rows of features and their targets. Each of x and y is either flat (row-major) or one array per row. */
export interface Dataset {
  /** (N, D): N * D numbers row-major (e.g. a Float32Array), or N rows of D numbers. */
  x: Numbers | readonly Numbers[];
  /** cross-entropy: (N,) class indices. bce-with-logits: (N, K) targets in [0, 1], flat or as rows;
   *  with one output, (N,) is accepted as (N, 1). */
  y: Numbers | readonly Numbers[];
}

/** Features only, for predict(). */
export type Features = Dataset['x'];

/** A dataset copied into shared memory, with the coordinator's views of it. */
export interface SharedDataset {
  buffers: DatasetBuffers;
  rows: number;
  /** (N) class indices, for the confusion matrix; null for BCE or prediction input. */
  labels: Int32Array | null;
  order: Int32Array;
  out: Float32Array | null;
}

let nextId = 1;

/**
 * Validates `data` for `model` and copies it into shared buffers. `what` names the data in errors
 * ('training data', 'validation data'). With `withOutput`, an (N, K) probability buffer is added.
 */
export function shareDataset(data: Dataset, model: ModelConfig, what: string, withOutput: boolean): SharedDataset {
  if (typeof data !== 'object' || data === null || !('x' in data) || !('y' in data)) {
    throw new DataError(`${what} must be an object { x, y }; got ${describe(data)}`);
  }
  const { x, rows } = copyFeatures(data.x, model, what);
  const K = model.layers[model.layers.length - 1];
  let y: SharedArrayBuffer;
  let labels: Int32Array | null = null;
  if (model.loss === 'cross-entropy') {
    labels = classIndices(data.y, rows, K, what);
    y = labels.buffer as SharedArrayBuffer;
  } else {
    y = binaryTargets(data.y, rows, K, what).buffer as SharedArrayBuffer;
  }
  return finish(x, y, rows, model, labels, withOutput);
}

/** Features only, for prediction: validated and shared, with an output buffer. */
export function shareFeatures(x: Features, model: ModelConfig, what: string): SharedDataset {
  const f = copyFeatures(x, model, what);
  return finish(f.x, null, f.rows, model, null, true);
}

function finish(
  x: SharedArrayBuffer, y: SharedArrayBuffer | null, rows: number, model: ModelConfig,
  labels: Int32Array | null, withOutput: boolean,
): SharedDataset {
  const K = model.layers[model.layers.length - 1];
  const order = new Int32Array(new SharedArrayBuffer(rows * 4));
  for (let i = 0; i < rows; i++) order[i] = i;
  const out = withOutput ? new Float32Array(new SharedArrayBuffer(rows * K * 4)) : null;
  const buffers: DatasetBuffers = {
    id: nextId++,
    rows,
    features: model.layers[0],
    x,
    y,
    order: order.buffer as SharedArrayBuffer,
    out: out === null ? null : (out.buffer as SharedArrayBuffer),
  };
  return { buffers, rows, labels, order, out };
}

function copyFeatures(src: unknown, model: ModelConfig, what: string): { x: SharedArrayBuffer; rows: number } {
  const D = model.layers[0];
  const nested = isNested(src, `${what}: x`);
  let rows: number;
  if (nested) {
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
  const buf = new SharedArrayBuffer(rows * D * 4);
  const x = new Float32Array(buf);
  for (let r = 0; r < rows; r++) {
    const row = nested ? (src as readonly Numbers[])[r] : null;
    if (row !== null && (row === null || typeof row !== 'object' || row.length !== D)) {
      throw new DataError(
        `${what}: x row ${r} has ${row?.length ?? describe(row)} values; expected ${D} (layers[0])`,
      );
    }
    for (let c = 0; c < D; c++) {
      const v = row !== null ? row[c] : (src as Numbers)[r * D + c];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new DataError(
          `${what}: x row ${r}, column ${c} is ${describe(v)}; every feature must be a finite number`,
          'remove or impute the missing values before training',
        );
      }
      x[r * D + c] = v;
    }
  }
  return { x: buf, rows };
}

function classIndices(src: unknown, rows: number, K: number, what: string): Int32Array {
  const nested = isNested(src, `${what}: y`);
  const n = (src as Numbers).length;
  if (nested) {
    const inner = (src as readonly Numbers[])[0]?.length ?? 0;
    throw new DataError(
      `${what}: loss 'cross-entropy' takes class indices of shape ${shapeText([rows])}; got targets of shape ${shapeText([n, inner])}`,
      inner === 1
        ? 'flatten y to one class index per row'
        : "for independent yes/no outputs (multi-label) use loss 'bce-with-logits'",
    );
  }
  if (n !== rows) throw new DataError(`${what}: x has ${rows} rows but y has ${n} targets; expected one class index per row`);
  const labels = new Int32Array(new SharedArrayBuffer(rows * 4));
  for (let r = 0; r < rows; r++) {
    const v = (src as Numbers)[r];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= K) {
      throw new DataError(
        `${what}: y[${r}] = ${describe(v)} is not a class index in [0, ${K}) (the model has ${K} outputs)`,
        Number.isInteger(v) && (v as number) >= K ? `end layers in the number of classes (at least ${(v as number) + 1})` : undefined,
      );
    }
    labels[r] = v;
  }
  return labels;
}

function binaryTargets(src: unknown, rows: number, K: number, what: string): Float32Array {
  const nested = isNested(src, `${what}: y`);
  const n = (src as Numbers).length;
  const inner = nested ? ((src as readonly Numbers[])[0]?.length ?? 0) : undefined;
  // Flat targets are row-major (N, K), so (N,) is (N, 1) for one output; rows must have K values each.
  const fits = nested ? n === rows && inner === K : n === rows * K;
  if (!fits) {
    const got = nested ? [n, inner as number] : [n];
    throw new DataError(
      `${what}: loss 'bce-with-logits' needs targets of the model's output shape ${shapeText([rows, K])}; ` +
        `got targets of shape ${shapeText(got)}`,
      K > 1 && (got.length === 1 || got[1] === 1)
        ? `for one class per row among ${K}, use loss 'cross-entropy' with class indices of shape ${shapeText([rows])}`
        : undefined,
    );
  }
  const y = new Float32Array(new SharedArrayBuffer(rows * K * 4));
  for (let r = 0; r < rows; r++) {
    const row = nested ? (src as readonly Numbers[])[r] : null;
    if (row !== null && (typeof row !== 'object' || row.length !== K)) {
      throw new DataError(`${what}: y row ${r} has ${row?.length ?? describe(row)} values; expected ${K} (the model's outputs)`);
    }
    for (let k = 0; k < K; k++) {
      const v = row !== null ? row[k] : (src as Numbers)[r * K + k];
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
        throw new DataError(`${what}: y row ${r}, output ${k} is ${describe(v)}; BCE targets must be numbers in [0, 1]`);
      }
      y[r * K + k] = v;
    }
  }
  return y;
}

/** True when `v` is an array of rows, false when it is flat numbers; throws for anything else. */
function isNested(v: unknown, what: string): boolean {
  if (v === null || typeof v !== 'object' || typeof (v as Numbers).length !== 'number') {
    throw new DataError(`${what} must be an array or typed array; got ${describe(v)}`);
  }
  const first = (v as Numbers).length > 0 ? (v as ArrayLike<unknown>)[0] : undefined;
  return typeof first === 'object' && first !== null;
}

function describe(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return typeof v === 'string' ? JSON.stringify(v) : typeof v;
}
