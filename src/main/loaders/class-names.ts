// Class names to class indices, as sklearn's LabelEncoder does it: the distinct names sorted by Unicode
// code point (numpy.unique's order for Python strings), index k for the k-th; or, when the classes are
// given (a test file read with the training file's classes), the index of each name in that list.

/** Compares two strings by Unicode code point, as Python does. JavaScript's default sort compares
 *  UTF-16 code units, which puts characters past U+FFFF before U+E000..U+FFFF. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i) as number;
    const y = b.codePointAt(i) as number;
    if (x !== y) return x - y;
    if (x > 0xffff) i++; // both are the same surrogate pair
  }
  return a.length - b.length;
}

/** Names seen while reading, each given a provisional index in order of first appearance; `order()`
 *  then maps provisional indices to the sorted ones. With `known` classes, indices are final at once. */
export class ClassNames {
  private readonly index = new Map<string, number>();
  private readonly names: string[] = [];
  readonly fixed: boolean;

  constructor(known?: readonly string[]) {
    this.fixed = known !== undefined;
    known?.forEach((name, k) => {
      this.index.set(name, k);
      this.names.push(name);
    });
  }

  /** The index of `name`: provisional while reading unless the classes are fixed; -1 for a name not
   *  among fixed classes. */
  indexOf(name: string): number {
    const k = this.index.get(name);
    if (k !== undefined) return k;
    if (this.fixed) return -1;
    this.index.set(name, this.names.length);
    this.names.push(name);
    return this.names.length - 1;
  }

  get known(): readonly string[] {
    return this.names;
  }

  /** The class names by final index, and each provisional index's final one. */
  order(): { classNames: string[]; final: Int32Array } {
    const classNames = this.fixed ? this.names.slice() : this.names.slice().sort(compareCodePoints);
    const final = new Int32Array(this.names.length);
    const rank = new Map(classNames.map((name, k) => [name, k]));
    this.names.forEach((name, k) => (final[k] = rank.get(name) as number));
    return { classNames, final };
  }
}
