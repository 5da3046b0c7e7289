// The output paths of the command line checked before any work: a file path that is not a folder, in
// a folder that exists and that this process can create files in (made and removed once), so that a
// run does not train for an epoch to find out it cannot save; and that no file written is a file read,
// or written twice, so that no output replaces the data or another output; and that the inputs read
// whole (IDX files, checkpoints) are regular files.

import { closeSync, openSync, realpathSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
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

/** A file a command reads or writes, by the flag (or argument, `<model>`) that names it. */
export interface FileFlag {
  flag: string;
  path: string;
}

/** The file `flag` names, or null when the flag is not given (or names standard output, '-'). */
export function fileFlag(flag: string, path: string | undefined): FileFlag | null {
  return path === undefined || path === '-' ? null : { flag, path };
}

/**
 * Throws a UsageError naming both flags and the path when a file the command writes is a file it reads,
 * or a file it also writes under another flag: compared as files, not as strings, so `./v.csv`,
 * `data/../v.csv`, a symbolic link to it and a hard link are all `v.csv`.
 */
export function checkDistinctFiles(writes: (FileFlag | null)[], reads: (FileFlag | null)[]): void {
  const seen: { use: FileFlag; id: string; written: boolean }[] = [];
  for (const use of reads) if (use !== null) seen.push({ use, id: fileIdentity(use.path), written: false });
  for (const use of writes) {
    if (use === null) continue;
    const id = fileIdentity(use.path);
    const other = seen.find((s) => s.id === id);
    if (other !== undefined) {
      const where = other.use.path === use.path ? use.path : `${use.path}, and ${other.use.path}`;
      const harm = other.written ? 'one output would overwrite the other' : `${use.flag} would overwrite the input ${other.use.flag} reads`;
      throw new UsageError(`${use.flag} and ${other.use.flag} name the same file (${where}): ${harm}; give ${use.flag} another path`);
    }
    seen.push({ use, id, written: true });
  }
}

/** True when the two paths name the same file (see fileIdentity). */
export function sameFile(a: string, b: string): boolean {
  return fileIdentity(a) === fileIdentity(b);
}

/**
 * What makes two paths the same file: its device and inode when it exists (through symbolic links and
 * hard links), else the real path of its folder and its name (a file not written yet). A path whose
 * folder does not exist either is compared by its absolute form; the command fails on it later anyway.
 */
function fileIdentity(path: string): string {
  const full = resolve(path);
  try {
    const s = statSync(full);
    return `inode ${s.dev}:${s.ino}`;
  } catch {
    try {
      return `path ${join(realpathSync(dirname(full)), basename(full))}`;
    } catch {
      return `path ${full}`;
    }
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
