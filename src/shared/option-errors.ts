// The errors an option validator throws, on either side of the thread boundary: the built-in TypeError
// (the wrong kind of value) and RangeError (the right kind, a value not allowed), as piscina and PyTorch
// throw them, subclassed so that a caller can tell "the options are wrong" from a bug in the code.
// src/main/errors.ts exports them with gradpool's other errors.

/** A received value as messages show it: strings, arrays and objects as JSON, the rest as is; a string
 *  that reads as a number or a boolean says it is a string (`"0.1" (a string)`), or it would read as one. */
export function shown(v: unknown): string {
  if (typeof v === 'string') return `${JSON.stringify(v.length > 120 ? `${v.slice(0, 117)}...` : v)}${stringNote(v)}`;
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null || typeof v === 'bigint') return String(v);
  if (typeof v === 'function' || typeof v === 'symbol') return typeof v;
  try {
    const text = JSON.stringify(v);
    return text.length > 120 ? `${text.slice(0, 117)}...` : text;
  } catch {
    return Object.prototype.toString.call(v);
  }
}

/** shown, but a string in single quotes, as PyTorch's own messages print names ('cosine', 'rel'), and an
 *  array's strings too (there the quotes alone say it is a string). */
export function shownQuoted(v: unknown): string {
  const quoted = (s: string): string => `'${s.length > 120 ? `${s.slice(0, 117)}...` : s}'`;
  if (typeof v === 'string') return quoted(v) + stringNote(v);
  if (Array.isArray(v)) return `[${v.map((e) => (typeof e === 'string' ? quoted(e) : shownQuoted(e))).join(', ')}]`;
  return shown(v);
}

/** ' (a string)' for a string that, quoted, could still be taken for a number or a boolean; else ''. */
export function stringNote(v: string): string {
  const t = v.trim();
  return (t !== '' && !Number.isNaN(Number(t))) || /^(true|false|null|undefined|nan|-?inf(inity)?)$/i.test(t) ? ' (a string)' : '';
}

/** `message`, then `hint: ...` on its own line when there is a hint: how every gradpool error reads. */
export function withHint(message: string, hint: string | undefined): string {
  return hint === undefined ? message : `${message}\nhint: ${hint}`;
}

/** A built-in error (made by `make` from the message) with a hint, as gradpool's own errors carry one:
 *  on its own line of the message, and in its `hint` field. */
export function hinted<E extends Error>(make: (message: string) => E, message: string, hint: string): E & { readonly hint: string } {
  return Object.assign(make(withHint(message, hint)), { hint });
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
