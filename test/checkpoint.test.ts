// Checkpoint tests: bit-exact round trips, the safetensors byte format checked against a file written by
// an independent Python writer and by a hand-written spec reader, loading into torch, atomic saves, and
// one test per kind of bad file. Bad files are assembled by hand here, never by encodeCheckpoint.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CheckpointError, FileError } from '../src/main/errors.js';
import { loadCheckpoint, saveCheckpoint } from '../src/main/checkpoint/file.js';
import { assignParameters } from '../src/main/checkpoint/parameters.js';
import { decodeCheckpoint, encodeCheckpoint, type Checkpoint } from '../src/main/checkpoint/safetensors.js';
import type { ModelConfig } from '../src/shared/model.js';
import { Rng } from '../src/shared/rng.js';
import { assemble } from './files.js';
import { needsTorch, PYTHON, requireTorch, skipWithoutTorch } from './torch.js';

// File system calls go through this wrapper so that the atomic-save tests can record their order and make
// one of them fail (a full disk half-way through the write, say). With no fault set it only passes through.
type SaveStep = 'open' | 'write' | 'sync' | 'close' | 'rename';
const fsFaults = vi.hoisted(() => ({
  fail: null as null | 'open' | 'write' | 'sync' | 'close' | 'rename',
  calls: [] as string[],
}));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const fault = (step: SaveStep, code: string): void => {
    if (fsFaults.fail === step) throw Object.assign(new Error(`${code}: injected ${step} failure`), { code });
  };
  const name = (p: unknown): string => (String(p).includes('.tmp-') ? 'temp' : String(p).endsWith('.safetensors') ? 'target' : 'dir');
  return {
    ...fs,
    open: async (path: string, flags?: string, mode?: number) => {
      fsFaults.calls.push(`open ${name(path)}`);
      if (name(path) === 'temp') fault('open', 'EACCES');
      const handle = await fs.open(path, flags, mode);
      return new Proxy(handle, {
        get(target, prop) {
          const value = Reflect.get(target, prop, target);
          if (prop === 'writeFile') {
            return async (data: Uint8Array) => {
              fsFaults.calls.push(`write ${name(path)}`);
              if (fsFaults.fail === 'write') {
                await target.write(data.subarray(0, data.length >> 1)); // half the file, then the disk is full
                fault('write', 'ENOSPC');
              }
              return target.writeFile(data);
            };
          }
          if (prop === 'sync' || prop === 'close') {
            return async () => {
              fsFaults.calls.push(`${prop} ${name(path)}`);
              if (prop === 'sync' && name(path) === 'temp') fault(prop, 'EIO');
              await (value as () => Promise<void>).call(target);
              if (prop === 'close' && name(path) === 'temp') fault(prop, 'EIO'); // as close(2): the descriptor is gone
            };
          }
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    },
    rename: async (from: string, to: string) => {
      fsFaults.calls.push(`rename ${name(from)} ${name(to)}`);
      fault('rename', 'EXDEV');
      return fs.rename(from, to);
    },
  };
});

needsTorch('test/checkpoint.test.ts');
const FIXTURE = fileURLToPath(new URL('./fixtures/tiny.safetensors', import.meta.url));
const FIXTURE_SCRIPT = fileURLToPath(new URL('../scripts/reference/make_safetensors_fixture.py', import.meta.url));

// The [3, 2, 2] model of test/fixtures/tiny.safetensors, with the values its Python writer uses.
const TINY: ModelConfig = { layers: [3, 2, 2], activation: 'relu', loss: 'cross-entropy' };
const TINY_TENSORS: [name: string, shape: number[], values: number[]][] = [
  ['layers.0.weight', [2, 3], [0.5, -1.25, 3.0, -0.75, 2.0, 0.125]],
  ['layers.0.bias', [2], [0.25, -0.5]],
  ['layers.2.weight', [2, 2], [1.5, -2.0, 0.0625, 4.0]],
  ['layers.2.bias', [2], [-3.5, 1.0]],
];
const TINY_PARAMS = new Float32Array(TINY_TENSORS.flatMap(([, , values]) => values)); // (14)

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradpool-checkpoint-'));
  fsFaults.fail = null;
  fsFaults.calls = [];
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Random float32 bit patterns (NaN payloads included), led by the values a lossy path would change. */
function randomParams(P: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const bits = new Uint32Array(P);
  for (let i = 0; i < P; i++) bits[i] = rng.nextU32();
  const params = new Float32Array(bits.buffer);
  params.set([-0, 2 ** -149, -(2 ** -149), 3 * 2 ** -140, 3.4028234663852886e38, -1e38, Infinity, NaN]);
  return params;
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}


/** A fresh, valid header for the tiny model, to break one field at a time. */
function tinyHeader(): Record<string, any> {
  const header: Record<string, any> = {
    __metadata__: { format: 'gradpool', 'gradpool.version': '1', config: JSON.stringify(TINY) },
  };
  let begin = 0;
  for (const [name, shape, values] of TINY_TENSORS) {
    header[name] = { dtype: 'F32', shape, data_offsets: [begin, begin + 4 * values.length] };
    begin += 4 * values.length;
  }
  return header;
}

function tinyData(): Uint8Array {
  const data = new Uint8Array(4 * TINY_PARAMS.length);
  const view = new DataView(data.buffer);
  TINY_PARAMS.forEach((v, i) => view.setFloat32(4 * i, v, true));
  return data;
}

function decodeTiny(edit: (header: Record<string, any>) => void): () => Checkpoint {
  const header = tinyHeader();
  edit(header);
  const bytes = assemble(header, tinyData());
  return () => decodeCheckpoint(bytes, 'bad.safetensors');
}

async function tempFiles(): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.includes('.tmp-'));
}

