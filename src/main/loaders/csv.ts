// CSV files into flat typed arrays, streamed in chunks of bytes: no file is ever held whole, nor as JS
// strings. Lines without quotes are read straight from the bytes (csv-table.ts, decimal.ts); the first
// record and runs of lines with quotes go through csv-parse, which knows quoting. Errors name the file,
// the physical line, the column, what was found and what was expected.
//
// Why not a CSV library for every line: on an 85 MB numeric file (200,000 rows of 50 features) on a
// 2-vCPU machine, in streaming mode, uDSV 0.7 with typed rows read 72 MB/s, Papa Parse 5.7 38 MB/s and
// csv-parse 6 20 MB/s, while numpy.loadtxt reads 140-170 MB/s; d3-dsv and csv-simple-parser take the
// whole file as one string. Reading numbers from the bytes, without a string per cell, reaches numpy.

import { open, type FileHandle } from 'node:fs/promises';
import { CsvError, type InfoRecord } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import { DataError, OptionRangeError, OptionTypeError } from '../errors.js';
import { oneOf, positiveInteger, shown } from '../options/validate.js';
import { detectDelimiter, planColumns, type ColumnSpec, type Delimiter } from './csv-columns.js';
import { csvBytes, type CsvBytes } from './csv-bytes.js';
import { CsvTable } from './csv-table.js';
import type { LoadedData } from './loaded.js';

export interface CsvOptions {
  /** Label columns by header name or 0-based index: one column of class indices or class names, or
   *  several columns of float targets; none (with targets 'values') for features only, y empty. */
  labelColumns: readonly ColumnSpec[];
  /** 'index': exactly one label column, y is (N,) class indices. The column holds integers >= 0 (the
   *  indices themselves) or class names, which become indices in the order of `classNames`.
   *  'values': label columns are numbers in [0, 1] (multi-label or class probabilities), y is (N, K).
   *  Default: 'index' for one label column, 'values' for several. */
  targets?: 'index' | 'values';
  /** targets 'index': the class names, index k for classNames[k]; a name not in it is an error. Default:
   *  the names found in the file, sorted by Unicode code point (sklearn's LabelEncoder order). Give a
   *  training file's `classNames` when loading its test file. */
  classNames?: readonly string[];
  /** The feature columns, by header name or 0-based index, in the order x takes them; every other
   *  column that is not a label is ignored. Default: every column that is not a label or ignored, in
   *  the file's order. */
  featureColumns?: readonly ColumnSpec[];
  /** Columns to leave out (an id, a name, a date), by header name or 0-based index. */
  ignoreColumns?: readonly ColumnSpec[];
  /** Default 'auto': the first row is a header when any of its cells is not a number (only the cells
   *  that must be numbers count when every column is given by index). */
  header?: boolean | 'auto';
  /** Default: '\t' for a .tsv file; else the most frequent of ',', ';' and '\t' in the first line
   *  (outside quotes), ',' when none is there. */
  delimiter?: string;
  /** The longest line accepted, in characters; default MAX_LINE_CHARS (64 MiB). A longer one is refused
   *  as soon as it is reached (a binary file, or a file without line breaks), not buffered whole. */
  maxLineLength?: number;
}

/** The default maxLineLength: a longer line is not a row of numbers. 1M features of 60 characters fit. */
export const MAX_LINE_CHARS = 64 * 1024 * 1024;
/** Bytes read at a time. */
const CHUNK_BYTES = 1 << 20;
/** Lines with quotes are handed to csv-parse in runs of about this many bytes. */
const BLOCK_BYTES = 1 << 20;

type Resolved = Omit<Required<CsvOptions>, 'classNames' | 'featureColumns' | 'ignoreColumns' | 'delimiter'> &
  Pick<CsvOptions, 'classNames' | 'featureColumns' | 'ignoreColumns' | 'delimiter'>;

/** Loads a CSV file; see CsvOptions. Rows keep the file's order. */
export async function loadCsv(path: string, options: CsvOptions): Promise<LoadedData> {
  // Not a spread merge: an explicit `header: undefined` must still mean the default.
  const opts: Resolved = {
    ...options,
    targets: options.targets ?? (Array.isArray(options.labelColumns) && options.labelColumns.length > 1 ? 'values' : 'index'),
    header: options.header ?? 'auto',
    maxLineLength: options.maxLineLength ?? MAX_LINE_CHARS,
  };
  validateOptions(opts);
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (err) {
    throw new DataError(`${path}: cannot read the file (${(err as Error).message})`);
  }
  const reader = new CsvReader(path, opts);
  let bytes: CsvBytes | null = null;
  try {
    bytes = await csvBytes(file, path);
    await reader.read(bytes);
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(`${path}: cannot read the file (${(err as Error).message})`);
  } finally {
    bytes?.close();
    await file.close();
  }
  return reader.finish();
}

