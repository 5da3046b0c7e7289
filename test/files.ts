// Valid and damaged files written by hand for the loader tests, independent of the code that reads them.

/** An IDX file: the header and values written big-endian with DataView, independent of decodeIdx. */
export function idx(type: number, dims: number[], values: number[], extraBytes = 0): Uint8Array {
  const size = { 0x08: 1, 0x09: 1, 0x0b: 2, 0x0c: 4, 0x0d: 4, 0x0e: 8 }[type] ?? 1;
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + size * values.length + extraBytes);
  const view = new DataView(out.buffer);
  view.setUint8(2, type);
  view.setUint8(3, dims.length);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  values.forEach((v, i) => {
    const at = header + size * i;
    if (type === 0x08) view.setUint8(at, v);
    else if (type === 0x09) view.setInt8(at, v);
    else if (type === 0x0b) view.setInt16(at, v, false);
    else if (type === 0x0c) view.setInt32(at, v, false);
    else if (type === 0x0d) view.setFloat32(at, v, false);
    else view.setFloat64(at, v, false);
  });
  return out;
}

/** A safetensors file from a header and data, written here by hand so bad files do not go through encode. */
export function assemble(header: unknown, data: Uint8Array): Uint8Array {
  let text = typeof header === 'string' ? header : JSON.stringify(header);
  while ((8 + Buffer.byteLength(text)) % 8 !== 0) text += ' ';
  const json = Buffer.from(text, 'utf8');
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}
