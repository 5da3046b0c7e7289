// Decimal numbers read straight from a file's bytes, for the CSV loader's fast path: no string is made
// for a cell, and the float32 stored is bit for bit Math.fround(Number(cell)). Only the common forms are
// read here (sign, digits, point, exponent, spaces around); for anything else, and for the rare value
// this cannot round with certainty, it answers NaN and the caller reads the cell as a string.

/** 10^0 .. 10^22, every one exact in float64 (5^22 < 2^53); parsed from text, since `10 ** k` need not
 *  be correctly rounded. */
const POW10 = Float64Array.from({ length: 23 }, (_, k) => Number(`1e${k}`));
/** Significant digits kept: any 15-digit integer (< 10^15 < 2^53) is exact in float64. */
const KEPT_DIGITS = 15;

/** What the last parseDecimal call that returned a number found, besides the number. */
export const scanned = {
  /** Where the cell stopped: the delimiter after it, or the end of the line. */
  end: 0,
  /** True when the number returned is Number(cell) itself; false when only its float32 rounding is
   *  (a cell of more than 15 significant digits). */
  exact: true,
};

/**
 * The cell starting at `p` in `buf`, up to the byte `delimiter` or `end`, as a float64 whose float32
 * rounding is Math.fround(Number(cell)); NaN when the cell is not of the form
 * `spaces [+-] digits [. digits] [(e|E) [+-] digits] spaces` (with at least one mantissa digit) or when
 * it cannot be rounded here, in which case `scanned` is untouched. Tabs count as spaces unless
 * `tabIsDelimiter`.
 *
 * Why it is exact (Clinger's fast path): with at most 15 significant digits m and a power of ten
 * 10^e with |e| <= 22, both m and 10^e are exact doubles, so the one IEEE multiplication or division
 * m * 10^e (m / 10^-e) is the correctly rounded double, which is what Number() returns. With more
 * digits, the value x lies between lo = m * 10^e and hi = (m + 1) * 10^e (m its first 15 digits); both
 * roundings, to double and then to float32, are monotone, so when lo and hi round to the same float32,
 * so does x. Otherwise (x within ~1e-15 of a float32 rounding boundary) NaN sends it to Number().
 * Every number returned is below 10^38, inside the float32 range.
 */
export function parseDecimal(buf: Uint8Array, p: number, end: number, delimiter: number, tabIsDelimiter: boolean): number {
  // The common case first: at most 15 digits in all, so every digit goes into m, leading zeros too.
  const start = p;
  let b = p < end ? buf[p] : -1;
  const negative = b === 45;
  if (negative || b === 43) b = ++p < end ? buf[p] : -1;
  let m = 0;
  let d = b - 48;
  const first = p;
  while (d >= 0 && d <= 9) {
    m = m * 10 + d;
    d = ++p < end ? buf[p] - 48 : -1;
  }
  let count = p - first;
  let exponent = 0;
  if (d === -2) { // '.'
    const fraction = ++p;
    d = p < end ? buf[p] - 48 : -1;
    while (d >= 0 && d <= 9) {
      m = m * 10 + d;
      d = ++p < end ? buf[p] - 48 : -1;
    }
    exponent = fraction - p;
    count -= exponent;
  }
  // d is the byte after the number, less 48: the delimiter, or -1 at the end of the line.
  if (count === 0 || count > KEPT_DIGITS || (p < end && d + 48 !== delimiter)) {
    // No digit, more than 15, an exponent, spaces, or not a number. (This function stays under V8's
    // limit for inlining, 460 bytes of bytecode: the rest is in parseCareful.)
    return parseCareful(buf, start, end, delimiter, tabIsDelimiter);
  }
  scanned.end = p;
  scanned.exact = true;
  const v = exponent === 0 ? m : m / POW10[-exponent];
  return negative ? -v : v;
}

/** parseDecimal for any cell: leading spaces, more than 15 digits, an exponent. The digit loops stay here,
 *  on local variables: they are the hot part, and moving them out (into helpers sharing an object) made
 *  this parser 17% slower. */
