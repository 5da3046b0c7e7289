// CSV files into flat typed arrays, streamed: csv-parse hands over one record at a time and its numbers
// go straight into growable Float32Arrays, so no file is ever held as JS strings. Each cell is checked
// as it is read; errors name the file, the physical line, the column (by header name when there is
// one), what was found and what was expected.

import { createReadStream } from 'node:fs';
import { CsvError, parse, type Info, type InfoRecord } from 'csv-parse';
import { DataError } from '../errors.js';
import { currentMemoryLimit, formatBytes, MAX_TYPED_ARRAY_LENGTH } from '../memory.js';
import type { LoadedData } from './loaded.js';

export interface CsvOptions {
  /** Label columns by header name or 0-based index: one column of class indices, or several columns of
   *  float targets. Every other column is a feature. */
  labelColumns: readonly (string | number)[];
  /** 'index': exactly one label column of integer class indices >= 0, y is (N,).
   *  'values': label columns are numbers in [0, 1] (multi-label or class probabilities), y is (N, K). */
  targets: 'index' | 'values';
  /** Default 'auto': the first row is a header when any of its cells is not a number. */
  header?: boolean | 'auto';
  /** Default ','. */
  delimiter?: string;
  /** The longest line accepted, in characters; default MAX_LINE_CHARS (64 MiB). A longer one is refused
   *  as soon as it is reached (a binary file, or a file without line breaks), not buffered whole. */
  maxLineLength?: number;
}

const DEFAULTS = { header: 'auto', delimiter: ',' } as const;

const INITIAL_ROWS = 1024;
/** The default maxLineLength: a longer line is not a row of numbers. 1M features of 60 characters fit. */
export const MAX_LINE_CHARS = 64 * 1024 * 1024;
const NON_FINITE = /^[+-]?(nan|inf|infinity)$/i;

/** Loads a CSV file; see CsvOptions. Rows keep the file's order. */
export async function loadCsv(path: string, options: CsvOptions): Promise<LoadedData> {
  // Not a spread merge: an explicit `header: undefined` must still mean the default.
  const opts: Required<CsvOptions> = {
    ...options,
    header: options.header ?? DEFAULTS.header,
    delimiter: options.delimiter ?? DEFAULTS.delimiter,
    maxLineLength: options.maxLineLength ?? MAX_LINE_CHARS,
  };
  validateOptions(opts);
  const reader = new CsvReader(path, opts);
  // Each record is handled inside csv-parse's on_record hook and dropped there, so nothing queues in
  // the stream, and a syntax error can only surface after every record before it has been read (a
  // record iterator would let it overtake records still buffered). The hook's own throws become the
  // stream's error unchanged. A read error is forwarded to the parser by hand.
  const source = createReadStream(path);
  const parser = source.pipe(
    parse({
      delimiter: opts.delimiter,
      trim: true,
      skip_empty_lines: true,
      relax_column_count: true, // counted here instead, for a message naming the header and both counts
      bom: true,
      max_record_size: opts.maxLineLength,
      on_record: (record: string[], info: InfoRecord) => {
        reader.add(record, info);
        return null;
      },
    }),
  );
  source.on('error', (err) => parser.destroy(err));
  try {
    for await (const _ of parser); // drains the stream: on_record keeps every record
  } catch (err) {
    if (err instanceof DataError) throw err;
    if (err instanceof CsvError) throw reader.syntaxError(err);
    throw new DataError(`${path}: cannot read the file (${(err as Error).message})`);
  } finally {
    source.destroy();
  }
  return reader.finish();
}

function validateOptions(opts: Required<CsvOptions>): void {
  if (opts.targets !== 'index' && opts.targets !== 'values') {
    throw new TypeError(`options.targets must be 'index' or 'values'; got ${JSON.stringify(opts.targets)}`);
  }
  if (!Array.isArray(opts.labelColumns) || opts.labelColumns.length === 0) {
    throw new TypeError('options.labelColumns must be a non-empty array of column names or 0-based indices');
  }
  for (const c of opts.labelColumns) {
    if (typeof c === 'string' ? c.trim() === '' : !(Number.isInteger(c) && c >= 0)) {
      throw new TypeError(`options.labelColumns entries must be column names or 0-based indices; got ${JSON.stringify(c)}`);
    }
  }
  if (opts.targets === 'index' && opts.labelColumns.length !== 1) {
    throw new RangeError(
      `options.labelColumns must name exactly one column for targets 'index'; got ${opts.labelColumns.length}` +
        "\nhint: use targets 'values' for several columns of float targets",
    );
  }
  if (opts.header !== true && opts.header !== false && opts.header !== 'auto') {
    throw new TypeError(`options.header must be true, false or 'auto'; got ${JSON.stringify(opts.header)}`);
  }
  if (typeof opts.delimiter !== 'string' || opts.delimiter === '') {
    throw new TypeError(`options.delimiter must be a non-empty string; got ${JSON.stringify(opts.delimiter)}`);
  }
  if (!Number.isSafeInteger(opts.maxLineLength) || opts.maxLineLength < 1) {
    throw new RangeError(`options.maxLineLength must be a positive integer (characters); got ${String(opts.maxLineLength)}`);
  }
}

