// How values read from an untrusted file are shown in messages: bounded in length and depth whatever
// the file holds, names quoted and clipped, shapes as (out, in).

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value} (${preview(value)})`;
}

/** A JSON value shown in a message, bounded in length and depth whatever the file holds. */
export function preview(value: unknown, max = 80): string {
  const text = render(value, 0);
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

function render(value: unknown, depth: number): string {
  if (typeof value === 'string') return JSON.stringify(clip(value, 80));
  if (Array.isArray(value) || isObject(value)) {
    if (depth === 3) return Array.isArray(value) ? '[...]' : '{...}';
    const parts: string[] = [];
    let length = 0;
    const keys = Array.isArray(value) ? null : Object.keys(value);
    const count = keys === null ? (value as unknown[]).length : keys.length;
    for (let i = 0; i < count; i++) {
      if (length > 80) {
        parts.push('...');
        break;
      }
      const part = keys === null
        ? render((value as unknown[])[i], depth + 1)
        : `${JSON.stringify(clip(keys[i], 40))}:${render((value as Record<string, unknown>)[keys[i]], depth + 1)}`;
      parts.push(part);
      length += part.length + 1;
    }
    return Array.isArray(value) ? `[${parts.join(',')}]` : `{${parts.join(',')}}`;
  }
  return String(value);
}

/** A name from the file, quoted and clipped for a message. */
export function quote(text: string, mark = "'"): string {
  return `${mark}${clip(text, 80)}${mark}`;
}

export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

export function fmtShape(shape: readonly number[]): string {
  return shape.length > 8 ? `(${shape.slice(0, 8).join(', ')}, ... ${shape.length} dimensions)` : `(${shape.join(', ')})`;
}
