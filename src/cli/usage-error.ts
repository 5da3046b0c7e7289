// The CLI's own error: a flag problem found after parsing (a missing file flag, flags that do not go
// together). The CLI prints it as one line and exits 2, as it does the library's option and data errors;
// any other failure exits 1.

import { CheckpointError, DataError, isOptionError } from '../main/index.js';
import { usageWords } from './option-flags.js';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Errors that mean the user asked for something that cannot be done: exit 2, as a bad flag. */
export function isUsageError(err: unknown): boolean {
  return err instanceof UsageError || err instanceof DataError || err instanceof CheckpointError || isOptionError(err);
}

/** Prints `err` as one line after the command's name, in flag terms; returns the exit code. */
export function failure(command: string, err: unknown, code = isUsageError(err) ? 2 : 1): number {
  process.stderr.write(`${command}: ${usageWords(err instanceof Error ? err.message : String(err))}\n`);
  return code;
}
