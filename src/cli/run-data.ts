// The data the training script's flags name: bundled MNIST, IDX or CSV files, with a seeded validation
// split, how long loading took, and the model's preprocessing for them (the normalisation fitted on the
// training split, the column and class names), or the one a checkpoint recorded; and the check that a
// source has its files.

import { statSync } from 'node:fs';
import {
  applyNormalization, fitPreprocessing, loadCsv, loadIdx, loadMnist, splitValidation,
  type LoadedData, type NormalizeMode, type Preprocessing, type ResolvedPreprocessing,
} from '../main/index.js';
import { namesText } from './output.js';
import { UsageError } from './usage-error.js';

/** The data flags, saved in a checkpoint's metadata so that --resume reloads the same data. */
export interface DataFlags {
  data: 'mnist' | 'idx' | 'csv';
  train?: string;
  test?: string;
  trainImages?: string;
  trainLabels?: string;
  testImages?: string;
  testLabels?: string;
  labelColumn?: string;
  /** CSV: the delimiter, already a character (',', ';', '\t', '|'); detected when not given. */
  delimiter?: string;
  featureColumns?: string;
  ignoreColumns?: string;
  normalize?: NormalizeMode;
  validationSplit?: number;
}

export interface RunData {
  train: LoadedData;
  /** Evaluated after every epoch (the per-epoch figures, early stopping, --save-best): the validation
   *  split of the training data. The test data is not: choosing an epoch by it would be choosing on it. */
  validation?: LoadedData;
  /** Evaluated at the end, with the confusion matrix and per-class report. */
  test?: LoadedData;
  description: string;
  /** For a new model: the preprocessing fitted on the training split (the data stays raw; the Trainer
   *  applies it). null when the model's own is used (recorded, or the legacy path below). */
  preprocessing: Preprocessing | null;
  /** Reading the files: seconds, and the bytes of the files read (0 for the bundled MNIST). */
  loading: { seconds: number; bytes: number };
}

/** Where the model's preprocessing comes from: fitted on this run's training split, recorded in the
 *  checkpoint that is resumed or initialised from, or (a checkpoint written before gradpool recorded
 *  one) fitted again and applied to the data as that version did. */
export type PreprocessingSource =
  | { kind: 'fit' }
  | { kind: 'recorded'; path: string; preprocessing: ResolvedPreprocessing }
  | { kind: 'legacy'; path: string };

/** The default normalisation per source: MNIST is already in [0, 1]; IDX pixels are bytes; CSV
 *  features have any scale. */
export function defaultNormalize(data: DataFlags['data']): NormalizeMode {
  return data === 'mnist' ? 'none' : data === 'idx' ? 'scale' : 'standardize';
}

/** Throws a usage error (a message naming the flags) when a data source lacks its files. */
export function checkDataFlags(f: DataFlags): void {
  const need = (flags: [string, string | undefined][], why: string): void => {
    const missing = flags.filter(([, v]) => v === undefined).map(([n]) => n);
    if (missing.length > 0) throw new UsageError(`--data ${f.data} needs ${missing.join(' and ')} (${why})`);
  };
  const unused = (flags: [string, string | undefined][]): void => {
    const given = flags.filter(([, v]) => v !== undefined).map(([n]) => n);
    if (given.length > 0) throw new UsageError(`${given.join(', ')} ${given.length > 1 ? 'apply' : 'applies'} to another --data than ${f.data}`);
  };
  const csv: [string, string | undefined][] = [
    ['--train', f.train], ['--test', f.test], ['--label-column', f.labelColumn], ['--delimiter', f.delimiter],
    ['--feature-columns', f.featureColumns], ['--ignore-columns', f.ignoreColumns],
  ];
  const idx: [string, string | undefined][] = [
    ['--train-images', f.trainImages], ['--train-labels', f.trainLabels], ['--test-images', f.testImages], ['--test-labels', f.testLabels],
  ];
  if (f.data === 'csv') {
    need([['--train', f.train], ['--label-column', f.labelColumn]], 'the training file and its label column');
    unused(idx);
  } else if (f.data === 'idx') {
    need([['--train-images', f.trainImages], ['--train-labels', f.trainLabels]], 'the training images and labels');
    if ((f.testImages === undefined) !== (f.testLabels === undefined)) {
      throw new UsageError('--test-images and --test-labels go together');
    }
    unused(csv);
  } else {
    unused([...csv, ...idx]);
  }
  const v = f.validationSplit;
  if (v !== undefined && !(v >= 0 && v < 1)) throw new UsageError(`--validation-split takes a fraction in [0, 1); got ${v}`);
}

