// The per-class report of an evaluation, as scikit-learn's classification_report computes it from
// confusion matrices: precision, recall, F1 and support per class, with macro and support-weighted
// averages. With imbalanced classes, accuracy alone misleads; this is what to read instead.

export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  /** True rows of the class. */
  support: number;
}

export interface ClassReport {
  /** One entry per class (softmax losses, or the two classes of one sigmoid output), or per output's
   *  positive class (several sigmoid outputs). */
  classes: ClassMetrics[];
  macro: Omit<ClassMetrics, 'support'>;
  weighted: Omit<ClassMetrics, 'support'>;
}

/** Per class: rows predicted right (tp), rows predicted as it, and its true rows (support). */
export interface ClassCounts {
  tp: Float64Array;
  predicted: Float64Array;
  support: Float64Array;
}

/**
 * The per-class counts of confusion matrices counts[true][predicted]: one K x K matrix gives a class per
 * row; several 2 x 2 matrices (one per output of a multi-label model) give the positive class of each.
 */
export function classCounts(confusions: number[][][]): ClassCounts {
  const one = confusions.length === 1 ? confusions[0] : null;
  const K = one !== null ? one.length : confusions.length;
  const c: ClassCounts = { tp: new Float64Array(K), predicted: new Float64Array(K), support: new Float64Array(K) };
  for (let k = 0; k < K; k++) {
    const [m, j] = one !== null ? [one, k] : [confusions[k], 1];
    c.tp[k] = m[j][j];
    for (let i = 0; i < m.length; i++) {
      c.predicted[k] += m[i][j];
      c.support[k] += m[j][i];
    }
  }
  return c;
}

/**
 * From counts[true][predicted]: one K x K matrix gives a row per class; several 2 x 2 matrices (one per
 * output of a multi-label model) give the positive class of each. A ratio with a zero denominator is 0,
 * as scikit-learn's zero_division default reports it.
 */
export function classReport(confusions: number[][][]): ClassReport {
  return reportOfCounts(classCounts(confusions));
}

/** The report from per-class counts (classCounts, or counted without a matrix for many classes). */
export function reportOfCounts(counts: ClassCounts): ClassReport {
  const classes: ClassMetrics[] = [];
  for (let k = 0; k < counts.tp.length; k++) {
    const tp = counts.tp[k];
    const predicted = counts.predicted[k];
    const support = counts.support[k];
    const precision = predicted === 0 ? 0 : tp / predicted;
    const recall = support === 0 ? 0 : tp / support;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    classes.push({ precision, recall, f1, support });
  }
  const total = classes.reduce((s, c) => s + c.support, 0);
  const average = (weightOf: (c: ClassMetrics) => number, sum: number): Omit<ClassMetrics, 'support'> => ({
    precision: classes.reduce((s, c) => s + weightOf(c) * c.precision, 0) / sum,
    recall: classes.reduce((s, c) => s + weightOf(c) * c.recall, 0) / sum,
    f1: classes.reduce((s, c) => s + weightOf(c) * c.f1, 0) / sum,
  });
  return { classes, macro: average(() => 1, classes.length), weighted: average((c) => c.support, total || 1) };
}

/** Inverse-frequency class weights, scikit-learn's 'balanced': n_samples / (n_classes * count_k). */
export function balancedClassWeights(labels: ArrayLike<number>, classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (Number.isInteger(y) && y >= 0 && y < classes) counts[y]++;
  }
  const n = counts.reduce((a, b) => a + b, 0);
  const missing = counts.findIndex((c) => c === 0);
  if (missing >= 0) {
    throw new RangeError(
      `balanced class weights need every class in the training labels; class ${missing} of ${classes} has none`,
    );
  }
  return counts.map((c) => n / (classes * c));
}

/** The report as a table, one line per class and the two averages. */
export function reportText(r: ClassReport, names?: string[]): string {
  const f = (v: number): string => v.toFixed(4).padStart(10);
  const label = (k: number): string => (names?.[k] ?? String(k)).padStart(12);
  const lines = [`${''.padStart(12)} precision    recall        f1   support`];
  r.classes.forEach((c, k) => lines.push(`${label(k)}${f(c.precision)}${f(c.recall)}${f(c.f1)}${String(c.support).padStart(10)}`));
  const total = r.classes.reduce((s, c) => s + c.support, 0);
  lines.push(`${'macro avg'.padStart(12)}${f(r.macro.precision)}${f(r.macro.recall)}${f(r.macro.f1)}${String(total).padStart(10)}`);
  lines.push(`${'weighted avg'.padStart(12)}${f(r.weighted.precision)}${f(r.weighted.recall)}${f(r.weighted.f1)}${String(total).padStart(10)}`);
  return lines.join('\n') + '\n';
}
