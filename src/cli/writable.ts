// The output paths of the command line checked before any work: a file path that is not a folder, in
// a folder that exists and that this process can create files in (made and removed once), so that a
// run does not train for an epoch to find out it cannot save; and the inputs read whole (IDX files,
// checkpoints), which must be regular files.

import { closeSync, openSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileKind } from '../main/index.js';
import { UsageError } from './usage-error.js';

/** Throws a UsageError naming `flag` unless `path` can be written as a file. */
export function checkWritableFile(flag: string, path: string): void {
  const full = resolve(path);
  if (kind(full) === 'folder') throw new UsageError(`${flag} ${path}: is a folder; expected a file path (e.g. ${join(path, 'model.safetensors')})`);
  checkWritableDir(flag, dirname(full), path);
}

/** Throws a UsageError naming `flag` unless files can be created in the folder `dir`. */
export function checkWritableDir(flag: string, dir: string, shown = dir): void {
  const full = resolve(dir);
  const k = kind(full);
  if (k === 'missing') throw new UsageError(`${flag} ${shown}: the folder ${full} does not exist`);
  if (k === 'file') throw new UsageError(`${flag} ${shown}: ${full} is a file, not a folder`);
  const probe = join(full, `.gradpool-write-check-${process.pid}`);
  try {
    closeSync(openSync(probe, 'wx'));
  } catch (err) {
    throw new UsageError(`${flag} ${shown}: cannot create files in ${full} (${(err as Error).message})`);
  }
  rmSync(probe, { force: true });
}

function kind(path: string): 'missing' | 'file' | 'folder' {
  try {
    return statSync(path).isDirectory() ? 'folder' : 'file';
  } catch {
    return 'missing';
  }
}

/** Throws a UsageError naming the flag and the path for an input read whole (an IDX file, a checkpoint)
 *  that exists but is not a regular file (a device such as /dev/zero, a FIFO): reading it would not end.
 *  A missing file or a folder is left to the loader, which names it too. */
export function checkRegularFiles(inputs: [flag: string, path: string | undefined][]): void {
  for (const [flag, path] of inputs) {
    if (path === undefined) continue;
    let stats;
    try {
      stats = statSync(path);
    } catch {
      continue;
    }
    if (!stats.isFile() && !stats.isDirectory()) {
      throw new UsageError(`${flag} ${path}: is ${fileKind(stats)}, not a regular file; expected a file`);
    }
  }
}
