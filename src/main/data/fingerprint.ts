// What a checkpoint records of the data it was trained on: the rows and a SHA-256 of the shared copy
// fit() trains from (the float32 features, normalised as the model does, then the targets), so that a
// resume on other data is refused naming what changed, instead of training on it silently. A checkpoint
// written before this was recorded has none, and resumes as before.

import { createHash } from 'node:crypto';
import { CheckpointError } from '../errors.js';
import { DATA_KEY, metadataJson, parseMetadataJson } from '../checkpoint/metadata.js';
import type { DatasetBuffers } from '../../shared/contract.js';

export interface DataFingerprint {
  rows: number;
  features: number;
  /** Hex SHA-256 of x's bytes (N, D) float32, then y's: (N) int32 class indices or (N, K) float32 values. */
  sha256: string;
}

export function fingerprintOf(b: DatasetBuffers): DataFingerprint {
  const hash = createHash('sha256').update(new Uint8Array(b.x));
  if (b.y !== null) hash.update(new Uint8Array(b.y));
  return { rows: b.rows, features: b.features, sha256: hash.digest('hex') };
}

export function fingerprintMetadata(f: DataFingerprint | null): Record<string, string> {
  return f === null ? {} : { [DATA_KEY]: metadataJson(f) };
}

/** The fingerprint a checkpoint records, or null for one written before gradpool recorded it. */
export function parseFingerprint(metadata: Record<string, string>, path: string): DataFingerprint | null {
  const text = metadata[DATA_KEY];
  if (text === undefined) return null;
  let f: Partial<DataFingerprint>;
  try {
    f = parseMetadataJson(text) as Partial<DataFingerprint>;
  } catch {
    f = {};
  }
  const count = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
  if (typeof f !== 'object' || f === null || !count(f.rows) || !count(f.features) || typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256)) {
    throw new CheckpointError(path, `metadata "${DATA_KEY}" is not a data fingerprint: ${text.slice(0, 120)}`);
  }
  return { rows: f.rows as number, features: f.features as number, sha256: f.sha256 };
}

/** What differs between the data a run was trained on and `now`, in words; null when nothing does. */
export function dataChange(then: DataFingerprint, now: DataFingerprint): string | null {
  if (then.rows !== now.rows || then.features !== now.features) {
    const shape = (f: DataFingerprint): string => `${f.rows} rows of ${f.features} features`;
    return `it had ${shape(then)}, this data has ${shape(now)}`;
  }
  if (then.sha256 !== now.sha256) {
    return `it had the same ${now.rows} rows of ${now.features} features but other values ` +
      `(SHA-256 of the features and targets ${then.sha256.slice(0, 12)}... then, ${now.sha256.slice(0, 12)}... now)`;
  }
  return null;
}