function parseCareful(buf: Uint8Array, p: number, end: number, delimiter: number, tabIsDelimiter: boolean): number {
  p = skipSpaces(buf, p, end, tabIsDelimiter);
  if (p === end) return NaN;
  const negative = buf[p] === 45;
  if (negative || buf[p] === 43) p++;
  let m = 0; // the first KEPT_DIGITS significant digits, as an integer
  let digits = 0; // significant digits in m
  let exponent = 0; // the cell is (m + a fraction dropped) * 10^exponent
  let dropped = false; // a nonzero digit past the kept ones
  const first = p;
  for (; p < end; p++) {
    const d = buf[p] - 48;
    if (d < 0 || d > 9) break;
    if (digits < KEPT_DIGITS) {
      if (m !== 0 || d !== 0) {
        m = m * 10 + d;
        digits++;
      }
    } else {
      exponent++;
      if (d !== 0) dropped = true;
    }
  }
  let any = p > first;
  if (p < end && buf[p] === 46) {
    const fraction = ++p;
    for (; p < end; p++) {
      const d = buf[p] - 48;
      if (d < 0 || d > 9) break;
      if (digits < KEPT_DIGITS) {
        if (m !== 0 || d !== 0) {
          m = m * 10 + d;
          digits++;
        }
        exponent--;
      } else if (d !== 0) {
        dropped = true;
      }
    }
    any ||= p > fraction;
  }
  if (!any) return NaN;
  if (p < end && (buf[p] | 32) === 101) {
    p = readExponent(buf, p + 1, end);
    if (p < 0) return NaN;
    exponent += exponentRead;
  }
  p = skipSpaces(buf, p, end, tabIsDelimiter);
  if (p < end && buf[p] !== delimiter) return NaN;
  const v = cellValue(m, exponent, dropped);
  if (Number.isNaN(v)) return NaN;
  scanned.end = p;
  return negative ? -v : v;
}

/** The index of the first byte from p on that is not a space (nor a tab, unless tabIsDelimiter). */
function skipSpaces(buf: Uint8Array, p: number, end: number, tabIsDelimiter: boolean): number {
  let b = 0;
  while (p < end && ((b = buf[p]) === 32 || (b === 9 && !tabIsDelimiter))) p++;
  return p;
}

/** The exponent readExponent read last. */
let exponentRead = 0;

/** Reads the exponent's `[+-] digits` from p (after the 'e') into exponentRead: the index after it, or -1
 *  when it has no digit. */
function readExponent(buf: Uint8Array, p: number, end: number): number {
  let negative = false;
  if (p < end && buf[p] === 45) {
    negative = true;
    p++;
  } else if (p < end && buf[p] === 43) {
    p++;
  }
  const first = p;
  let e = 0;
  for (; p < end; p++) {
    const d = buf[p] - 48;
    if (d < 0 || d > 9) break;
    if (e < 1e6) e = e * 10 + d; // past that, any mantissa under- or overflows anyway
  }
  if (p === first) return -1;
  exponentRead = negative ? -e : e;
  return p;
}

/** (m + a fraction when `dropped`) * 10^exponent, positive, as a float64 whose float32 rounding is the
 *  cell's, and scanned.exact; NaN, scanned untouched, when that cannot be known here (parseDecimal's
 *  comment says why). */
function cellValue(m: number, exponent: number, dropped: boolean): number {
  if (m === 0) {
    scanned.exact = true;
    return 0; // every digit zero: 0 whatever the exponent, and nothing was dropped
  }
  if (exponent < -22 || exponent > 22) return NaN;
  const v = times10(m, exponent);
  if (dropped) {
    if (Math.fround(v) !== Math.fround(times10(m + 1, exponent))) return NaN;
    scanned.exact = false;
  } else {
    scanned.exact = true;
  }
  return v;
}

/** m * 10^e for |e| <= 22, with one correctly rounded operation. */
function times10(m: number, e: number): number {
  return e < 0 ? m / POW10[-e] : m * POW10[e];
}
