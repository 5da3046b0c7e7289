// The rows of a CSV file into growable typed arrays, one record at a time: either as strings (the records
// csv-parse reads: the first one, and lines with quotes) or straight from the bytes of a line (every other
// line; decimal.ts reads its numbers without making strings). Every cell is checked as it is read; errors
// name the file, the physical line, the column (by header name when there is one), what was found and
// what was expected.

import { DataError } from '../errors.js';
import { currentMemoryLimit, formatBytes, typedArrayLimit } from '../data/memory.js';
import { ClassNames } from './class-names.js';
import { columnName, delimiterText, IGNORED, labelOf, looksNumeric, otherSeparator, type ColumnPlan, type Delimiter } from './csv-columns.js';
import { parseDecimal, scanned } from './decimal.js';
import type { LoadedData } from './loaded.js';

const INITIAL_ROWS = 1024;
const NON_FINITE = /^[+-]?(nan|inf|infinity)$/i;

/** How a label column is read: class indices, class names (decided by its first cell, or fixed by
 *  options.classNames), or value targets. */
const Labels = { Undecided: 0, Indices: 1, Names: 2, Values: 3 } as const;
type LabelMode = (typeof Labels)[keyof typeof Labels];

export interface TableOptions {
  targets: 'index' | 'values';
  classNames?: readonly string[];
  /** options.header, for a hint when a header is read as data. */
  header: boolean | 'auto';
}

export class CsvTable {
  private readonly C: number;
  private readonly D: number;
  private readonly K: number;
  private readonly roles: Int32Array;
  private readonly delimiter: number; // the delimiter's byte, for lines read from bytes
  private readonly tabIsDelimiter: boolean;
  private labels: LabelMode;
  private readonly classes: ClassNames | null;
  private firstLabel = { line: 0, cell: '' }; // the cell that decided Indices or Names, for messages
  private x = new Float32Array(0); // (capacity, D)
  private y: Float32Array | Int32Array = new Float32Array(0); // (capacity, K)
  private lines = new Int32Array(0); // (capacity) physical line of each row
  private rows = 0;
  private capacity = 0;
  private slowEnd = 0; // where the last cell read as a string ended

  constructor(
    private readonly path: string,
    private readonly plan: ColumnPlan,
    private readonly opts: TableOptions,
    private readonly delim: Delimiter,
  ) {
    this.C = plan.columns;
    this.D = plan.features.length;
    this.K = plan.labels.length;
    this.roles = plan.roles;
    this.delimiter = delim.char.length === 1 ? delim.char.charCodeAt(0) : -1;
    this.tabIsDelimiter = delim.char === '\t';
    this.labels = opts.targets === 'values' ? Labels.Values : opts.classNames !== undefined ? Labels.Names : Labels.Undecided;
    this.classes = opts.targets === 'index' ? new ClassNames(opts.classNames) : null;
    if (opts.targets === 'index') this.y = new Int32Array(0);
  }

  /** A record as strings, trimmed (csv-parse's). */
  addRecord(record: string[], line: number): void {
    if (record.length === 1 && record[0] === '') return; // a whitespace-only line
    if (record.length !== this.C) throw this.ragged(record.length, line);
    if (this.rows === this.capacity) this.grow(line);
    const xBase = this.rows * this.D;
    const yBase = this.rows * this.K;
    for (let c = 0; c < this.C; c++) {
      const role = this.roles[c];
      if (role >= 0) this.x[xBase + role] = this.feature(record[c], c, line);
      else if (role !== IGNORED) this.y[yBase + labelOf(role)] = this.label(record[c], c, line);
    }
    this.lines[this.rows++] = line;
  }

  /**
   * The line buf[s, e) (without its line break, not blank, without quotes), read from its bytes: each
   * number by parseDecimal, and any cell it does not take (class names, hex, NaN, bad cells) as a
   * string through the same checks as addRecord.
   */
  addLine(buf: Uint8Array, s: number, e: number, line: number): void {
    if (this.rows === this.capacity) this.grow(line);
    const { C, roles, delimiter, tabIsDelimiter, x, y } = this;
    const xBase = this.rows * this.D;
    const yBase = this.rows * this.K;
    const labels = this.labels;
    let p = s;
    for (let c = 0; c < C; c++) {
      const role = roles[c];
      if (role >= 0) {
        const v = parseDecimal(buf, p, e, delimiter, tabIsDelimiter);
        if (v === v) {
          x[xBase + role] = v;
          p = scanned.end;
        } else {
          x[xBase + role] = this.slowCell(buf, s, p, e, c, line);
          p = this.slowEnd;
        }
      } else if (role === IGNORED) {
        while (p < e && buf[p] !== delimiter) p++;
      } else {
        const v = labels === Labels.Indices || labels === Labels.Values ? parseDecimal(buf, p, e, delimiter, tabIsDelimiter) : NaN;
        if (v === v && scanned.exact && (labels === Labels.Indices ? Number.isInteger(v) && v >= 0 && v <= 0x7fffffff : v >= 0 && v <= 1)) {
          y[yBase + labelOf(role)] = v;
          p = scanned.end;
        } else {
          y[yBase + labelOf(role)] = this.slowCell(buf, s, p, e, c, line);
          p = this.slowEnd;
        }
      }
      if (c < C - 1) {
        if (p >= e) throw this.ragged(countCells(buf, s, e, delimiter), line);
        p++; // the delimiter
      }
    }
    if (p < e) throw this.ragged(countCells(buf, s, e, delimiter), line);
    this.lines[this.rows++] = line;
  }

