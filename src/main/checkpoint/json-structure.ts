// The one check of a safetensors header's text that JSON.parse cannot make: no object with a key twice
// (JSON.parse silently keeps the last: two entries for one tensor, say) and no absurd nesting.

import { quote } from './text.js';

/** A safetensors header nests 3 levels (tensors, their entries, their shapes); far deeper is not one. */
const MAX_JSON_DEPTH = 64;

/**
 * Why a header's JSON text (which JSON.parse accepted) is not a header: nested deeper than
 * MAX_JSON_DEPTH, or an object with a key twice, of which JSON.parse would silently keep the last (two
 * entries for one tensor, say). Scans the text once; only valid JSON reaches it.
 */
export function jsonStructureProblem(text: string): string | undefined {
  interface Frame {
    keys: Set<string> | null; // null for an array
    expectKey: boolean;
    lastKey: string | undefined;
  }
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // a string: skip to its closing quote, stepping over escapes
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top !== undefined && top.keys !== null && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) {
          if (stack.length === 1) {
            return key === '__metadata__'
              ? 'header has two __metadata__ entries; expected one'
              : `header lists tensor ${quote(key)} twice; expected each tensor once`;
          }
          const parent = stack[stack.length - 2].lastKey;
          if (stack.length === 2 && parent === '__metadata__') return `__metadata__ has the key ${quote(key)} twice; expected each key once`;
          const where = parent === undefined ? 'one object' : `the entry of ${quote(parent)}`;
          return `header has the key ${quote(key)} twice in ${where}; expected each key once`;
        }
        top.keys.add(key);
        top.expectKey = false;
        top.lastKey = key;
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      // { or [
      if (stack.length === MAX_JSON_DEPTH) {
        return `header nests JSON more than ${MAX_JSON_DEPTH} levels deep; a safetensors header has 3 ` +
          '(tensors, their entries, their shapes)';
      }
      stack.push({ keys: c === 0x7b ? new Set() : null, expectKey: c === 0x7b, lastKey: undefined });
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
    } else if (c === 0x2c) {
      const top = stack[stack.length - 1];
      if (top !== undefined && top.keys !== null) top.expectKey = true;
    }
  }
  return undefined;
}