/** Takes records one at a time; the first decides the header, the label columns and the width. */
class CsvReader {
  private readonly path: string;
  private readonly opts: Required<CsvOptions>;
  private columns = -1;
  private header: string[] | null = null;
  private firstLine = 0; // the line that fixed the column count (the header, or the first row)
  private isLabel: Uint8Array = new Uint8Array(0); // (C) 1 for label columns
  private labelOrder: number[] = []; // label column indices, in the order of options.labelColumns
  private featureColumns: number[] = [];
  private x = new Float32Array(0); // (capacity, D)
  private y: Float32Array | Int32Array = new Float32Array(0); // (capacity, K)
  private lines = new Int32Array(0); // (capacity) physical line of each row
  private rows = 0;
  private capacity = 0;
  private lastLine = 0;
  private lastEmptyLines = 0;

  constructor(path: string, opts: Required<CsvOptions>) {
    this.path = path;
    this.opts = opts;
  }

  add(record: string[], info: Info): void {
    // info.lines is where a record ends; it starts after the previous one and any empty lines between,
    // which matters only for quoted fields spanning lines.
    const line = this.lastLine + 1 + (info.empty_lines - this.lastEmptyLines);
    this.lastLine = info.lines;
    this.lastEmptyLines = info.empty_lines;
    if (record.length === 1 && record[0] === '') return; // a whitespace-only line
    if (this.columns < 0) {
      this.begin(record, line);
      if (this.header !== null) return;
    }
    if (record.length !== this.columns) {
      const like = this.header !== null ? `the header (line ${this.firstLine})` : `the first row (line ${this.firstLine})`;
      throw new DataError(
        `${this.path} line ${line}: ${record.length} cells; expected ${this.columns} like ${like}`,
        record.length > this.columns
          ? `quote fields that contain the delimiter ${JSON.stringify(this.opts.delimiter)}`
          : 'every row needs one cell per column; fill in the missing values',
      );
    }
    if (this.rows === this.capacity) this.grow(line);
    const r = this.rows;
    const D = this.featureColumns.length;
    for (let f = 0; f < D; f++) this.x[r * D + f] = this.number(record, this.featureColumns[f], line);
    const K = this.labelOrder.length;
    for (let k = 0; k < K; k++) this.y[r * K + k] = this.target(record, this.labelOrder[k], line);
    this.lines[r] = line;
    this.rows++;
  }

  finish(): LoadedData {
    const { path, rows } = this;
    if (rows === 0) {
      throw new DataError(
        this.header !== null
          ? `${path}: no data rows; the file has only a header (line ${this.firstLine})`
          : `${path}: no data rows; the file is empty`,
      );
    }
    const D = this.featureColumns.length;
    const K = this.labelOrder.length;
    // Trimmed copies, unless the copies would not fit beside the arrays: then views of them.
    const copy = (this.capacity + rows) * 4 * (D + K + 1) <= currentMemoryLimit().bytes;
    const lines = copy ? this.lines.slice(0, rows) : this.lines.subarray(0, rows);
    const data: LoadedData = {
      x: copy ? this.x.slice(0, rows * D) : this.x.subarray(0, rows * D),
      y: copy ? this.y.slice(0, rows * K) : this.y.subarray(0, rows * K),
      rows,
      features: D,
      targetColumns: K,
      rowName: (r) => `${path} line ${lines[r]}`,
    };
    if (this.header !== null) {
      data.featureNames = this.featureColumns.map((c) => this.header![c]);
      data.labelNames = this.labelOrder.map((c) => this.header![c]);
    }
    return data;
  }