  finish(): LoadedData {
    const { path, rows, plan, D, K } = this;
    if (rows === 0) {
      throw new DataError(
        plan.header !== null
          ? `${path}: no data rows; the file has only a header (line ${plan.firstLine})`
          : `${path}: no data rows; the file is empty`,
      );
    }
    // Trimmed copies, unless the copies would not fit beside the arrays, or the arrays are nearly full
    // (a reserve() that guessed well): then views of them.
    const copy = this.capacity - rows > rows / 16 && (this.capacity + rows) * 4 * (D + K + 1) <= currentMemoryLimit().bytes;
    const lines = copy ? this.lines.slice(0, rows) : this.lines.subarray(0, rows);
    const data: LoadedData = {
      x: copy ? this.x.slice(0, rows * D) : this.x.subarray(0, rows * D),
      y: copy ? this.y.slice(0, rows * K) : this.y.subarray(0, rows * K),
      rows,
      features: D,
      targetColumns: K,
      rowName: (r) => `${path} line ${lines[r]}`,
    };
    if (this.labels === Labels.Names) {
      const { classNames, final } = (this.classes as ClassNames).order();
      const y = data.y as Int32Array;
      for (let r = 0; r < rows; r++) y[r] = final[y[r]];
      data.classNames = classNames;
    }
    if (plan.header !== null) {
      data.featureNames = plan.features.map((c) => (plan.header as string[])[c]);
      data.labelNames = plan.labels.map((c) => (plan.header as string[])[c]);
    }
    return data;
  }

  columnName(c: number): string {
    return columnName(this.plan.header, c);
  }

  /** A cell of a byte line that parseDecimal did not take, read as a string: the ragged-row error first
   *  when the line has the wrong number of cells (as for a record), then the cell's own checks. */
  private slowCell(buf: Uint8Array, s: number, p: number, e: number, c: number, line: number): number {
    let end = p;
    while (end < e && buf[end] !== this.delimiter) end++;
    this.slowEnd = end;
    const cells = countCells(buf, s, e, this.delimiter);
    if (cells !== this.C) throw this.ragged(cells, line);
    const cell = trimmed(buf, p, end, this.tabIsDelimiter);
    return this.roles[c] >= 0 ? this.feature(cell, c, line) : this.label(cell, c, line);
  }

