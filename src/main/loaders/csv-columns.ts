// The columns of a CSV file, fixed by its first record: whether that record is a header, and which
// columns are labels, features or ignored, each given by header name or 0-based index; and the
// delimiter, detected from the first line when it is not given. A delimiter that looks wrong (a named
// column not found, and another separator in the header) is said in the error.

import { DataError } from '../errors.js';

export type ColumnSpec = string | number;

/** The separators detected from the first line, most frequent first, ties in this order. */
export const DETECTED_DELIMITERS = [',', ';', '\t'] as const;
/** The separators a wrong-delimiter hint looks for in the header. */
const SEPARATORS = [',', ';', '\t', '|'];

/** The delimiter a file is read with, and where it came from, for messages. */
export interface Delimiter {
  char: string;
  /** 'options.delimiter', 'the .tsv default' or 'detected from line 3'. */
  source: string;
}

/** A delimiter as messages show it: ',' or '\t'. */
export const delimiterText = (d: string): string => (d === '\t' ? "'\\t' (tab)" : `'${d}'`);

/** The most frequent of comma, semicolon and tab outside quotes in `line` (bytes); comma if none. */
export function detectDelimiter(line: Uint8Array): string {
  const counts = [0, 0, 0];
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const b = line[i];
    if (b === 34) quoted = !quoted;
    else if (!quoted) counts[b === 44 ? 0 : b === 59 ? 1 : b === 9 ? 2 : 3]++;
  }
  let best = 0;
  for (let k = 1; k < 3; k++) if (counts[k] > counts[best]) best = k;
  return DETECTED_DELIMITERS[best];
}

const NON_FINITE = /^[+-]?(nan|inf|infinity)$/i;

/** True for cells that would be data in the first row: numbers, empty cells and NaN/Infinity spellings. */
export function looksNumeric(cell: string): boolean {
  return cell === '' || !Number.isNaN(Number(cell)) || NON_FINITE.test(cell);
}

/** A column as messages name it: by its header name when it has one, else by its 0-based index. */
export function columnName(header: readonly string[] | null, c: number): string {
  const name = header?.[c];
  return name !== undefined && name !== '' ? `column '${name}'` : `column ${c}`;
}

/** A separator other than `used` found in `cells`: a sign that the file was split at the wrong one. */
export function otherSeparator(cells: readonly string[], used: string): string | undefined {
  return SEPARATORS.find((s) => s !== used && cells.some((cell) => cell.includes(s)));
}

/** A column's role in a row: a feature slot (>= 0), IGNORED, or label k as labelRole(k). */
export const IGNORED = -1;
export const labelRole = (k: number): number => -2 - k;
export const labelOf = (role: number): number => -2 - role;

export interface ColumnOptions {
  labelColumns: readonly ColumnSpec[];
  featureColumns?: readonly ColumnSpec[];
  ignoreColumns?: readonly ColumnSpec[];
  header: boolean | 'auto';
  /** True when the label columns hold numbers (targets 'values'): they then count in the header test. */
  numericLabels: boolean;
}

/** The file's columns, as its first record fixes them. */
export interface ColumnPlan {
  columns: number;
  /** The header's names, or null when the first record is data. */
  header: string[] | null;
  /** The line of the first record (the header, or the first row). */
  firstLine: number;
  /** Label column indices, in the order of options.labelColumns. */
  labels: number[];
  /** Feature column indices, in the order of the features (options.featureColumns', or the file's). */
  features: number[];
  /** (C) each column's role: feature slot, IGNORED or labelRole(k). */
  roles: Int32Array;
}

/** Resolves the options' columns against the first record; throws a DataError naming what is wrong. */
export function planColumns(path: string, record: string[], line: number, opts: ColumnOptions, delimiter: Delimiter): ColumnPlan {
  const C = record.length;
  const lists: [string, readonly ColumnSpec[]][] = [['labelColumns', opts.labelColumns]];
  if (opts.featureColumns !== undefined) lists.push(['featureColumns', opts.featureColumns]);
  if (opts.ignoreColumns !== undefined) lists.push(['ignoreColumns', opts.ignoreColumns]);
  const named = lists.flatMap(([option, specs]) => specs.filter((s) => typeof s === 'string').map((s) => [option, s as string]));
  let isHeader: boolean;
  if (opts.header !== 'auto') {
    isHeader = opts.header;
  } else if (named.length > 0) {
    isHeader = record.some((cell) => !looksNumeric(cell));
  } else {
    // Every column given by index: only the cells that must be numbers decide, so that a headerless
    // file of class names (5.1,3.5,setosa) is not taken for one with a header.
    const asNumbers = numericColumns(C, opts);
    isHeader = asNumbers.some((c) => c < C && !looksNumeric(record[c]));
  }
  if (!isHeader && named.length > 0) {
    const [option, name] = named[0];
    const what = `${columnWord(option)} '${name}' is given by name`;
    throw new DataError(
      opts.header === false
        ? `${path}: ${what}, but options.header is false`
        : `${path}: ${what}, but the file has no header: every cell of line ${line} is a number`,
      `add a header row, or give the ${columnWord(option)} as a 0-based index`,
    );
  }
  const header = isHeader ? record : null;
  const resolver = new Resolver(path, record, header, line, delimiter);
  const role = new Int32Array(C).fill(-100); // unassigned
  const where = new Map<number, [string, number]>(); // column -> the option entry that took it
  const take = (option: string, specs: readonly ColumnSpec[]): number[] =>
    specs.map((spec, i) => {
      const c = resolver.resolve(spec, columnWord(option));
      const earlier = where.get(c);
      if (earlier !== undefined) {
        const [first, j] = earlier;
        throw new DataError(
          first === option
            ? `${path}: options.${option} lists ${resolver.columnName(c)} twice (${option}[${j}] and ${option}[${i}])`
            : `${path}: ${resolver.columnName(c)} is in both options.${first}[${j}] and options.${option}[${i}]`,
          'list each column once: a column is a label, a feature or ignored',
        );
      }
      where.set(c, [option, i]);
      return c;
    });
  const labels = take('labelColumns', opts.labelColumns);
  labels.forEach((c, k) => (role[c] = labelRole(k)));
  const ignored = opts.ignoreColumns === undefined ? [] : take('ignoreColumns', opts.ignoreColumns);
  for (const c of ignored) role[c] = IGNORED;
  let features: number[];
  if (opts.featureColumns !== undefined) {
    features = take('featureColumns', opts.featureColumns);
    for (let c = 0; c < C; c++) if (role[c] === -100) role[c] = IGNORED;
  } else {
    features = [];
    for (let c = 0; c < C; c++) if (role[c] === -100) features.push(c);
  }
  features.forEach((c, f) => (role[c] = f));
  if (header !== null) refuseDuplicateNames(path, header, line);
  if (features.length === 0) {
    throw new DataError(
      ignored.length === 0
        ? `${path}: every one of the ${C} columns is a label column; at least one feature column is needed`
        : `${path}: no feature column is left: of the ${C} columns, ${labels.length} are labels and ${ignored.length} ignored`,
      'options.labelColumns should list only the target columns',
    );
  }
  return { columns: C, header, firstLine: line, labels, features, roles: role };
}

