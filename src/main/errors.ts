// Every error gradpool throws on the user's behalf, in one place. Wrong options are OptionTypeError and
// OptionRangeError (the built-in TypeError and RangeError, as piscina and PyTorch throw them, subclassed
// so that a caller can tell an option error from a bug; defined in src/shared, whose validators throw
// them too). The rest share GradpoolError, which carries a `hint` when the user can fix the cause.

import { withHint } from '../shared/option-errors.js';

/** Formats a shape as PyTorch prints it: (64, 10), (64,). */
export function shapeText(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

export { isOptionError, OptionRangeError, OptionTypeError } from '../shared/option-errors.js';

/** The base of gradpool's other errors: the message, then `hint: ...` on its own line when there is one. */
export class GradpoolError extends Error {
  readonly hint?: string;
  constructor(message: string, hint?: string, options?: ErrorOptions) {
    super(withHint(message, hint), options);
    this.name = 'GradpoolError';
    this.hint = hint;
  }
}

/** Data that cannot be used: names the data set, the row or field, what was found and what was expected. */
export class DataError extends GradpoolError {
  constructor(message: string, hint?: string) {
    super(message, hint);
    this.name = 'DataError';
  }
}

/** A checkpoint file that cannot be read or does not fit: names the file first. */
export class CheckpointError extends GradpoolError {
  readonly path: string;
  constructor(path: string, message: string, hint?: string) {
    super(`${path}: ${message}`, hint);
    this.name = 'CheckpointError';
    this.path = path;
  }
}

/** Why a worker was stopped: it made no progress for options.workerTimeout ms (or for a few seconds
 *  after a stop was requested). The cause of a ShardFailure when that kept happening. */
export class WorkerTimeout extends GradpoolError {
  constructor(message: string) {
    super(message);
    this.name = 'WorkerTimeout';
  }
}

/** A file that could not be written: names the caller's path (not a temporary file's) and the system's
 *  reason; `code` is the system's (ENOSPC, EROFS, EACCES, ...), `cause` its error. */
export class FileError extends GradpoolError {
  readonly path: string;
  readonly code: string | undefined;
  constructor(path: string, cause: Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    super(`${path}: cannot write the file (${cause.message})`, FILE_HINTS[code ?? ''], { cause });
    this.name = 'FileError';
    this.path = path;
    this.code = code;
  }
}

const FILE_HINTS: Record<string, string> = {
  ENOSPC: 'the disk is full: free some space, or write to another disk',
  EDQUOT: 'the disk quota is used up: free some space, or write to another disk',
  EROFS: 'the file system is read-only: write to another folder',
  EACCES: 'this process may not write there: write to another folder, or change its permissions',
  EPERM: 'this process may not write there: write to another folder, or change its permissions',
  EISDIR: 'the path is a folder: give a file name in it',
  ENOENT: 'the folder does not exist: create it first, or write to another folder',
  ENOTDIR: 'a part of the path is a file, not a folder',
};

/** A shard (or the update after the shards) whose workers failed more often than options.shardRetries
 *  allows; fit() rejects with it, its samples named in the message. */
export class ShardFailure extends GradpoolError {
  constructor(
    message: string,
    /** The shard, or -1 for the gradient reduction and update after the shards. */
    readonly shard: number,
    /** Positions [start, end) of the epoch's order the shard covers (the whole batch for -1). */
    readonly positions: [number, number],
    /** Workers that failed on it in a row. */
    readonly attempts: number,
    /** The last worker error. */
    readonly cause: Error,
    hint?: string,
  ) {
    super(message, hint, { cause });
    this.name = 'ShardFailure';
  }
}

/** A step whose loss or gradient was NaN or infinite, with options.onNonfinite 'stop': nothing was
 *  applied, the parameters are those from before the step. */
export class NonfiniteError extends GradpoolError {
  constructor(
    message: string,
    /** The step (1-based, over the Trainer's life) that was not applied. */
    readonly step: number,
    /** The shards whose loss or gradient was not finite, with their positions in the epoch's order and
     *  their rows. */
    readonly shards: { shard: number; positions: [number, number]; rows: number[] }[],
    hint?: string,
  ) {
    super(message, hint);
    this.name = 'NonfiniteError';
  }
}