  /** Wraps csv-parse's own errors (quotes) with the file name. */
  syntaxError(err: CsvError): DataError {
    if (err.code === 'CSV_QUOTE_NOT_CLOSED') {
      return new DataError(
        `${this.path}: a quoted field is never closed; the file ends inside quotes (the last complete record ends on line ${this.lastLine})`,
        'close the quote, or double quotes inside a quoted field ("")',
      );
    }
    if (err.code === 'CSV_INVALID_CLOSING_QUOTE' || err.code === 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE') {
      return new DataError(
        `${this.path} line ${err.lines}, ${this.columnName(err.column as number)}: a closing quote is followed by more of the field; ` +
          `expected the delimiter ${JSON.stringify(this.opts.delimiter)} or the end of the line after it`,
        'quote the whole field and double the quotes inside it ("a ""b"" c")',
      );
    }
    if (err.code === 'CSV_MAX_RECORD_SIZE') {
      return new DataError(
        `${this.path} line ${err.lines}: a row longer than ${this.opts.maxLineLength} characters (options.maxLineLength); expected lines of numbers ` +
          `separated by ${JSON.stringify(this.opts.delimiter)}`,
        'is this a CSV file? a binary file, or one without line breaks, looks like this',
      );
    }
    if (err.code === 'INVALID_OPENING_QUOTE') {
      return new DataError(
        `${this.path} line ${err.lines}, ${this.columnName(err.column as number)}: a quote inside an unquoted field`,
        'quote the whole field and double the quotes inside it ("a ""b"" c")',
      );
    }
    return new DataError(`${this.path} line ${err.lines}: ${err.message}`);
  }

  private begin(record: string[], line: number): void {
    const { opts, path } = this;
    this.columns = record.length;
    this.firstLine = line;
    const byName = opts.labelColumns.some((c) => typeof c === 'string');
    const isHeader = opts.header === 'auto' ? record.some((cell) => !looksNumeric(cell)) : opts.header;
    if (isHeader) {
      this.header = record;
    } else if (byName) {
      const name = opts.labelColumns.find((c) => typeof c === 'string') as string;
      throw new DataError(
        opts.header === false
          ? `${path}: label column '${name}' is given by name, but options.header is false`
          : `${path}: label column '${name}' is given by name, but the file has no header: every cell of line ${line} is a number`,
        'add a header row, or give the label column as a 0-based index',
      );
    }

    const chosen = new Map<number, number>(); // column -> position in labelColumns
    opts.labelColumns.forEach((spec, i) => {
      const c = this.resolve(spec, line);
      const earlier = chosen.get(c);
      if (earlier !== undefined) {
        throw new DataError(
          `${path}: options.labelColumns lists ${this.columnName(c)} twice (labelColumns[${earlier}] and labelColumns[${i}])`,
          'list each label column once',
        );
      }
      chosen.set(c, i);
      this.labelOrder.push(c);
    });
    this.isLabel = new Uint8Array(this.columns);
    for (const c of this.labelOrder) this.isLabel[c] = 1;
    for (let c = 0; c < this.columns; c++) if (this.isLabel[c] === 0) this.featureColumns.push(c);
    if (this.featureColumns.length === 0) {
      throw new DataError(
        `${path}: every one of the ${this.columns} columns is a label column; at least one feature column is needed`,
        'options.labelColumns should list only the target columns',
      );
    }
    if (opts.targets === 'index') this.y = new Int32Array(0);
  }

  /** A label column spec as a column index, checked against the first record. */
  private resolve(spec: string | number, line: number): number {
    const { path } = this;
    if (typeof spec === 'number') {
      if (spec >= this.columns) {
        throw new DataError(
          `${path}: label column ${spec} is out of range; line ${line} has ${this.columns} columns (indices 0 to ${this.columns - 1})`,
        );
      }
      return spec;
    }
    const header = this.header as string[];
    const matches = header.flatMap((name, c) => (name === spec ? [c] : []));
    if (matches.length === 1) return matches[0];
    if (matches.length > 1) {
      throw new DataError(
        `${path}: label column '${spec}' is ambiguous; the header (line ${line}) has it at columns ${matches.join(', ')}`,
        'give the label column as a 0-based index',
      );
    }
    const shown = header.slice(0, 30).map((n) => `'${n}'`).join(', ') + (header.length > 30 ? `, ... (${header.length} in all)` : '');
    const near = header.find((n) => n.toLowerCase() === spec.toLowerCase());
    throw new DataError(
      `${path}: no column named '${spec}' in the header (line ${line}); the columns are ${shown}`,
      near !== undefined ? `did you mean '${near}'? names are case-sensitive` : undefined,
    );
  }

