// The errors gradpool throws on the user's behalf. Option errors are the built-in TypeError and
// RangeError (as piscina does); data and shape problems are DataError, which names the data set, the
// row or field, what was found and what was expected, and carries a hint where the user can fix it.

export class DataError extends Error {
  readonly hint?: string;
  constructor(message: string, hint?: string) {
    super(hint === undefined ? message : `${message}\nhint: ${hint}`);
    this.name = 'DataError';
    this.hint = hint;
  }
}

/** Formats a shape as PyTorch prints it: (64, 10), (64,). */
export function shapeText(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}
