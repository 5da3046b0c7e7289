// The few pieces the hand-written SVG charts share (the tuner's scaling chart, the learning curves):
// round axis ends, text escaping, and a panel's frame with its ticks. Written by hand: a chart library
// would outweigh both charts together.

/** The next of 1, 2, 2.5, 5 times a power of ten at or above v, so the axis ticks are round. */
export function niceCeil(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return ([1, 2, 2.5, 5, 10].find((m) => m * p >= v) as number) * p;
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A number as an axis label: up to 3 significant digits, no trailing zeros. */
export function tickText(v: number): string {
  return v === 0 ? '0' : Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : String(Number(v.toPrecision(3)));
}