  private number(record: string[], c: number, line: number): number {
    const cell = record[c];
    const v = Number(cell);
    // Number('') and Number('  ') are 0, so empty cells are caught first; whatever else Number
    // accepts (1e-3, .5, 0x10) is taken as written.
    if (cell.trim() === '') {
      throw new DataError(`${this.where(line, c)}: empty cell; expected a number`,
        'fill in or drop the rows with missing values before loading');
    }
    if (Number.isNaN(v) && !NON_FINITE.test(cell)) {
      throw new DataError(
        `${this.where(line, c)}: '${clip(cell)}' is not a number`,
        this.header === null && line === this.firstLine && this.opts.header === false
          ? `line ${line} looks like a header; set options.header to true or 'auto'`
          : undefined,
      );
    }
    if (!Number.isFinite(v) || !Number.isFinite(Math.fround(v))) {
      throw new DataError(
        !NON_FINITE.test(cell.trim())
          ? `${this.where(line, c)}: '${clip(cell)}' is outside the float32 range (about ±3.4e38)`
          : `${this.where(line, c)}: '${clip(cell)}' is not a finite number; expected a finite number`,
        'features and targets must be finite; impute or drop the missing values before loading',
      );
    }
    return v;
  }

  private target(record: string[], c: number, line: number): number {
    const v = this.number(record, c, line);
    if (this.opts.targets === 'index') {
      if (!Number.isInteger(v) || v < 0) {
        throw new DataError(`${this.where(line, c)}: '${clip(record[c])}' is not a class index; expected an integer >= 0`,
          "for float targets use targets 'values'");
      }
      if (v > 0x7fffffff) {
        throw new DataError(`${this.where(line, c)}: ${record[c]} is too large for a class index; expected an integer below 2^31`);
      }
    } else if (!(v >= 0 && v <= 1)) {
      throw new DataError(
        `${this.where(line, c)}: ${record[c]} is outside [0, 1]; targets 'values' are probabilities or 0/1 labels`,
        "for class indices 0..K-1 use targets 'index' with one label column",
      );
    }
    return v;
  }

  /**
   * Makes room for more rows: twice as many, but never more than one typed array holds or than fits in
   * memory beside the arrays being copied from. When not even one more row fits, refuses the file at
   * `line`, with the rows read so far, the size they need and the limit, before allocating.
   */
  private grow(line: number): void {
    const D = this.featureColumns.length;
    const K = this.labelOrder.length;
    const rowBytes = 4 * (D + K + 1); // x, y and the line number
    const limit = currentMemoryLimit();
    const maxRows = Math.min(
      Math.floor(MAX_TYPED_ARRAY_LENGTH / Math.max(D, K)),
      Math.floor(limit.bytes / rowBytes) - this.capacity, // the new arrays beside the old ones
    );
    const capacity = Math.min(Math.max(INITIAL_ROWS, 2 * this.capacity), maxRows);
    if (capacity <= this.rows) {
      const rows = this.rows + 1;
      const byMemory = Math.floor(MAX_TYPED_ARRAY_LENGTH / Math.max(D, K)) >= rows;
      throw new DataError(
        `${this.path} line ${line}: ${rows} rows of ${D} float32 features and ${K} target${K === 1 ? '' : 's'} ` +
          (byMemory
            ? `need ${formatBytes((rows + this.capacity) * rowBytes)} while they are read, more than the ` +
              `${formatBytes(limit.bytes)} memory limit (${limit.source})`
            : `need ${rows * Math.max(D, K)} values in one array, more than the ${MAX_TYPED_ARRAY_LENGTH} one typed ` +
              `array can hold in Node ${process.versions.node}`),
        'train on a part of the file, or on a machine with more memory',
      );
    }
    const x = new Float32Array(capacity * D);
    x.set(this.x);
    const y = this.opts.targets === 'index' ? new Int32Array(capacity * K) : new Float32Array(capacity * K);
    y.set(this.y);
    const lines = new Int32Array(capacity);
    lines.set(this.lines);
    this.x = x;
    this.y = y;
    this.lines = lines;
    this.capacity = capacity;
  }

  private where(line: number, c: number): string {
    return `${this.path} line ${line}, ${this.columnName(c)}`;
  }

  private columnName(c: number): string {
    const name = this.header?.[c];
    return name !== undefined && name !== '' ? `column '${name}'` : `column ${c}`;
  }
}

/** True for cells that would be data in the first row: numbers, empty cells and NaN/Infinity spellings. */
function looksNumeric(cell: string): boolean {
  return cell === '' || !Number.isNaN(Number(cell)) || NON_FINITE.test(cell);
}

function clip(cell: string): string {
  return cell.length > 40 ? `${cell.slice(0, 37)}...` : cell;
}
