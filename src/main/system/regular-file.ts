// Reading a whole file into memory, for the loaders that need it whole (IDX, checkpoints): only a
// regular file, whose size is known before it is read. A device (/dev/zero, /dev/urandom), a FIFO or a
// socket has no end a whole read could wait for; it is refused by name instead of read without bound.

import { constants, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';

/** What a path is when it is not a regular file: 'a character device', 'a folder', ... */
export function fileKind(stats: Stats): string {
  if (stats.isDirectory()) return 'a folder';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Thrown for a path that is not a regular file; `message` reads "is a character device, not a regular file". */
export class NotRegularFileError extends Error {
  readonly code = 'ENOTREG';
  constructor(readonly kind: string) {
    super(`is ${kind}, not a regular file`);
    this.name = 'NotRegularFileError';
  }
}

/** The bytes of the regular file at `path`, read up to the size it had when opened (a file that grows
 *  meanwhile is read as it was); a folder is fs's EISDIR error, anything else a NotRegularFileError. */
export async function readRegularFile(path: string): Promise<Buffer> {
  // Non-blocking, so that opening a FIFO with no writer returns at once (to be refused) instead of waiting.
  const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stats = await file.stat();
    if (stats.isDirectory()) throw Object.assign(new Error('EISDIR: illegal operation on a directory, read'), { code: 'EISDIR' });
    if (!stats.isFile()) throw new NotRegularFileError(fileKind(stats));
    const bytes = Buffer.allocUnsafe(stats.size);
    let filled = 0;
    while (filled < bytes.length) {
      const { bytesRead } = await file.read(bytes, filled, bytes.length - filled, filled);
      if (bytesRead === 0) break; // shrunk meanwhile: what there is
      filled += bytesRead;
    }
    return bytes.subarray(0, filled);
  } finally {
    await file.close();
  }
}