function validateOptions(opts: Resolved): void {
  oneOf('options.targets', opts.targets, ['index', 'values']);
  // No label columns: features only (a file to predict on), y empty.
  columnList('options.labelColumns', opts.labelColumns, true);
  if (opts.targets === 'index' && opts.labelColumns.length !== 1) {
    throw new OptionRangeError(
      `options.labelColumns must name exactly one column for targets 'index'; got ${opts.labelColumns.length}`,
      "use targets 'values' for several columns of float targets",
    );
  }
  if (opts.featureColumns !== undefined) columnList('options.featureColumns', opts.featureColumns);
  if (opts.ignoreColumns !== undefined) columnList('options.ignoreColumns', opts.ignoreColumns, true);
  if (opts.featureColumns !== undefined && opts.ignoreColumns !== undefined) {
    throw new OptionRangeError(
      'options.featureColumns and options.ignoreColumns cannot be given together',
      'featureColumns already leaves out every column it does not list',
    );
  }
  if (opts.classNames !== undefined) {
    const names = opts.classNames;
    if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string' && n !== '')) {
      throw new OptionTypeError(`options.classNames must be a non-empty array of non-empty strings; got ${shown(names)}`);
    }
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) throw new OptionRangeError(`options.classNames lists '${twice}' twice; each class must appear once`);
    if (opts.targets !== 'index') throw new OptionRangeError("options.classNames requires targets 'index'");
  }
  if (opts.header !== true && opts.header !== false && opts.header !== 'auto') {
    throw new OptionTypeError(`options.header must be true, false or 'auto'; got ${shown(opts.header)}`);
  }
  if (opts.delimiter !== undefined && (typeof opts.delimiter !== 'string' || opts.delimiter === '' || /["\r\n]/.test(opts.delimiter))) {
    throw new OptionTypeError(`options.delimiter must be a non-empty string without quotes or line breaks; got ${shown(opts.delimiter)}`);
  }
  positiveInteger('options.maxLineLength', opts.maxLineLength);
}

/** A non-empty array of column names or 0-based indices. */
function columnList(name: string, v: unknown, mayBeEmpty = false): void {
  if (!Array.isArray(v) || (v.length === 0 && !mayBeEmpty)) {
    throw new OptionTypeError(`${name} must be a non-empty array of column names or 0-based indices; got ${shown(v)}`);
  }
  for (const c of v) {
    if (typeof c === 'string' ? c.trim() === '' : !(Number.isInteger(c) && c >= 0)) {
      throw new OptionTypeError(`${name} entries must be column names or 0-based indices; got ${shown(c)}`);
    }
  }
}

/** True for a delimiter lines can be split at byte by byte: one ASCII character that no number has. */
function byteDelimiter(d: string): boolean {
  return d.length === 1 && d.charCodeAt(0) < 128 && !/[0-9.+\-eE "\r\n]/.test(d);
}

/**
 * Reads the file line by line from chunks of bytes. The first record, and any run of lines with quotes
 * (until the quotes balance, so that a quoted field may span lines), are parsed by csv-parse; every other
 * line goes to the table as bytes.
 */
class CsvReader {
  private table: CsvTable | null = null;
  private delimiter: Delimiter | null = null;
  private fast = false; // lines without quotes are read from bytes
  private block: Buffer[] = []; // lines waiting for csv-parse, with their line breaks
  private blockBytes = 0;
  private blockLine = 0; // the physical line the block starts at
  private openQuote = false; // an odd number of quotes in the block: a quoted field goes on
  private openedAt = 0; // the line whose quote left the block open, and the block's bytes before it
  private openedBytes = 0;
  private lastRecordLine = 0; // where the last complete record ends

  constructor(private readonly path: string, private readonly opts: Resolved) {}

  async read(file: CsvBytes): Promise<void> {
    const fileBytes = file.textBytes;
    let buf = Buffer.allocUnsafe(CHUNK_BYTES);
    let filled = 0;
    let line = 0; // physical lines so far
    let newline = 10; // '\n', or '\r' for a file whose first line break is a lone '\r' (classic Mac OS)
    let chunk = 0;
    for (;; chunk++) {
      const bytesRead = await file.read(buf, filled, buf.length - filled);
      const eof = bytesRead === 0;
      filled += bytesRead;
      const view = buf.subarray(0, filled);
      let s = 0;
      if (chunk === 0) {
        if (view[0] === 0xef && view[1] === 0xbb && view[2] === 0xbf) s = 3; // a UTF-8 byte-order mark
        const lf = view.indexOf(10);
        const cr = view.indexOf(13);
        if (cr >= 0 && (lf < 0 ? cr < filled - 1 : cr < lf - 1)) newline = 13;
      }
      let quote = view.indexOf(34, s); // the next quote at or after s, -1 when there is none in view
      for (let nl = view.indexOf(newline, s); nl >= 0; nl = view.indexOf(newline, s)) {
        const e = newline === 10 && nl > s && view[nl - 1] === 13 ? nl - 1 : nl;
        if (quote >= 0 && quote < s) quote = view.indexOf(34, s);
        this.line(view, s, e, nl + 1, ++line, quote >= 0 && quote < e);
        s = nl + 1;
      }
      if (eof) {
        if (s < filled) {
          const e = newline === 10 && view[filled - 1] === 13 ? filled - 1 : filled;
          if (quote >= 0 && quote < s) quote = view.indexOf(34, s);
          this.line(view, s, e, filled, ++line, quote >= 0 && quote < e);
        }
        break;
      }
      if (chunk === 0 && s > 0) {
        // After the first chunk: room for all the rows at once, from the file's size over its lines'.
        this.table?.reserve(Math.ceil((1.05 * fileBytes * line) / s) + 16, line + 1);
      }
      // The unfinished line moves to the front; a line longer than the buffer makes it grow, unless
      // the line is already longer than maxLineLength.
      const rest = filled - s;
      if (rest > this.opts.maxLineLength && characters(view, s, filled) > this.opts.maxLineLength) throw this.tooLong(line + 1);
      if (s === 0 && filled === buf.length) {
        const bigger = Buffer.allocUnsafe(2 * buf.length);
        buf.copy(bigger, 0, 0, filled);
        buf = bigger;
      } else {
        buf.copyWithin(0, s, filled);
      }
      filled = rest;
    }
    this.flush(false);
  }

  finish(): LoadedData {
    if (this.table === null) throw new DataError(`${this.path}: no data rows; the file is empty`);
    return this.table.finish();
  }

  /** The line buf[s, e), its line break ending at t. */
  private line(buf: Buffer, s: number, e: number, t: number, line: number, quoted: boolean): void {
    const max = this.opts.maxLineLength;
    if (e - s > max && characters(buf, s, e) > max) throw this.tooLong(line);
    if (this.block.length > 0) {
      if (this.openQuote || quoted || !this.fast || blank(buf, s, e)) {
        this.append(buf, s, t, line);
        return;
      }
      this.flush(false);
    }
    if (blank(buf, s, e)) return;
    if (this.delimiter === null) {
      const given = this.opts.delimiter;
      const tsv = /\.tsv$/i.test(this.path);
      this.delimiter = given !== undefined ? { char: given, source: 'options.delimiter' }
        : tsv ? { char: '\t', source: 'the .tsv default' }
        : { char: detectDelimiter(buf.subarray(s, e)), source: `detected from line ${line}` };
      this.fast = byteDelimiter(this.delimiter.char);
    }
    if (this.table === null || quoted || !this.fast) {
      this.blockLine = line;
      this.append(buf, s, t, line);
      return;
    }
    this.table.addLine(buf, s, e, line);
  }

  /** Adds a line to the csv-parse block; parses the block once its quotes balance and it is the first
   *  record or large enough. */
  private append(buf: Buffer, s: number, t: number, line: number): void {
    let quotes = 0;
    for (let p = s; p < t; p++) if (buf[p] === 34) quotes++;
    if (quotes % 2 === 1 && !this.openQuote) {
      this.openedAt = line;
      this.openedBytes = this.blockBytes;
    }
    if (quotes % 2 === 1) this.openQuote = !this.openQuote;
    this.block.push(Buffer.from(buf.subarray(s, t))); // a copy: buf is reused
    this.blockBytes += t - s;
    if (!this.openQuote && (this.table === null || this.blockBytes > BLOCK_BYTES)) this.flush(false);
    // A quoted field that stays open: no record is that long (a character is at most 4 bytes).
    else if (this.openQuote && this.blockBytes - this.openedBytes > 4 * this.opts.maxLineLength + 4) this.flush(true);
  }

  /** Parses the block with csv-parse. `cut`: the block ends inside a quoted field that is too long. */
  private flush(cut: boolean): void {
    if (this.block.length === 0) return;
    const text = Buffer.concat(this.block, this.blockBytes);
    const offset = this.blockLine - 1;
    this.block = [];
    this.blockBytes = 0;
    this.openQuote = false;
    let lastLine = 0;
    let lastEmptyLines = 0;
    try {
      parseSync(text, {
        delimiter: (this.delimiter as Delimiter).char,
        trim: true,
        skip_empty_lines: true,
        relax_column_count: true, // counted by the table instead, for a message naming the header and both counts
        max_record_size: this.opts.maxLineLength,
        on_record: (record: string[], info: InfoRecord) => {
          // info.lines is where a record ends; it starts after the previous one and any empty lines
          // between, which matters only for quoted fields spanning lines.
          const line = offset + lastLine + 1 + (info.empty_lines - lastEmptyLines);
          lastLine = info.lines;
          lastEmptyLines = info.empty_lines;
          this.record(record, line);
          this.lastRecordLine = offset + info.lines;
          return null;
        },
      });
    } catch (err) {
      if (!(err instanceof CsvError)) throw err;
      if (cut && (err.code === 'CSV_QUOTE_NOT_CLOSED' || err.code === 'CSV_MAX_RECORD_SIZE')) {
        throw new DataError(
          `${this.path} line ${this.openedAt}: a quoted field opens here and is still open ${this.opts.maxLineLength} characters later (options.maxLineLength)`,
          'close the quote, or double quotes inside a quoted field ("")',
        );
      }
      throw this.syntaxError(err, offset);
    }
  }

  private record(record: string[], line: number): void {
    if (this.table === null) {
      const { opts } = this;
      const plan = planColumns(this.path, record, line, { ...opts, numericLabels: opts.targets === 'values' }, this.delimiter as Delimiter);
      this.table = new CsvTable(this.path, plan, opts, this.delimiter as Delimiter);
      if (plan.header !== null) return;
    }
    this.table.addRecord(record, line);
  }

  private tooLong(line: number): DataError {
    const d = this.delimiter?.char ?? this.opts.delimiter ?? ',';
    return new DataError(
      `${this.path} line ${line}: a row longer than ${this.opts.maxLineLength} characters (options.maxLineLength); expected lines of numbers ` +
        `separated by ${JSON.stringify(d)}`,
      'is this a CSV file? a binary file, or one without line breaks, looks like this',
    );
  }

  /** csv-parse's own errors (quotes), with the file name, the line in the file and the column. */
  private syntaxError(err: CsvError, offset: number): DataError {
    const { path } = this;
    const d = JSON.stringify((this.delimiter as Delimiter).char);
    const line = offset + (err.lines as number);
    const column = (c: number): string => this.table?.columnName(c) ?? `column ${c}`;
    if (err.code === 'CSV_QUOTE_NOT_CLOSED') {
      return new DataError(
        `${path}: a quoted field is never closed; the file ends inside quotes (the last complete record ends on line ${this.lastRecordLine})`,
        'close the quote, or double quotes inside a quoted field ("")',
      );
    }
    if (err.code === 'CSV_INVALID_CLOSING_QUOTE' || err.code === 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE') {
      return new DataError(
        `${path} line ${line}, ${column(err.column as number)}: a closing quote is followed by more of the field; ` +
          `expected the delimiter ${d} or the end of the line after it`,
        'quote the whole field and double the quotes inside it ("a ""b"" c")',
      );
    }
    if (err.code === 'CSV_MAX_RECORD_SIZE') return this.tooLong(line);
    if (err.code === 'INVALID_OPENING_QUOTE') {
      return new DataError(
        `${path} line ${line}, ${column(err.column as number)}: a quote inside an unquoted field`,
        'quote the whole field and double the quotes inside it ("a ""b"" c")',
      );
    }
    return new DataError(`${path} line ${line}: ${err.message}`);
  }
}

/** True when buf[s, e) is empty or only spaces, tabs, form feeds and carriage returns. */
function blank(buf: Uint8Array, s: number, e: number): boolean {
  for (let p = s; p < e; p++) {
    const b = buf[p];
    if (b !== 32 && b !== 9 && b !== 12 && b !== 13) return false;
  }
  return true;
}

/** The characters UTF-8 bytes buf[s, e) hold: the bytes that do not continue a character. */
function characters(buf: Uint8Array, s: number, e: number): number {
  let n = 0;
  for (let p = s; p < e; p++) if ((buf[p] & 0xc0) !== 0x80) n++;
  return n;
}

