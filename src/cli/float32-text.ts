// The shortest decimal that reads back as the same float32 (Number(text), then Math.fround), as predict
// writes probabilities, found from the float32's rounding interval in one pass: the decimal with the
// fewest significant digits inside the interval, the nearest to the value among those (halfway: the
// larger, as toPrecision rounds). The tests compare it with an exact search, digit count by digit count.

/** The float32's bits, read through a scratch view (no allocation per call). */
const F32 = new Float32Array(1);
const BITS = new Uint32Array(F32.buffer);
/** 10^0 ... 10^22: exact as doubles (parsed from their decimal), so c * 10^p rounds once. */
const POW10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));
/** How far the scaled interval computed in doubles may be from the exact one, in units of its last digit. */
const SLACK = 1e-5;

/**
 * The shortest decimal text `t` with `Math.fround(Number(t)) === v`, for a float32 value `v`; among
 * texts of that many digits, the nearest to `v` (halfway between two: the larger). Written as JavaScript writes numbers (`String(x)`):
 * `0.25`, `1e-7`, `3.4028235e+38`. `-0` is written `0`, as String writes it.
 */
export function shortestFloat32(v: number): string {
  if (v === 0 || !Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  const sign = v < 0 ? '-' : '';
  F32[0] = a;
  const exponent = BITS[0] >>> 23;
  const mantissa = BITS[0] & 0x7fffff;
  // The reals that round to `a`: from half the gap below to half the gap above (the gap below is half
  // as wide at a power of two), the ends included when the mantissa is even (ties go to even).
  const ulp = 2 ** (Math.max(exponent, 1) - 150);
  const below = mantissa === 0 && exponent > 1 ? ulp / 2 : ulp;
  // Scaled by 10^s so that `a` has nine digits before the point: every float32 needs at most nine.
  let s = 8 - Math.floor(Math.log10(a));
  let scale = pow10(s);
  if (a * scale >= 1e9) scale = pow10(--s);
  else if (a * scale < 1e8) scale = pow10(++s);
  const V = a * scale;
  const lo = (a - below / 2) * scale - SLACK;
  const hi = (a + ulp / 2) * scale + SLACK;
  // Fewest digits first: the multiples of 10^t in the interval, t = 8 (one digit) down to 0 (nine). At
  // each t only the two multiples around V can be the nearest one inside (the interval holds V and is
  // convex), so at most two are read back.
  for (let t = 8; t >= 0; t--) {
    const step = POW10[t];
    const q = V / step;
    const near = Math.round(q);
    const other = q > near ? near + 1 : near - 1;
    const nearOk = readsBack(a, near, step, t - s, lo, hi);
    const otherOk = readsBack(a, other, step, t - s, lo, hi);
    if (nearOk && otherOk && Math.abs(Math.abs(q - near) - 0.5) < 1e-6) {
      // Both read back and V is (nearly) halfway between them: the nearer, decided exactly.
      return sign + decimalText(nearerExactly(a, near, other, t - s), t - s);
    }
    if (nearOk) return sign + decimalText(near, t - s);
    if (otherOk) return sign + decimalText(other, t - s);
  }
  return sign + String(Number(a.toPrecision(9))); // not reached: nine digits always read back
}

/** True when c * 10^p reads back as `a`; c * step (its scaled value) is first tested against the
 *  scaled interval [lo, hi] (its ends widened by SLACK), so that most candidates cost no reading. */
function readsBack(a: number, c: number, step: number, p: number, lo: number, hi: number): boolean {
  const x = c * step;
  return c > 0 && x >= lo && x <= hi && Math.fround(decimal(c, p)) === a;
}

/** c * 10^p as JavaScript writes the number (Number.prototype.toString's rules), from its digits. */
function decimalText(c: number, p: number): string {
  while (c % 10 === 0) {
    c /= 10;
    p++;
  }
  const digits = String(c);
  const k = digits.length;
  const n = k + p; // the value is 0.digits * 10^n
  if (k <= n && n <= 21) return digits + '0'.repeat(n - k);
  if (0 < n && n <= 21) return `${digits.slice(0, n)}.${digits.slice(n)}`;
  if (-6 < n && n <= 0) return `0.${'0'.repeat(-n)}${digits}`;
  const e = n - 1;
  return `${digits[0]}${k > 1 ? `.${digits.slice(1)}` : ''}e${e < 0 ? '-' : '+'}${Math.abs(e)}`;
}

/** 10^s as a double: exact up to 10^22, else within an ulp (only the scaling uses those). */
function pow10(s: number): number {
  return s >= 0 ? (s <= 22 ? POW10[s] : 10 ** s) : (s >= -22 ? 1 / POW10[-s] : 10 ** s);
}

/** The double nearest to c * 10^p, as Number(`${c}e${p}`) reads it: one rounding of exact operands. */
function decimal(c: number, p: number): number {
  if (p >= 0 && p <= 22) return c * POW10[p];
  if (p < 0 && p >= -22) return c / POW10[-p];
  return Number(`${c}e${p}`);
}

/** Of c1 * 10^p and c2 * 10^p, the c nearer to the float32 `a`, in exact integer arithmetic. */
function nearerExactly(a: number, c1: number, c2: number, p: number): number {
  F32[0] = a;
  const exponent = BITS[0] >>> 23;
  const m = BigInt((BITS[0] & 0x7fffff) + (exponent === 0 ? 0 : 0x800000));
  const e = Math.max(exponent, 1) - 150; // a = m * 2^e
  // Compare 2a with (c1 + c2) * 10^p: a is above their midpoint when the larger c is nearer.
  let left = 2n * m;
  let right = BigInt(c1 + c2);
  if (e >= 0) left <<= BigInt(e);
  else right <<= BigInt(-e);
  if (p >= 0) right *= 10n ** BigInt(p);
  else left *= 10n ** BigInt(-p);
  const larger = Math.max(c1, c2);
  // Exactly halfway: the larger, as toPrecision rounds (half away from zero).
  return left >= right ? larger : c1 + c2 - larger;
}
