// The bytes a CSV file holds as text, whatever it was saved as: a gzip file (found by its magic bytes
// 1f 8b, not its name) is gunzipped as it streams; a UTF-16 file (by its byte-order mark) is decoded to
// UTF-8 as it streams; a UTF-8 byte-order mark is left for the reader, which skips it. UTF-16 without a
// mark and UTF-32 are refused naming the encoding, instead of read as text full of NULs. Nothing is held
// whole: the reader's limits (the longest line, memory) apply to the decoded bytes as they come.

import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, type Gunzip } from 'node:zlib';
import { DataError } from '../errors.js';

/** Reads up to `length` bytes into buf[offset...]; 0 at the end. */
export type ReadBytes = (buf: Buffer, offset: number, length: number) => Promise<number>;

/** A CSV file's text, read as UTF-8 bytes; close() ends the gunzipping when reading stops early. */
export interface CsvBytes {
  read: ReadBytes;
  close: () => void;
  /** About how many bytes of text the file holds, to size the rows' arrays at first: the file's size,
   *  half of it for UTF-16, and for a gzip file its compressed size (the arrays grow as needed). */
  textBytes: number;
}

const CHUNK_BYTES = 1 << 20;

/** The file's text as UTF-8 bytes; see the file's head. */
export async function csvBytes(file: FileHandle, path: string): Promise<CsvBytes> {
  const plain = new Chunks(async () => {
    const b = Buffer.allocUnsafe(CHUNK_BYTES);
    const { bytesRead } = await file.read(b, 0, b.length, null);
    return bytesRead === 0 ? null : b.subarray(0, bytesRead);
  }, (buf, offset, length) => file.read(buf, offset, length, null).then((r) => r.bytesRead));
  let src = plain;
  let gunzip: Gunzip | null = null;
  let head = await src.peek(4);
  if (head[0] === 0x1f && head[1] === 0x8b) {
    gunzip = createGunzip();
    src = gunzipped(src, gunzip, path);
    head = await src.peek(4);
  }
  const once = gunzip !== null ? ' once gunzipped' : '';
  const bom32 = (head[0] === 0xff && head[1] === 0xfe && head[2] === 0 && head[3] === 0) || (head[0] === 0 && head[1] === 0 && head[2] === 0xfe && head[3] === 0xff);
  if (bom32) {
    throw new DataError(`${path}: the file is UTF-32 text (its byte-order mark${once}); gradpool reads CSV files as UTF-8 or UTF-16`,
      'save it as UTF-8 (e.g. iconv -f UTF-32 -t UTF-8 in.csv > out.csv)');
  }
  const utf16 = head[0] === 0xff && head[1] === 0xfe ? 'utf-16le' : head[0] === 0xfe && head[1] === 0xff ? 'utf-16be' : null;
  if (utf16 !== null) {
    src = decoded(src, utf16);
  } else if (head.length >= 4 && ((head[1] === 0 && head[3] === 0 && head[0] !== 0) || (head[0] === 0 && head[2] === 0 && head[1] !== 0))) {
    const order = head[1] === 0 ? 'UTF-16LE' : 'UTF-16BE';
    throw new DataError(
      `${path}: the file looks like ${order} text without a byte-order mark${once} (every other byte is 0); gradpool reads CSV files as UTF-8, ` +
        'or as UTF-16 with a byte-order mark',
      `save it as UTF-8 (e.g. iconv -f ${order} -t UTF-8 in.csv > out.csv)`,
    );
  }
  const size = (await file.stat()).size;
  return {
    read: (buf, offset, length) => src.read(buf, offset, length),
    close: () => gunzip?.destroy(),
    textBytes: utf16 !== null ? size / 2 : size,
  };
}

/** A stream of chunks read on demand, with a look at its first bytes; `direct` reads straight into the
 *  caller's buffer once what was looked at is used up (the plain file: no copy). */
class Chunks {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private ended = false;

  constructor(private readonly next: () => Promise<Buffer | null>, private readonly direct?: ReadBytes) {}

  /** At least `n` bytes from the start (fewer at the end), without using them up. */
  async peek(n: number): Promise<Buffer> {
    while (this.pendingBytes < n && !this.ended) {
      const chunk = await this.next();
      if (chunk === null) this.ended = true;
      else {
        this.pending.push(chunk);
        this.pendingBytes += chunk.length;
      }
    }
    return Buffer.concat(this.pending, this.pendingBytes).subarray(0, n);
  }

  async read(buf: Buffer, offset: number, length: number): Promise<number> {
    if (this.pendingBytes === 0) {
      if (this.ended) return 0;
      if (this.direct !== undefined) return this.direct(buf, offset, length);
      const chunk = await this.next();
      if (chunk === null) {
        this.ended = true;
        return 0;
      }
      this.pending.push(chunk);
      this.pendingBytes = chunk.length;
    }
    let n = 0;
    while (n < length && this.pending.length > 0) {
      const first = this.pending[0];
      const take = Math.min(first.length, length - n);
      first.copy(buf, offset + n, 0, take);
      n += take;
      if (take === first.length) this.pending.shift();
      else this.pending[0] = first.subarray(take);
    }
    this.pendingBytes -= n;
    return n;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    for (;;) {
      const n = await this.read(buf, 0, buf.length);
      if (n === 0) return;
      yield Buffer.from(buf.subarray(0, n));
    }
  }
}

/** `src` gunzipped as it is read; a stream that cannot be gunzipped is a DataError naming the file. */
function gunzipped(src: Chunks, gunzip: Gunzip, path: string): Chunks {
  const done = pipeline(Readable.from(src), gunzip).catch(() => {}); // errors reach the reader through gunzip
  const it = gunzip[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return new Chunks(async () => {
    try {
      const r = await it.next();
      if (r.done === true) {
        await done;
        return null;
      }
      return r.value;
    } catch (err) {
      throw new DataError(`${path}: starts like a gzip file (bytes 1f 8b) but cannot be gunzipped (${(err as Error).message})`,
        'the file may be cut short or damaged; compress it again');
    }
  });
}

/** `src` decoded from UTF-16 to UTF-8 as it is read, its byte-order mark dropped. */
function decoded(src: Chunks, encoding: 'utf-16le' | 'utf-16be'): Chunks {
  const decoder = new TextDecoder(encoding);
  const it = src[Symbol.asyncIterator]();
  let ended = false;
  return new Chunks(async () => {
    for (;;) {
      if (ended) return null;
      const r = await it.next();
      const text = r.done === true ? decoder.decode() : decoder.decode(r.value, { stream: true });
      if (r.done === true) ended = true;
      if (text !== '') return Buffer.from(text, 'utf8');
    }
  });
}
