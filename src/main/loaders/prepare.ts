// Preparing loaded data for training: per-feature normalisation whose statistics come from the training
// split only (as sklearn's MinMaxScaler and StandardScaler, fitted once and applied to every split), and
// a seeded validation split that keeps each row's name pointing at its line in the original file.

import { Rng } from '../../shared/rng.js';
import { DataError } from '../errors.js';
import type { LoadedData } from './loaded.js';

export type NormalizeMode = 'none' | 'scale' | 'standardize';

/** x' = (x - offset) * scale, per feature. */
export interface Normalization {
  mode: NormalizeMode;
  offset: Float32Array; // (D)
  scale: Float32Array; // (D)
}

/**
 * Per-feature statistics of `data` (fit on the training split, then apply to every split):
 * 'scale' maps [min, max] to [0, 1] (a constant feature maps to 0, with scale 1);
 * 'standardize' gives (x - mean) / std with the population std (ddof 0; std 0 gives scale 1);
 * 'none' is the identity.
 */
export function fitNormalization(data: LoadedData, mode: NormalizeMode): Normalization {
  if (mode !== 'none' && mode !== 'scale' && mode !== 'standardize') {
    throw new TypeError(`normalize must be 'none', 'scale' or 'standardize'; got ${JSON.stringify(mode)}`);
  }
  const { x, rows: N, features: D } = data;
  const offset = new Float32Array(D);
  const scale = new Float32Array(D).fill(1);
  if (mode === 'none') return { mode, offset, scale };
  if (N === 0) throw new DataError(`cannot fit normalize '${mode}' on data with no rows`);

  // Accumulate in doubles: float32 sums over 60,000 rows would lose the low digits of the mean.
  if (mode === 'scale') {
    const lo = new Float64Array(D).fill(Infinity);
    const hi = new Float64Array(D).fill(-Infinity);
    for (let r = 0; r < N; r++) {
      for (let d = 0; d < D; d++) {
        const v = x[r * D + d];
        if (v < lo[d]) lo[d] = v;
        if (v > hi[d]) hi[d] = v;
      }
    }
    for (let d = 0; d < D; d++) {
      offset[d] = lo[d];
      scale[d] = hi[d] > lo[d] ? 1 / (hi[d] - lo[d]) : 1;
    }
    return { mode, offset, scale };
  }

  // Two passes (mean, then squared deviations) rather than sum of squares, which cancels badly.
  const mean = new Float64Array(D);
  for (let r = 0; r < N; r++) for (let d = 0; d < D; d++) mean[d] += x[r * D + d];
  for (let d = 0; d < D; d++) mean[d] /= N;
  const sq = new Float64Array(D);
  for (let r = 0; r < N; r++) {
    for (let d = 0; d < D; d++) {
      const e = x[r * D + d] - mean[d];
      sq[d] += e * e;
    }
  }
  for (let d = 0; d < D; d++) {
    const std = Math.sqrt(sq[d] / N);
    offset[d] = mean[d];
    scale[d] = std > 0 ? 1 / std : 1;
  }
  return { mode, offset, scale };
}

/** Applies `n` to data.x in place. */
export function applyNormalization(data: LoadedData, n: Normalization): void {
  const { x, rows: N, features: D } = data;
  if (n.offset.length !== D || n.scale.length !== D) {
    throw new DataError(
      `the normalization was fitted on ${n.offset.length} features but this data has ${D}`,
      'fit the normalization on the training split of the same data set',
    );
  }
  if (n.mode === 'none') return;
  normalizeInPlace(x, N, D, n);
}

/**
 * x' = (x - offset) * scale over N rows of D float32 features, in place: the subtraction and product in
 * double precision, rounded once to float32 on the store. Returns the flat index of the first result that
 * is not finite (beyond float32's range), or -1.
 */
export function normalizeInPlace(x: Float32Array, N: number, D: number, n: Normalization): number {
  let bad = -1;
  for (let r = 0; r < N; r++) {
    for (let d = 0; d < D; d++) {
      const i = r * D + d;
      x[i] = (x[i] - n.offset[d]) * n.scale[d];
      if (bad < 0 && !Number.isFinite(x[i])) bad = i;
    }
  }
  return bad;
}

/**
 * Holds out round(fraction * N) rows chosen by a seeded shuffle as validation data. Both parts keep
 * their rows in the original order, and rowName still names the original file line.
 */
export function splitValidation(
  data: LoadedData, fraction: number, seed: number,
): { train: LoadedData; validation: LoadedData } {
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction < 1)) {
    throw new RangeError(`validationSplit must be a number in (0, 1); got ${String(fraction)}`);
  }
  if (!Number.isInteger(seed)) throw new TypeError(`seed must be an integer; got ${String(seed)}`);
  const N = data.rows;
  const nValidation = Math.round(fraction * N);
  if (nValidation === 0 || nValidation === N) {
    throw new DataError(
      `validationSplit ${fraction} of ${N} rows leaves the ${nValidation === 0 ? 'validation' : 'training'} part empty ` +
        `(round(${fraction} * ${N}) = ${nValidation})`,
      N < 2 ? 'there are too few rows to hold any out' : `choose a validationSplit between ${(1 / N).toPrecision(3)} and ${(1 - 1 / N).toPrecision(3)}`,
    );
  }
  const order = new Int32Array(N);
  for (let i = 0; i < N; i++) order[i] = i;
  new Rng(seed).shuffle(order);
  const held = new Uint8Array(N); // (N) 1 for validation rows
  for (let i = 0; i < nValidation; i++) held[order[i]] = 1;
  const trainRows = new Int32Array(N - nValidation);
  const validationRows = new Int32Array(nValidation);
  for (let r = 0, t = 0, v = 0; r < N; r++) {
    if (held[r] === 1) validationRows[v++] = r;
    else trainRows[t++] = r;
  }
  return { train: pick(data, trainRows), validation: pick(data, validationRows) };
}

/** The given rows of `data`, copied, in the given order. */
function pick(data: LoadedData, rows: Int32Array): LoadedData {
  const D = data.features;
  const K = data.targetColumns;
  const n = rows.length;
  const x = new Float32Array(n * D);
  const y = data.y instanceof Int32Array ? new Int32Array(n * K) : new Float32Array(n * K);
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    for (let d = 0; d < D; d++) x[i * D + d] = data.x[r * D + d];
    for (let k = 0; k < K; k++) y[i * K + k] = data.y[r * K + k];
  }
  const rowName = data.rowName;
  const picked: LoadedData = { x, y, rows: n, features: D, targetColumns: K, rowName: (i) => rowName(rows[i]) };
  if (data.featureNames !== undefined) picked.featureNames = data.featureNames.slice();
  if (data.labelNames !== undefined) picked.labelNames = data.labelNames.slice();
  if (data.classNames !== undefined) picked.classNames = data.classNames.slice();
  return picked;
}
