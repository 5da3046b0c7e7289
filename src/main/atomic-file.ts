// Writing a file so that a reader, a crash or a kill finds either the old file or the whole new one,
// never a torn one: a temporary file beside it is written and fsynced, then renamed over it. Temporary
// files of the same target that a killed process left are removed at the next write.

import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FileError } from './errors.js';

/** The temporary file of a write to `path` by process `pid`: `<path>.tmp-<pid>-<12 hex digits>`. */
function tempName(path: string, pid: number): string {
  return `${path}.tmp-${pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * Writes `data` to `path` atomically. On failure the temporary file is removed, whatever was at `path`
 * is untouched, and the error is a FileError naming `path` with the file system's reason.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await removeStaleTemps(path);
  const tmp = tempName(path, process.pid);
  let file: FileHandle | undefined;
  try {
    file = await open(tmp, 'wx');
    await file.writeFile(data);
    await file.sync();
    await file.close();
    file = undefined;
    await rename(tmp, path);
  } catch (err) {
    await file?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new FileError(path, err instanceof Error ? err : new Error(String(err)));
  }
  // Makes the rename itself durable. Best effort: some platforms (Windows) cannot open a directory.
  try {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // the data is already safe in the renamed file; only the directory entry may lag
  }
}

/**
 * Removes the temporary files of writes to `path` whose process is gone (killed during a save: up to a
 * whole checkpoint each). Those of live processes, this one included, may be writes under way and stay.
 * Best effort: a folder that cannot be listed is the write's own error to report.
 */
async function removeStaleTemps(path: string): Promise<void> {
  const prefix = `${basename(path)}.tmp-`;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    const m = name.startsWith(prefix) ? /^(\d+)-[0-9a-f]{12}$/.exec(name.slice(prefix.length)) : null;
    if (m === null || processAlive(Number(m[1]))) continue;
    await rm(join(dirname(path), name), { force: true }).catch(() => undefined);
  }
}

/** True when process `pid` exists (signal 0 checks without sending anything; EPERM: it exists, not ours). */
function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
