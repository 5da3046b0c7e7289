// The errors an option validator throws, on either side of the thread boundary: the built-in TypeError
// (the wrong kind of value) and RangeError (the right kind, a value not allowed), as piscina and PyTorch
// throw them, subclassed so that a caller can tell "the options are wrong" from a bug in the code.
// src/main/errors.ts exports them with gradpool's other errors.

/** `message`, then `hint: ...` on its own line when there is a hint: how every gradpool error reads. */
export function withHint(message: string, hint: string | undefined): string {
  return hint === undefined ? message : `${message}\nhint: ${hint}`;
}

/** An option of the wrong type: `options.batchSize must be a positive integer; got '64'`. */
export class OptionTypeError extends TypeError {
  readonly hint?: string;
  constructor(message: string, hint?: string) {
    super(withHint(message, hint));
    this.name = 'OptionTypeError';
    this.hint = hint;
  }
}

/** An option whose value is not allowed, alone or with another: `Invalid learning rate: ...`. */
export class OptionRangeError extends RangeError {
  readonly hint?: string;
  constructor(message: string, hint?: string) {
    super(withHint(message, hint));
    this.name = 'OptionRangeError';
    this.hint = hint;
  }
}

/** True for the errors that mean "the options are wrong" (the CLI's usage errors, exit 2). */
export function isOptionError(err: unknown): err is OptionTypeError | OptionRangeError {
  return err instanceof OptionTypeError || err instanceof OptionRangeError;
}
