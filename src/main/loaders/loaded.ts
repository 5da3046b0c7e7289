// What every loader returns: a data set in flat typed arrays, with the names of its rows for messages.

/** A loaded data set: flat row-major features, and targets (class indices, or (N, K) float values).
 *  It is a `Dataset` as the Trainer takes it (x, y, rowName). */
export interface LoadedData {
  /** (N, D) row-major features. */
  x: Float32Array;
  /** (N,) class indices, or (N, K) row-major float targets in [0, 1]. */
  y: Int32Array | Float32Array;
  rows: number;
  features: number;
  /** 1 for class indices; K for value targets. */
  targetColumns: number;
  /** Where row r came from: 'train.csv line 12', 'train-images-idx3-ubyte.gz image 7'. */
  rowName: (row: number) => string;
  /** CSV header names of the feature columns, when the file has a header. */
  featureNames?: string[];
  /** CSV header names of the label column(s), when the file has a header. */
  labelNames?: string[];
  /** The class name of each class index, when the labels were names (CSV): index k is classNames[k]. */
  classNames?: string[];
}
