// Writing a file so that a reader, a crash or a kill finds either the old file or the whole new one,
// never a torn one: a temporary file beside it is written and fsynced, then renamed over it.

import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Writes `data` to `path` atomically. On failure the temporary file is removed and whatever was at
 * `path` is untouched; the error is the file system's.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
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
    throw err;
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