describe('round trip', () => {
  it('decodes what it encodes to bit-identical params and the same config', () => {
    const config: ModelConfig = { layers: [5, 4, 3], activation: 'tanh', loss: 'bce-with-logits' };
    const params = randomParams(5 * 4 + 4 + 4 * 3 + 3, 1);
    const ckpt = decodeCheckpoint(encodeCheckpoint(config, params), 'rt.safetensors');
    expect(ckpt.config).toEqual(config);
    expect(bytesOf(ckpt.params).equals(bytesOf(params))).toBe(true);
  });

  it('saves and loads through a file, keeping extra metadata', async () => {
    const path = join(dir, 'model.safetensors');
    await saveCheckpoint(path, TINY, TINY_PARAMS, { step: '120', note: 'héllo' });
    const ckpt = await loadCheckpoint(path);
    expect(bytesOf(ckpt.params).equals(bytesOf(TINY_PARAMS))).toBe(true);
    expect(ckpt.metadata).toMatchObject({ step: '120', note: 'héllo', format: 'gradpool', 'gradpool.version': '1' });
  });

  it('encodes params that sit at an offset inside a larger SharedArrayBuffer', () => {
    const shared = new Float32Array(new SharedArrayBuffer(4 * (TINY_PARAMS.length + 3)));
    shared.set(TINY_PARAMS, 3);
    const ckpt = decodeCheckpoint(encodeCheckpoint(TINY, shared.subarray(3)), 'sab.safetensors');
    expect(Array.from(ckpt.params)).toEqual(Array.from(TINY_PARAMS));
  });

  it('refuses extra metadata that would overwrite the config', () => {
    expect(() => encodeCheckpoint(TINY, TINY_PARAMS, { config: '{}' })).toThrow(/reserved key 'config'/);
  });
});

