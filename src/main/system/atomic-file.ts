// Writing a file so that a reader, a crash or a kill finds either the old file or the whole new one,
// never a torn one: a temporary file beside it is written and fsynced, then renamed over it. Temporary
// files of the same target that a killed process left are removed at the next write.

import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FileError } from '../errors.js';

/** The temporary file of a write to `path` by process `pid`: `<path>.tmp-<pid>-<12 hex digits>`. */
function tempName(path: string, pid: number): string {
  return `${path}.tmp-${pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * Writes `data` to `path` atomically. On failure the temporary file is removed, whatever was at `path`
 * is untouched, and the error is a FileError naming `path` with the file system's reason.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const file = await openAtomicFile(path);
  await file.write(data); // a failed write has removed the temporary file
  await file.commit();
}

/** A file written piece by piece beside its target, and put in place whole by commit(). */
export interface AtomicFile {
  /** Appends `data`; resolves once the file system has taken it (so a writer of many pieces holds one). */
  write(data: Uint8Array | string): Promise<void>;
  /** Fsyncs the file and renames it over the target; the folder entry is then made durable. */
  commit(): Promise<void>;
  /** Removes the temporary file: whatever was at the target is untouched. */
  discard(): Promise<void>;
}

/**
 * Opens a temporary file beside `path` for writing in pieces (predictions of any size, in bounded
 * memory). Every failure, of any step, removes the temporary file and is a FileError naming `path`.
 */
export async function openAtomicFile(path: string): Promise<AtomicFile> {
  await removeStaleTemps(path);
  const tmp = tempName(path, process.pid);
  let file: FileHandle | undefined;
  const fail = async (err: unknown): Promise<never> => {
    await file?.close().catch(() => undefined);
    file = undefined;
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new FileError(path, err instanceof Error ? err : new Error(String(err)));
  };
  try {
    file = await open(tmp, 'wx');
  } catch (err) {
    return fail(err);
  }
  return {
    async write(data) {
      if (file === undefined) throw new FileError(path, new Error('the file was already committed or discarded'));
      // writeFile on a handle writes from its position, all of data: pieces follow each other.
      await file.writeFile(data).catch(fail);
    },
    async commit() {
      if (file === undefined) throw new FileError(path, new Error('the file was already committed or discarded'));
      try {
        await file.sync();
        await file.close();
        file = undefined;
        await rename(tmp, path);
      } catch (err) {
        await fail(err);
      }
      await syncFolder(path);
    },
    async discard() {
      await file?.close().catch(() => undefined);
      file = undefined;
      await rm(tmp, { force: true }).catch(() => undefined);
    },
  };
}

/** Makes a rename into `path`'s folder durable. Best effort: some platforms (Windows) cannot open a
 *  directory; the data is already safe in the renamed file, only the directory entry may lag. */
async function syncFolder(path: string): Promise<void> {
  try {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // see above
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