/** A comma-separated list of columns: 0-based indices or header names. */
const columnList = (text: string): (string | number)[] => text.split(',').map((c) => (/^\d+$/.test(c.trim()) ? Number(c) : c.trim()));

/** Loads the data the flags name, validated as it is read; softmax losses take class indices. */
export async function loadRunData(
  f: DataFlags, classIndexTargets: boolean, seed: number, source: PreprocessingSource = { kind: 'fit' },
): Promise<RunData> {
  let train: LoadedData;
  let test: LoadedData | undefined;
  let description: string;
  const start = performance.now();
  let files: string[] = [];
  if (f.data === 'mnist') {
    const m = loadMnist();
    train = m.train;
    test = m.test;
    description = `MNIST digits (bundled), ${m.train.y.length} train / ${m.test.y.length} test`;
  } else if (f.data === 'idx') {
    train = await loadIdx(f.trainImages as string, f.trainLabels as string);
    test = f.testImages === undefined ? undefined : await loadIdx(f.testImages, f.testLabels as string);
    files = [f.trainImages, f.trainLabels, f.testImages, f.testLabels].filter((p) => p !== undefined) as string[];
    description = `IDX ${f.trainImages}, ${train.rows} train` + (test === undefined ? '' : ` / ${test.rows} test`);
  } else {
    const labelColumns = columnList(f.labelColumn as string);
    const options = {
      labelColumns,
      targets: classIndexTargets && labelColumns.length === 1 ? 'index' : 'values',
      delimiter: f.delimiter,
      featureColumns: f.featureColumns === undefined ? undefined : columnList(f.featureColumns),
      ignoreColumns: f.ignoreColumns === undefined ? undefined : columnList(f.ignoreColumns),
    } as const;
    train = await loadCsv(f.train as string, options);
    // The test file's class names take the training file's indices, whatever order it lists them in.
    test = f.test === undefined ? undefined : await loadCsv(f.test, { ...options, classNames: train.classNames });
    files = [f.train, f.test].filter((p) => p !== undefined) as string[];
    description = `CSV ${f.train}, ${train.rows} train` + (test === undefined ? '' : ` / ${test.rows} test`);
    const names = train.classNames;
    if (names !== undefined) {
      description += `; ${names.length} classes by name (${namesText(names)}) as 0..${names.length - 1}`;
    }
  }
  const loading = { seconds: (performance.now() - start) / 1000, bytes: files.reduce((sum, p) => sum + statSync(p).size, 0) };
  let validation: LoadedData | undefined;
  if (f.validationSplit !== undefined && f.validationSplit > 0) {
    const split = splitValidation(train, f.validationSplit, seed);
    train = split.train;
    validation = split.validation;
    description += `; ${validation.rows} of the training rows held out for validation (--validation-split ${f.validationSplit}, seed ${seed})`;
  }
  if (test !== undefined) description += '; the test data is evaluated at the end only';
  const mode = f.normalize ?? defaultNormalize(f.data);
  let preprocessing: Preprocessing | null = null;
  if (source.kind === 'recorded') {
    const n = source.preprocessing.normalize;
    if (n !== null) description += `; features normalised (${n.mode}, statistics recorded in ${source.path})`;
  } else {
    // Statistics from the training split only, applied to every split (by the Trainer, or here for a
    // checkpoint that records none).
    const fitted = fitPreprocessing(train, mode);
    if (mode !== 'none') description += `; features normalised (${mode}, training statistics)`;
    if (source.kind === 'fit') {
      preprocessing = fitted;
    } else if (fitted.normalize !== null) {
      for (const d of [train, validation, test]) if (d !== undefined) applyNormalization(d, fitted.normalize);
      description += `, fitted again: ${source.path} records no preprocessing (written by an earlier gradpool)`;
    }
  }
  return {
    train,
    validation,
    test,
    description,
    preprocessing,
    loading,
  };
}