describe('safetensors byte format', () => {
  it('decodes a file written by an independent Python writer that lists tensors out of order', async () => {
    const ckpt = decodeCheckpoint(await readFile(FIXTURE), 'tiny.safetensors');
    expect(ckpt.config).toEqual(TINY);
    // The literal values of scripts/reference/make_safetensors_fixture.py, in layout order.
    expect(Array.from(ckpt.params)).toEqual([
      0.5, -1.25, 3.0, -0.75, 2.0, 0.125, // layers.0.weight (2, 3)
      0.25, -0.5, // layers.0.bias (2)
      1.5, -2.0, 0.0625, 4.0, // layers.2.weight (2, 2)
      -3.5, 1.0, // layers.2.bias (2)
    ]);
    expect(ckpt.metadata.written_by).toBe('scripts/reference/make_safetensors_fixture.py');
  });

  it('keeps a committed Python fixture identical to what its script writes', async () => {
    const out = join(dir, 'tiny.safetensors');
    const run = spawnSync(PYTHON, [FIXTURE_SCRIPT, out], { encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(Buffer.compare(await readFile(out), await readFile(FIXTURE))).toBe(0);
  });

  it('writes a header a hand-written spec reader accepts: space-padded to 8, contiguous F32 tensors in order', () => {
    const config: ModelConfig = { layers: [5, 4, 3], activation: 'sigmoid', loss: 'cross-entropy' };
    const params = randomParams(39, 2);
    const bytes = encodeCheckpoint(config, params, { step: '12' });
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const N = Number(view.getBigUint64(0, true));
    expect((8 + N) % 8).toBe(0);
    const text = Buffer.from(bytes.subarray(8, 8 + N)).toString('utf8');
    const json = text.trimEnd();
    expect(text.slice(json.length)).toMatch(/^ {0,7}$/);

    const header = JSON.parse(json);
    const { config: configJson, ...rest } = header.__metadata__;
    expect(JSON.parse(configJson)).toEqual(config);
    // gradpool.sha256: the SHA-256 of every byte after the header (the data section checked below).
    const sha256 = createHash('sha256').update(bytes.subarray(8 + N)).digest('hex');
    const { 'gradpool.header-sha256': headerSha, ...others } = rest;
    expect(others).toEqual({ format: 'gradpool', 'gradpool.version': '1', 'gradpool.sha256': sha256, step: '12' });
    // gradpool.header-sha256: the SHA-256 of the JSON of [every other metadata entry, [name, dtype, shape,
    // data_offsets] of every tensor], each sorted by key, as docs/data.md specifies it.
    const sorted = (o: Record<string, unknown>): [string, unknown][] => Object.keys(o).sort().map((k) => [k, o[k]]);
    const tensorIndex = sorted(header).filter(([k]) => k !== '__metadata__')
      .map(([k, e]) => [k, (e as { dtype: string }).dtype, (e as { shape: number[] }).shape, (e as { data_offsets: number[] }).data_offsets]);
    const metadataEntries = sorted(header.__metadata__).filter(([k]) => k !== 'gradpool.header-sha256');
    expect(headerSha).toBe(createHash('sha256').update(JSON.stringify([metadataEntries, tensorIndex])).digest('hex'));
    const expectedShapes = [
      ['layers.0.weight', [4, 5]],
      ['layers.0.bias', [4]],
      ['layers.2.weight', [3, 4]],
      ['layers.2.bias', [3]],
    ];
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    expect(names.map((name) => [name, header[name].shape])).toEqual(expectedShapes);

    const paramBits = new Uint32Array(params.buffer);
    let end = 0;
    let k = 0;
    for (const name of names) {
      const { dtype, shape, data_offsets } = header[name];
      const bytesNeeded = 4 * shape.reduce((p: number, n: number) => p * n, 1);
      expect(dtype).toBe('F32');
      expect(data_offsets).toEqual([end, end + bytesNeeded]);
      for (let off = data_offsets[0]; off < data_offsets[1]; off += 4) {
        expect(view.getUint32(8 + N + off, true)).toBe(paramBits[k++]);
      }
      end = data_offsets[1];
    }
    expect(bytes.length).toBe(8 + N + end);
  });

  it.skipIf(skipWithoutTorch)(
    'loads into torch nn.Sequential with strict=True and gives the hand-computed forward (needs Debian python3-torch)',
    async () => {
      requireTorch();
      const path = join(dir, 'tiny.safetensors');
      await saveCheckpoint(path, TINY, TINY_PARAMS);
      const script = [
        'import json, struct, sys, torch',
        'from torch import nn',
        'raw = open(sys.argv[1], "rb").read()',
        'n = struct.unpack("<Q", raw[:8])[0]',
        'header = json.loads(raw[8:8 + n])',
        'data = bytearray(raw[8 + n:])',
        'state = {}',
        'for k, v in header.items():',
        '    if k != "__metadata__":',
        '        b, e = v["data_offsets"]',
        '        t = torch.frombuffer(data[b:e], dtype=torch.float32).reshape(v["shape"])',
        '        state[k.removeprefix("layers.")] = t',
        'net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))',
        'net.load_state_dict(state, strict=True)',
        'x = torch.tensor([[1.0, -2.0, 0.5], [0.25, 0.75, -1.5]])',
        'with torch.no_grad():',
        '    print(json.dumps(net(x).tolist()))',
      ].join('\n');
      const run = spawnSync(PYTHON, ['-c', script, path], { encoding: 'utf8', timeout: 60_000 });
      expect(run.status, run.stderr).toBe(0);
      const out: number[][] = JSON.parse(run.stdout);
      // By hand. Row 1: h = relu([0.5 + 2.5 + 1.5 + 0.25, -0.75 - 4 + 0.0625 - 0.5]) = [4.75, 0],
      // y = [1.5 * 4.75 - 3.5, 0.0625 * 4.75 + 1]. Row 2: h = relu([0.125 - 0.9375 - 4.5 + 0.25,
      // -0.1875 + 1.5 - 0.1875 - 0.5]) = [0, 0.625], y = [-2 * 0.625 - 3.5, 4 * 0.625 + 1].
      const expected = [[3.625, 1.296875], [-4.75, 3.5]];
      const maxDiff = Math.max(...out.flatMap((row, i) => row.map((v, j) => Math.abs(v - expected[i][j]))));
      expect(out.map((row) => row.length)).toEqual([2, 2]);
      expect(maxDiff).toBeLessThanOrEqual(1e-6);
    },
  );
});

describe('atomic save', () => {
  it('leaves the previous checkpoint byte-identical when a save fails, with no temp files left', async () => {
    const path = join(dir, 'model.safetensors');
    await saveCheckpoint(path, TINY, TINY_PARAMS);
    const before = await readFile(path);
    await expect(saveCheckpoint(path, TINY, new Float32Array(13))).rejects.toThrow(/params has 13 floats/);
    expect(Buffer.compare(await readFile(path), before)).toBe(0);
    expect(await tempFiles()).toEqual([]);
  });

  it('removes its temp file when the final rename fails', async () => {
    // A directory at the target path makes rename() fail after the temp file was written and synced.
    const path = join(dir, 'model.safetensors');
    await mkdir(path);
    await writeFile(join(path, 'keep'), 'x');
    await expect(saveCheckpoint(path, TINY, TINY_PARAMS)).rejects.toThrow();
    expect(await tempFiles()).toEqual([]);
    expect(await readFile(join(path, 'keep'), 'utf8')).toBe('x');
  });

  it('throws for a missing directory and creates nothing', async () => {
    const path = join(dir, 'missing', 'model.safetensors');
    await expect(saveCheckpoint(path, TINY, TINY_PARAMS)).rejects.toThrow(/ENOENT/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('writes a temp file in the same directory, fsyncs it, renames it over the target, then fsyncs the directory', async () => {
    const path = join(dir, 'model.safetensors');
    await saveCheckpoint(path, TINY, TINY_PARAMS);
    expect(fsFaults.calls).toEqual([
      'open temp', 'write temp', 'sync temp', 'close temp', 'rename temp target', 'open dir', 'sync dir', 'close dir',
    ]);
  });

  it.each([
    ['the temp file cannot be created (a directory that is not writable)', 'open', /EACCES: injected open failure/],
    ['the disk fills half-way through the write', 'write', /ENOSPC: injected write failure/],
    ['fsync fails', 'sync', /EIO: injected sync failure/],
    ['close fails', 'close', /EIO: injected close failure/],
    ['the rename fails', 'rename', /EXDEV: injected rename failure/],
  ] as const)('keeps the previous checkpoint byte-identical, and no temp file, when %s', async (_, step, error) => {
    const path = join(dir, 'model.safetensors');
    await saveCheckpoint(path, TINY, TINY_PARAMS, { epoch: '1' });
    const before = await readFile(path);
    fsFaults.fail = step;
    const next = TINY_PARAMS.map((v) => v + 1);
    await expect(saveCheckpoint(path, TINY, next, { epoch: '2' })).rejects.toThrow(error);
    fsFaults.fail = null;
    expect(Buffer.compare(await readFile(path), before)).toBe(0);
    expect(await tempFiles()).toEqual([]);
    const kept = await loadCheckpoint(path);
    expect(Array.from(kept.params)).toEqual(Array.from(TINY_PARAMS));
    expect(kept.metadata.epoch).toBe('1');
  });

  it('names the checkpoint, not its temp file, when the disk fills', async () => {
    const path = join(dir, 'model.safetensors');
    fsFaults.fail = 'write';
    const err = await saveCheckpoint(path, TINY, TINY_PARAMS).then(() => null, (e: unknown) => e as FileError);
    fsFaults.fail = null;
    expect(err).toBeInstanceOf(FileError);
    expect(err?.message).toBe(`${path}: cannot write the file (ENOSPC: injected write failure)\nhint: the disk is full: free some space, or write to another disk`);
    expect(err?.path).toBe(path);
    expect(err?.code).toBe('ENOSPC');
  });

  it('removes the temp files of the same target left by a killed process at the next save, and no others', async () => {
    const path = join(dir, 'model.safetensors');
    const gone = spawnSync(process.execPath, ['-e', '0']).pid as number; // a process that has exited
    const stale = [`model.safetensors.tmp-${gone}-0123456789ab`, `model.safetensors.tmp-${gone}-ba9876543210`];
    const kept = [
      `model.safetensors.tmp-${process.ppid}-0123456789ab`, // a live process may be writing it
      `other.safetensors.tmp-${gone}-0123456789ab`, // another target's
      `model.safetensors.tmp-${gone}-notmine`, // not a temp file of this writer
    ];
    for (const name of [...stale, ...kept]) await writeFile(join(dir, name), 'half a checkpoint');
    await saveCheckpoint(path, TINY, TINY_PARAMS);
    expect((await readdir(dir)).sort()).toEqual(['model.safetensors', ...kept].sort());
  });

  it('replaces a larger checkpoint completely with a smaller one', async () => {
    const path = join(dir, 'model.safetensors');
    await saveCheckpoint(path, { ...TINY, layers: [30, 20, 2] }, new Float32Array(30 * 20 + 20 + 2 * 20 + 2));
    await saveCheckpoint(path, TINY, TINY_PARAMS);
    expect(Buffer.compare(await readFile(path), Buffer.from(encodeCheckpoint(TINY, TINY_PARAMS)))).toBe(0);
  });
});

describe('checksum', () => {
  it('records the SHA-256 of the data section, as Python hashlib computes it for the tiny model', () => {
    // hashlib.sha256(b''.join(struct.pack('<f', v) for v in TINY values)).hexdigest()
    const ckpt = decodeCheckpoint(encodeCheckpoint(TINY, TINY_PARAMS), 'tiny.safetensors');
    expect(ckpt.metadata['gradpool.sha256']).toBe('ea733e05d98d7719c9e3622a6b07719883d566c020f64330ebbdb92e8948c4e7');
  });

  it('refuses a file whose data no longer matches its checksum, naming the file and the way out', () => {
    const bytes = encodeCheckpoint(TINY, TINY_PARAMS);
    bytes[bytes.length - 3] ^= 0x01; // one bit of layers.2.bias[1]
    expect(() => decodeCheckpoint(bytes, 'edited.safetensors')).toThrow(
      /^edited\.safetensors: the tensor data does not match its checksum \(metadata "gradpool\.sha256" ea733e05.*, but the 56 data bytes hash to [0-9a-f]{64}\): the file is torn or was edited\nhint: load the previous checkpoint instead/,
    );
  });

  it('refuses a checksum that is not 64 lowercase hex digits', () => {
    expect(decodeTiny((h) => (h.__metadata__['gradpool.sha256'] = 'abc'))).toThrow(
      /^bad\.safetensors: metadata "gradpool\.sha256" is 'abc'; expected the SHA-256 of the tensor data as 64 lowercase hex digits/,
    );
  });

  it('loads a file without a checksum, as PyTorch and the safetensors tools write them', () => {
    // tinyHeader() has no gradpool.sha256, like test/fixtures/tiny.safetensors
    const ckpt = decodeTiny(() => undefined)();
    expect(Array.from(ckpt.params)).toEqual(Array.from(TINY_PARAMS));
  });

  /** A checkpoint as the Trainer writes one: options, state and the momentum tensor beside the model. */
  const trained = (): Uint8Array => encodeCheckpoint(TINY, TINY_PARAMS, {
    'gradpool.options': '{"lr":0.05,"momentum":0.9,"batchSize":64,"seed":0}',
    'gradpool.state': '{"epoch":3,"step":375,"batch":0,"schedulerSteps":3,"hasMomentumBuffer":true}',
    'gradpool.preprocessing': '{"mode":"standardize","mean":[0.5,1.5,2.5],"std":[1,2,3]}',
  }, { 'optimizer.momentum_buffer': TINY_PARAMS.map((v) => v / 2) });

  it('refuses a file whose options were edited in one byte (lr 0.05 to 9.05), like a torn one', () => {
    const bytes = trained();
    const at = Buffer.from(bytes).indexOf('"lr\\":0.05');
    expect(at).toBeGreaterThan(0);
    bytes[at + '"lr\\":'.length] = '9'.charCodeAt(0);
    expect(() => decodeCheckpoint(bytes, 'edited.safetensors')).toThrow(
      /^edited\.safetensors: the header does not match its checksum \(metadata "gradpool\.header-sha256" [0-9a-f]{64}, but the metadata and tensor entries hash to [0-9a-f]{64}\): its options, state or tensor index were edited or damaged\nhint: load the previous checkpoint instead/,
    );
  });

  it('covers every metadata entry, one it does not know included (gradpool.preprocessing)', () => {
    const bytes = trained();
    const at = Buffer.from(bytes).indexOf('[0.5,1.5,2.5]');
    bytes[at + 1] = '1'.charCodeAt(0); // mean[0] 0.5 -> 1.5
    expect(() => decodeCheckpoint(bytes, 'edited.safetensors')).toThrow(/the header does not match its checksum/);
  });

  it('refuses or decodes unchanged each of 2,000 random single-bit flips of the header', () => {
    const good = trained();
    const N = Number(new DataView(good.buffer).getBigUint64(0, true));
    const want = decodeCheckpoint(good, 'good.safetensors');
    const rng = new Rng(14);
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const bytes = good.slice();
      const bit = rng.nextInt(8 * (8 + N));
      bytes[bit >> 3] ^= 1 << (bit & 7);
      let got: Checkpoint;
      try {
        got = decodeCheckpoint(bytes, 'flipped.safetensors');
      } catch (err) {
        expect(err, `bit ${bit}`).toBeInstanceOf(CheckpointError);
        refused++;
        continue;
      }
      // Decoded: then everything the file says is as written (a flip in the header checksum's own key
      // name leaves an unknown key and an unchecked, but unchanged, header).
      expect(got.config, `bit ${bit}`).toEqual(want.config);
      expect(bytesOf(got.params).equals(bytesOf(want.params)), `bit ${bit}`).toBe(true);
      expect(Object.keys(got.tensors), `bit ${bit}`).toEqual(Object.keys(want.tensors));
      for (const [key, value] of Object.entries(want.metadata)) {
        if (key !== 'gradpool.header-sha256') expect(got.metadata[key], `bit ${bit}: metadata ${key}`).toBe(value);
      }
    }
    expect(refused).toBeGreaterThan(1900);
  });

  it('loads a file written before the header checksum (no gradpool.header-sha256), as this version wrote them', () => {
    const good = trained();
    const N = Number(new DataView(good.buffer).getBigUint64(0, true));
    const header = JSON.parse(Buffer.from(good.subarray(8, 8 + N)).toString('utf8'));
    delete header.__metadata__['gradpool.header-sha256'];
    const ckpt = decodeCheckpoint(assemble(header, good.subarray(8 + N)), 'old.safetensors');
    expect(ckpt.metadata['gradpool.options']).toBe('{"lr":0.05,"momentum":0.9,"batchSize":64,"seed":0}');
    expect(bytesOf(ckpt.params).equals(bytesOf(TINY_PARAMS))).toBe(true);
  });

  it('refuses extra metadata that would set the checksum', () => {
    expect(() => encodeCheckpoint(TINY, TINY_PARAMS, { 'gradpool.sha256': '0'.repeat(64) })).toThrow(
      /reserved key 'gradpool\.sha256'/,
    );
  });
});

describe('bad files', () => {
  it('rejects a file shorter than 8 bytes', () => {
    expect(() => decodeCheckpoint(new Uint8Array(5), 'bad.safetensors')).toThrow(
      /^bad\.safetensors: file is 5 bytes; a safetensors file starts with an 8-byte header length\nhint: /,
    );
  });

  it('rejects a header length that runs past the end of the file', () => {
    const bytes = new Uint8Array(28);
    new DataView(bytes.buffer).setBigUint64(0, 1000n, true);
    expect(() => decodeCheckpoint(bytes, 'bad.safetensors')).toThrow(
      /^bad\.safetensors: header length is 1000 bytes but only 20 bytes follow the 8-byte length prefix/,
    );
  });

  it('rejects a header length over 100 MB before decoding it', () => {
    const N = 100 * 1024 * 1024 + 1;
    const bytes = new Uint8Array(8 + N);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(N), true);
    expect(() => decodeCheckpoint(bytes, 'bad.safetensors')).toThrow(
      /header length is 104857601 bytes; expected at most 104857600/,
    );
  });

  it('rejects a header that is not valid UTF-8', () => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setBigUint64(0, 8n, true);
    bytes.set([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d, 0x20], 8); // {"\xff":1} and a space; 0xff is never UTF-8
    expect(() => decodeCheckpoint(bytes, 'bad.safetensors')).toThrow(/^bad\.safetensors: header is not valid UTF-8/);
  });

  it('rejects a header that is not JSON', () => {
    expect(() => decodeCheckpoint(assemble('{"layers.0.weight": ', tinyData()), 'bad.safetensors')).toThrow(
      /^bad\.safetensors: header is not valid JSON/,
    );
  });

  it('rejects a float16 tensor, naming it and its dtype', () => {
    expect(decodeTiny((h) => (h['layers.0.weight'].dtype = 'F16'))).toThrow(
      /^bad\.safetensors: only float32 \(F32\) tensors are supported; tensor 'layers\.0\.weight' has dtype F16\n/,
    );
  });

  it('rejects a shape with a negative dimension', () => {
    expect(decodeTiny((h) => (h['layers.0.bias'].shape = [-2]))).toThrow(
      /tensor 'layers\.0\.bias' has shape \[-2\]; expected an array of non-negative integers/,
    );
  });

  it('rejects data_offsets past the end of the data section', () => {
    expect(decodeTiny((h) => (h['layers.2.bias'].data_offsets = [48, 60]))).toThrow(
      /tensor 'layers\.2\.bias' has data_offsets \[48,60\]; expected \[begin, end\] with 0 <= begin <= end <= 56/,
    );
  });

  it('rejects a tensor whose byte length does not match its shape', () => {
    expect(decodeTiny((h) => (h['layers.0.bias'].shape = [3]))).toThrow(
      /tensor 'layers\.0\.bias' has 8 bytes of data but F32 shape \(3\) needs 12/,
    );
  });

  it('rejects tensors whose data overlaps', () => {
    expect(decodeTiny((h) => (h['layers.0.bias'].data_offsets = [16, 24]))).toThrow(
      /tensors 'layers\.0\.weight' and 'layers\.0\.bias' overlap/,
    );
  });

  it('rejects a file missing a tensor its config needs', () => {
    expect(decodeTiny((h) => delete h['layers.2.bias'])).toThrow(
      "bad.safetensors: has no tensor 'layers.2.bias'; " +
        'the model config in this file (layers [3,2,2]) needs it with shape (2)',
    );
  });

  it('rejects a tensor whose shape disagrees with the config stored beside it', () => {
    expect(decodeTiny((h) => (h['layers.2.weight'].shape = [1, 4]))).toThrow(
      /tensor 'layers\.2\.weight' has shape \(1, 4\); the model config in this file needs \(2, 2\)$/,
    );
  });

  it('rejects a file without config metadata', () => {
    expect(decodeTiny((h) => delete h.__metadata__.config)).toThrow(
      /^bad\.safetensors: metadata has no "config" entry/,
    );
  });

  it('rejects a config with an unknown activation', () => {
    const config = JSON.stringify({ ...TINY, activation: 'gelu' });
    expect(decodeTiny((h) => (h.__metadata__.config = config))).toThrow(
      /metadata "config": activation must be one of relu, tanh, sigmoid, found "gelu"/,
    );
  });

  it('rejects a metadata value that is not a string', () => {
    expect(decodeTiny((h) => (h.__metadata__.step = 12))).toThrow(
      /__metadata__ entry 'step' is a number \(12\); safetensors metadata values must be strings/,
    );
  });

  it('ignores unknown metadata keys and tensors the config does not need', () => {
    const header = tinyHeader();
    header.__metadata__.optimizer = 'sgd';
    header['optimizer.step'] = { dtype: 'F32', shape: [1], data_offsets: [56, 60] };
    const data = new Uint8Array(60);
    data.set(tinyData());
    const ckpt = decodeCheckpoint(assemble(header, data), 'extra.safetensors');
    expect(Array.from(ckpt.params)).toEqual(Array.from(TINY_PARAMS));
  });

  it('says "no such file" for a missing checkpoint, naming it', async () => {
    const path = join(dir, 'nope.safetensors');
    await expect(loadCheckpoint(path)).rejects.toThrow(`${path}: no such file`);
  });

  it('throws CheckpointError carrying the path and hint', () => {
    let caught: unknown;
    try {
      decodeCheckpoint(new Uint8Array(3), 'x.safetensors');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CheckpointError);
    expect((caught as CheckpointError).path).toBe('x.safetensors');
    expect((caught as CheckpointError).hint).toBe('the file is truncated or is not a safetensors checkpoint');
  });
});

describe('assignParameters', () => {
  const ckptFor = (layers: number[], params: Float32Array): Checkpoint => ({
    config: { ...TINY, layers },
    params,
    metadata: {},
    tensors: {},
  });

  it('copies a checkpoint with matching shapes into the parameter buffer', () => {
    const params = new Float32Array(14);
    assignParameters(params, [3, 2, 2], ckptFor([3, 2, 2], TINY_PARAMS), 'tiny.safetensors');
    expect(Array.from(params)).toEqual(Array.from(TINY_PARAMS));
  });

  it('refuses a checkpoint whose shapes differ, naming the tensor, both shapes and the layers to use', () => {
    const ckpt = ckptFor([784, 128, 10], new Float32Array(784 * 128 + 128 + 128 * 10 + 10));
    const params = new Float32Array(784 * 64 + 64 + 64 * 10 + 10);
    expect(() => assignParameters(params, [784, 64, 10], ckpt, 'model.safetensors')).toThrow(
      "model.safetensors: tensor 'layers.0.weight' has shape (128, 784) but this model needs (64, 784)\n" +
        "hint: build the Trainer with layers [784,128,10] (the checkpoint's), or start from fresh weights",
    );
  });

  it('refuses a model with a layer the checkpoint lacks, naming the missing tensor', () => {
    const params = new Float32Array(14 + 6);
    expect(() => assignParameters(params, [3, 2, 2, 2], ckptFor([3, 2, 2], TINY_PARAMS), 'tiny.safetensors')).toThrow(
      /^tiny\.safetensors: has no tensor 'layers\.4\.weight'; this model needs it with shape \(2, 2\)\n/,
    );
  });

  it('leaves the parameter buffer untouched when it refuses', () => {
    const params = new Float32Array(3 * 2 + 2 + 2 * 3 + 3).fill(7);
    expect(() => assignParameters(params, [3, 2, 3], ckptFor([3, 2, 2], TINY_PARAMS), 'tiny.safetensors')).toThrow(
      /tensor 'layers\.2\.weight' has shape \(2, 2\) but this model needs \(3, 2\)/,
    );
    expect(params.every((v) => v === 7)).toBe(true);
  });
});

describe('extra tensors', () => {
  it('round-trips extra float32 tensors after the model, which a layers-only reader still finds in place', () => {
    const params = Float32Array.from({ length: 14 }, (_, i) => i / 7);
    const momentum = Float32Array.from({ length: 14 }, (_, i) => -i);
    const bytes = encodeCheckpoint(TINY, params, {}, { 'optimizer.momentum_buffer': momentum });
    const ckpt = decodeCheckpoint(bytes, 'x.safetensors');
    expect(Array.from(ckpt.params)).toEqual(Array.from(params));
    expect(Array.from(ckpt.tensors['optimizer.momentum_buffer'])).toEqual(Array.from(momentum));
    // read by hand from the spec: the extra tensor's offsets follow the model's data
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    expect(header['optimizer.momentum_buffer']).toEqual({ dtype: 'F32', shape: [14], data_offsets: [56, 112] });
  });

  it("refuses an extra tensor named like the model's", () => {
    expect(() => encodeCheckpoint(TINY, new Float32Array(14), {}, { 'layers.9.weight': new Float32Array(1) })).toThrow(
      "extra tensor name 'layers.9.weight' is reserved",
    );
  });
});