  private feature(cell: string, c: number, line: number): number {
    const v = Number(cell);
    // Number('') and Number('  ') are 0, so empty cells are caught first; whatever else Number
    // accepts (1e-3, .5, 0x10) is taken as written.
    if (cell.trim() === '') {
      throw new DataError(`${this.where(line, c)}: empty cell; expected a number`,
        'fill in or drop the rows with missing values before loading');
    }
    if (Number.isNaN(v) && !NON_FINITE.test(cell)) {
      const seen = otherSeparator([cell], this.delim.char);
      throw new DataError(
        `${this.where(line, c)}: '${clip(cell)}' is not a number`,
        this.plan.header === null && line === this.plan.firstLine && this.opts.header === false
          ? `line ${line} looks like a header; set options.header to true or 'auto'`
          : seen === ',' && /^[+-]?\d*,\d+$/.test(cell)
            ? `'${clip(cell)}' looks like a decimal comma; numbers are read with a decimal point (${cell.replace(',', '.')})`
          : seen !== undefined
            ? `the cell contains ${delimiterText(seen)} but the file is read with the delimiter ${delimiterText(this.delim.char)} ` +
              `(${this.delim.source}): set options.delimiter to ${delimiterText(seen)}`
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

  private label(cell: string, c: number, line: number): number {
    if (this.labels === Labels.Undecided) {
      this.labels = looksNumeric(cell) ? Labels.Indices : Labels.Names;
      this.firstLabel = { line, cell };
    }
    if (this.labels === Labels.Names) return this.className(cell, c, line);
    if (this.labels === Labels.Indices && !looksNumeric(cell)) {
      throw new DataError(
        `${this.where(line, c)}: '${clip(cell)}' is a class name, but the column holds class indices ` +
          `(line ${this.firstLabel.line} has '${clip(this.firstLabel.cell)}')`,
        MIXED_LABELS,
      );
    }
    const v = this.feature(cell, c, line);
    if (this.labels === Labels.Indices) {
      if (!Number.isInteger(v) || v < 0) {
        throw new DataError(`${this.where(line, c)}: '${clip(cell)}' is not a class index; expected an integer >= 0`,
          "for float targets use targets 'values'");
      }
      if (v > 0x7fffffff) {
        throw new DataError(`${this.where(line, c)}: ${cell} is too large for a class index; expected an integer below 2^31`);
      }
    } else if (!(v >= 0 && v <= 1)) {
      throw new DataError(
        `${this.where(line, c)}: ${cell} is outside [0, 1]; targets 'values' are probabilities or 0/1 labels`,
        "for class indices 0..K-1 use targets 'index' with one label column",
      );
    }
    return v;
  }

  private className(cell: string, c: number, line: number): number {
    const classes = this.classes as ClassNames;
    if (cell === '') {
      throw new DataError(`${this.where(line, c)}: empty cell; expected a class name`,
        'fill in or drop the rows with missing labels before loading');
    }
    if (!classes.fixed && looksNumeric(cell)) {
      throw new DataError(
        `${this.where(line, c)}: '${clip(cell)}' looks like a class index, but the column holds class names ` +
          `(line ${this.firstLabel.line} has '${clip(this.firstLabel.cell)}')`,
        MIXED_LABELS,
      );
    }
    const k = classes.indexOf(cell);
    if (k < 0) {
      const known = classes.known;
      const list = known.slice(0, 20).map((n) => `'${clip(n)}'`).join(', ') + (known.length > 20 ? `, ... (${known.length} in all)` : '');
      throw new DataError(
        `${this.where(line, c)}: '${clip(cell)}' is not one of the ${known.length} known class names (${list})`,
        "the known classes are the ones given as classNames (for a test file, the training file's); a class the model was not trained on cannot be scored",
      );
    }
    return k;
  }

  private ragged(cells: number, line: number): DataError {
    const { plan } = this;
    const like = plan.header !== null ? `the header (line ${plan.firstLine})` : `the first row (line ${plan.firstLine})`;
    return new DataError(
      `${this.path} line ${line}: ${cells} cells; expected ${this.C} like ${like}`,
      cells > this.C
        ? `quote fields that contain the delimiter ${JSON.stringify(this.delim.char)}`
        : 'every row needs one cell per column; fill in the missing values',
    );
  }

  /**
   * Room for about `rows` rows at once (the file's size over its first lines'; `line` is the line about
   * to be read), rather than by doubling; as many as fit in memory beside the arrays, and nothing when
   * no more than the arrays hold already fit.
   */
  reserve(rows: number, line: number): void {
    if (Math.min(rows, this.maxRows()) > this.capacity) this.grow(line, rows);
  }

  /** The most rows new arrays may hold: what one typed array holds, and what fits in memory beside the
   *  arrays being copied from. */
  private maxRows(): number {
    const rowBytes = 4 * (this.D + this.K + 1); // x, y and the line number
    return Math.min(Math.floor(typedArrayLimit(4) / Math.max(this.D, this.K)), Math.floor(currentMemoryLimit().bytes / rowBytes) - this.capacity);
  }

  /**
   * Makes room for more rows: twice as many, but never more than one typed array holds or than fits in
   * memory beside the arrays being copied from. When not even one more row fits, refuses the file at
   * `line`, with the rows read so far, the size they need and the limit, before allocating.
   */
  private grow(line: number, wanted = Math.max(INITIAL_ROWS, 2 * this.capacity)): void {
    const { D, K } = this;
    const rowBytes = 4 * (D + K + 1);
    const limit = currentMemoryLimit();
    const capacity = Math.min(wanted, this.maxRows());
    if (capacity <= this.rows) {
      const rows = this.rows + 1;
      const byMemory = Math.floor(typedArrayLimit(4) / Math.max(D, K)) >= rows;
      throw new DataError(
        `${this.path} line ${line}: ${rows} rows of ${D} float32 features and ${K} target${K === 1 ? '' : 's'} ` +
          (byMemory
            ? `need ${formatBytes((rows + this.capacity) * rowBytes)} while they are read, more than the ` +
              `${formatBytes(limit.bytes)} memory limit (${limit.source})`
            : `need ${rows * Math.max(D, K)} values in one array, more than the ${typedArrayLimit(4)} one typed ` +
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
}

const MIXED_LABELS = 'a label column holds either class indices (integers >= 0) or class names; ' +
  'to read every cell as a class name, pass the names as classNames';

/** Cells in the line buf[s, e): one more than its delimiters (byte lines have no quotes). */
function countCells(buf: Uint8Array, s: number, e: number, delimiter: number): number {
  let n = 1;
  for (let p = s; p < e; p++) if (buf[p] === delimiter) n++;
  return n;
}

const decoder = new TextDecoder();

/** buf[s, e) as text, without the whitespace csv-parse's trim removes around a field (spaces, tabs
 *  unless they delimit, form feeds, carriage returns). */
function trimmed(buf: Uint8Array, s: number, e: number, tabIsDelimiter: boolean): string {
  const space = (b: number): boolean => b === 32 || b === 12 || b === 13 || (b === 9 && !tabIsDelimiter);
  while (s < e && space(buf[s])) s++;
  while (e > s && space(buf[e - 1])) e--;
  return decoder.decode(buf.subarray(s, e));
}

function clip(cell: string): string {
  return cell.length > 40 ? `${cell.slice(0, 37)}...` : cell;
}