/** Refuses a header that gives one name to several columns: the model records its feature columns by
 *  name, and evaluate and predict find them by it, so such a file would train a model whose data they
 *  could not read as training did. Training, evaluate and predict all refuse it, before any work. */
function refuseDuplicateNames(path: string, header: readonly string[], line: number): void {
  const at = new Map<string, number[]>();
  header.forEach((name, c) => at.set(name, [...(at.get(name) ?? []), c]));
  const twice = [...at].filter(([, cs]) => cs.length > 1);
  if (twice.length === 0) return;
  const listed = twice.slice(0, 5).map(([name, cs]) => `'${name}' at columns ${cs.join(', ')}`).join('; ');
  const [name, cs] = twice[0];
  throw new DataError(
    `${path}: the header (line ${line}) gives the same name to several columns: ${listed}${twice.length > 5 ? `; and ${twice.length - 5} more names` : ''} ` +
      '(0-based); each column needs its own name, since the model records its feature columns by name',
    `rename the columns in the header line so that each name is unique (e.g. ${cs.map((_, i) => `'${name}_${i + 1}'`).join(', ')})`,
  );
}

/** The columns whose cells must be numbers, when every column is given by index. */
function numericColumns(C: number, opts: ColumnOptions): number[] {
  if (opts.featureColumns !== undefined) {
    return [...(opts.featureColumns as number[]), ...(opts.numericLabels ? (opts.labelColumns as number[]) : [])];
  }
  const skip = new Set<number>([...(opts.ignoreColumns ?? []) as number[], ...(opts.numericLabels ? [] : opts.labelColumns as number[])]);
  return Array.from({ length: C }, (_, c) => c).filter((c) => !skip.has(c));
}

function columnWord(option: string): string {
  return option === 'labelColumns' ? 'label column' : option === 'featureColumns' ? 'feature column' : 'ignored column';
}

/** Column specs to indices, with messages that name the header, and the delimiter when it looks wrong. */
class Resolver {
  constructor(
    private readonly path: string,
    private readonly record: string[],
    private readonly header: string[] | null,
    private readonly line: number,
    private readonly delimiter: Delimiter,
  ) {}

  resolve(spec: ColumnSpec, word: string): number {
    const { path, record, line } = this;
    const C = record.length;
    if (typeof spec === 'number') {
      if (spec >= C) {
        throw new DataError(
          `${path}: ${word} ${spec} is out of range; line ${line} has ${C} column${C === 1 ? '' : 's'} (indices 0 to ${C - 1})` +
            this.wrongDelimiter(),
          this.delimiterHint(),
        );
      }
      return spec;
    }
    const header = this.header as string[];
    const matches = header.flatMap((name, c) => (name === spec ? [c] : []));
    if (matches.length === 1) return matches[0];
    if (matches.length > 1) {
      throw new DataError(
        `${path}: ${word} '${spec}' is ambiguous; the header (line ${line}) has it at columns ${matches.join(', ')}`,
        'rename the columns in the header line so that each name is unique',
      );
    }
    const shown = header.slice(0, 30).map((n) => `'${n}'`).join(', ') + (header.length > 30 ? `, ... (${header.length} in all)` : '');
    const near = header.find((n) => n.toLowerCase() === spec.toLowerCase());
    throw new DataError(
      `${path}: no column named '${spec}' in the header (line ${line}); the columns are ${shown}` + this.wrongDelimiter(),
      this.delimiterHint() ?? (near !== undefined ? `did you mean '${near}'? names are case-sensitive` : undefined),
    );
  }

  columnName(c: number): string {
    return columnName(this.header, c);
  }

  private seen(): string | undefined {
    return otherSeparator(this.record, this.delimiter.char);
  }

  private wrongDelimiter(): string {
    const seen = this.seen();
    if (seen === undefined) return '';
    return `\nthe line was split at ${delimiterText(this.delimiter.char)} (${this.delimiter.source}), but it contains ${delimiterText(seen)}: ` +
      `the file may be separated by ${delimiterText(seen)}`;
  }

  private delimiterHint(): string | undefined {
    const seen = this.seen();
    return seen === undefined ? undefined : `set options.delimiter to ${delimiterText(seen)}`;
  }
}
