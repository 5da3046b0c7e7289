// Data files read for a saved model (`gradpool evaluate`, `gradpool predict`): a CSV file's columns are
// the ones the model records (its feature columns in its order, its label column, its class names), so
// a file with the columns in another order, extra columns or the classes listed in another order reads
// as the model was trained. Features stay raw: the Trainer applies the model's normalisation.

import { isSoftmaxLoss, loadCsv, type LoadedData, type Trainer } from '../main/index.js';
import { UsageError } from './usage-error.js';

/** IDX files by name, as torchvision and the original site ship them: ...-idx3-ubyte, optionally .gz. */
export function isIdxName(path: string): boolean {
  return /idx\d-ubyte(\.gz)?$/i.test(path) || /\.idx$/i.test(path);
}

/** The columns of a --label-column flag: names, or 0-based indices. */
export function labelColumnsOf(flag: string): (string | number)[] {
  return flag.split(',').map((c) => (/^\d+$/.test(c.trim()) ? Number(c) : c.trim()));
}

/**
 * Loads a CSV file for `trainer`'s model: with labels (to evaluate) from --label-column or else the
 * model's recorded label column(s); without (to predict), every recorded feature column, other columns
 * (a label, an id) left out.
 */
export async function loadCsvForModel(
  trainer: Trainer, path: string, labels: boolean, labelColumn: string | undefined,
): Promise<LoadedData> {
  const p = trainer.preprocessing;
  const labelColumns = labelColumn !== undefined ? labelColumnsOf(labelColumn) : (p?.labelNames ?? null);
  if (labels && labelColumns === null) {
    throw new UsageError(`${path}: the model records no label column (it was not trained from a CSV file with a header); give --label-column`);
  }
  return loadCsv(path, {
    labelColumns: labels ? (labelColumns as (string | number)[]) : [],
    ignoreColumns: labels || labelColumns === null || p?.featureNames != null ? undefined : labelColumns,
    targets: labels && isSoftmaxLoss(trainer.config.loss) && (labelColumns?.length ?? 1) === 1 ? 'index' : 'values',
    featureColumns: p?.featureNames ?? undefined,
    classNames: labels ? (p?.classNames ?? undefined) : undefined,
  });
}
