// The checks every options object of the library is validated with, so that one rule reads and throws
// the same way everywhere: the wrong kind of value is an OptionTypeError, the right kind with a value not
// allowed an OptionRangeError, and the message names the option as the caller wrote it
// (`options.batchSize`, `fit options.epochs`) and shows the value received the one way `shown` does.

import { OptionRangeError, OptionTypeError, shown } from '../../shared/option-errors.js';

export { shown };

/** An integer >= 1. */
export function positiveInteger(name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number') throw new OptionTypeError(`${name} must be a positive integer; got ${shown(v)}`);
  if (!Number.isInteger(v) || v < 1) throw new OptionRangeError(`${name} must be a positive integer; got ${shown(v)}`);
}

/** An integer >= 0. */
export function nonNegativeInteger(name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number') throw new OptionTypeError(`${name} must be a non-negative integer; got ${shown(v)}`);
  if (!Number.isInteger(v) || v < 0) throw new OptionRangeError(`${name} must be a non-negative integer; got ${shown(v)}`);
}

/** An integer from min to max, inclusive. */
export function integerIn(name: string, v: unknown, min: number, max: number): asserts v is number {
  if (typeof v !== 'number') throw new OptionTypeError(`${name} must be an integer from ${min} to ${max}; got ${shown(v)}`);
  if (!Number.isInteger(v) || v < min || v > max) throw new OptionRangeError(`${name} must be an integer from ${min} to ${max}; got ${shown(v)}`);
}

/** Any integer. */
export function integer(name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number') throw new OptionTypeError(`${name} must be an integer; got ${shown(v)}`);
  if (!Number.isInteger(v)) throw new OptionRangeError(`${name} must be an integer; got ${shown(v)}`);
}

/** A number (not NaN) that passes `allowed`, worded by `what` ("a number >= 0"). */
export function numberWhere(name: string, v: unknown, what: string, allowed: (n: number) => boolean): asserts v is number {
  if (typeof v !== 'number') throw new OptionTypeError(`${name} must be ${what}; got ${shown(v)}`);
  if (Number.isNaN(v) || !allowed(v)) throw new OptionRangeError(`${name} must be ${what}; got ${shown(v)}`);
}

export function boolean(name: string, v: unknown): asserts v is boolean {
  if (typeof v !== 'boolean') throw new OptionTypeError(`${name} must be a boolean; got ${shown(v)}`);
}

/** One of a few strings. */
export function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): asserts v is T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    const list = allowed.map((a) => `'${a}'`).join(', ');
    if (typeof v !== 'string') throw new OptionTypeError(`${name} must be one of ${list}; got ${shown(v)}`);
    throw new OptionRangeError(`${name} must be one of ${list}; got ${shown(v)}`);
  }
}

/** An array of `length` numbers, each passing `allowed`, worded by `what` ("3 finite numbers >= 0, one per class"). */
export function numberArray(name: string, v: unknown, length: number, what: string, allowed: (n: number) => boolean): asserts v is number[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) throw new OptionTypeError(`${name} must be ${what}; got ${shown(v)}`);
  if (v.length !== length || !v.every(allowed)) throw new OptionRangeError(`${name} must be ${what}; got ${shown(v)}`);
}

/** Refuses keys that are not options, naming the known ones. */
export function knownKeys(name: string, o: object, known: readonly string[], what: string): void {
  for (const key of Object.keys(o)) {
    if (!known.includes(key)) throw new OptionTypeError(`${name}.${key} is not ${what}; the options are: ${known.join(', ')}`);
  }
}

/** `o` without its undefined entries, so that a spread over defaults keeps the defaults for them. */
export function definedEntries<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
