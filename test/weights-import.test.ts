// Weights in from files gradpool did not write: safetensors files with no gradpool metadata, their
// tensors named as PyTorch's nn.Sequential names them, as gradpool does, or anyhow in file order; F64,
// F16 and BF16 converted to float32; files that fit in no way refused with what they hold. The PyTorch
// files are written by Debian's python3-torch with a stand-in save_file (the Python safetensors package
// cannot be installed here) that orders tensors as the reference writer does; the dtype tests use bit
// patterns worked out by hand from the IEEE formats.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, Trainer, loadCheckpoint } from '../src/main/index.js';
import { assemble } from './files.js';
import { maxAbsDiff, runCli, trainers } from './helpers.js';
import { needsTorch, PYTHON, requireTorch, skipWithoutTorch } from './torch.js';

const python = PYTHON;
needsTorch('test/weights-import.test.ts');
const dir = mkdtempSync(join(tmpdir(), 'gradpool-import-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { make, keep } = trainers();

/** A safetensors file of named tensors, each {dtype, shape, bytes}, in the order given, no metadata. */
function file(name: string, tensors: [string, string, number[], Uint8Array][], metadata?: Record<string, string>): string {
  const header: Record<string, unknown> = metadata === undefined ? {} : { __metadata__: metadata };
  let at = 0;
  for (const [n, dtype, shape, bytes] of tensors) {
    header[n] = { dtype, shape, data_offsets: [at, at + bytes.length] };
    at += bytes.length;
  }
  const data = new Uint8Array(at);
  at = 0;
  for (const [, , , bytes] of tensors) {
    data.set(bytes, at);
    at += bytes.length;
  }
  const path = join(dir, name);
  writeFileSync(path, assemble(header, data));
  return path;
}

const f32 = (...v: number[]): Uint8Array => new Uint8Array(new Float32Array(v).buffer);
const u16 = (...v: number[]): Uint8Array => new Uint8Array(new Uint16Array(v).buffer);
const f64 = (...v: number[]): Uint8Array => new Uint8Array(new Float64Array(v).buffer);
const range = (n: number, from: number): number[] => Array.from({ length: n }, (_, i) => from + i / 8);

// A 3-2-2 model: layers.0.weight (2, 3), layers.0.bias (2), layers.2.weight (2, 2), layers.2.bias (2).
const W0 = range(6, 1);
const B0 = range(2, 2);
const W2 = range(4, 3);
const B2 = range(2, 4);
const ALL = [...W0, ...B0, ...W2, ...B2];
const tiny = (): Trainer => make({ layers: [3, 2, 2], workers: 1, seed: 1 });

describe('weights from a safetensors file without gradpool metadata', () => {
  it("loads nn.Sequential's state_dict names (0.weight, 0.bias, 2.weight, ...), in any order in the file", async () => {
    const path = file('seq.safetensors', [['0.bias', 'F32', [2], f32(...B0)], ['0.weight', 'F32', [2, 3], f32(...W0)],
      ['2.bias', 'F32', [2], f32(...B2)], ['2.weight', 'F32', [2, 2], f32(...W2)]]);
    const t = tiny();
    const r = await t.loadParameters(path);
    expect(Array.from(t.parameters)).toEqual(ALL);
    expect(r.matchedBy).toBe('sequential-names');
    expect(r.summary).toBe(`${path}: 4 tensors by their nn.Sequential state_dict names (0.weight -> layers.0.weight, 0.bias -> layers.0.bias, 2.weight -> layers.2.weight, 2.bias -> layers.2.bias)`);
  });

  it("loads gradpool's tensor names from a file that has no config", async () => {
    const path = file('names.safetensors', [['layers.0.weight', 'F32', [2, 3], f32(...W0)], ['layers.0.bias', 'F32', [2], f32(...B0)],
      ['layers.2.weight', 'F32', [2, 2], f32(...W2)], ['layers.2.bias', 'F32', [2], f32(...B2)], ['optimizer.momentum_buffer', 'F32', [1], f32(0)]]);
    const t = tiny();
    expect((await t.loadParameters(path)).matchedBy).toBe('gradpool-names');
    expect(Array.from(t.parameters)).toEqual(ALL);
  });

  it('loads other names by file order, biases before or after their weights (fc1.bias, fc1.weight, ...)', async () => {
    const sorted = file('fc.safetensors', [['fc1.bias', 'F32', [2], f32(...B0)], ['fc1.weight', 'F32', [2, 3], f32(...W0)],
      ['fc2.bias', 'F32', [2], f32(...B2)], ['fc2.weight', 'F32', [2, 2], f32(...W2)]]);
    const grouped = file('grouped.safetensors', [['W1', 'F32', [2, 3], f32(...W0)], ['W2', 'F32', [2, 2], f32(...W2)],
      ['b1', 'F32', [2], f32(...B0)], ['b2', 'F32', [2], f32(...B2)]]);
    for (const path of [sorted, grouped]) {
      const t = tiny();
      expect((await t.loadParameters(path)).matchedBy).toBe('file-order');
      expect(Array.from(t.parameters)).toEqual(ALL);
    }
  });

  it('falls back to file order when numbered names are not nn.Sequential indices (a ModuleList: 0, 1)', async () => {
    const path = file('list.safetensors', [['0.weight', 'F32', [2, 3], f32(...W0)], ['0.bias', 'F32', [2], f32(...B0)],
      ['1.weight', 'F32', [2, 2], f32(...W2)], ['1.bias', 'F32', [2], f32(...B2)]]);
    const t = tiny();
    expect((await t.loadParameters(path)).matchedBy).toBe('file-order');
    expect(Array.from(t.parameters)).toEqual(ALL);
  });

  it('converts F16, BF16 and F64 to float32 and says so: values worked out from the IEEE bit layouts', async () => {
    // F16: 1, -2, 2^-24 (smallest subnormal), 65504 (largest finite), -0, 0x3555 = 1.333251953125 / 4.
    // BF16: 1, -3.140625 (0xC049), 2^-133 (smallest subnormal). F64: 0.1 and 1/3, rounded to float32.
    const path = file('dtypes.safetensors', [
      ['0.weight', 'F16', [2, 3], u16(0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000, 0x3555)],
      ['0.bias', 'BF16', [2], u16(0x3f80, 0xc049)],
      ['2.weight', 'F64', [2, 2], f64(0.1, 1 / 3, -1e-50, 2)],
      ['2.bias', 'BF16', [2], u16(0x0001, 0x8000)],
    ]);
    const t = tiny();
    const r = await t.loadParameters(path);
    const want = [1, -2, 2 ** -24, 65504, -0, 0.333251953125, 1, -3.140625, Math.fround(0.1), Math.fround(1 / 3), -0, 2, 2 ** -133, -0];
    expect(Array.from(t.parameters)).toEqual(want);
    expect(Object.is(t.parameters[4], -0)).toBe(true);
    expect(r.converted).toEqual([{ name: '0.weight', dtype: 'F16' }, { name: '0.bias', dtype: 'BF16' }, { name: '2.weight', dtype: 'F64' }, { name: '2.bias', dtype: 'BF16' }]);
    expect(r.summary).toMatch(/; converted to float32: 0\.weight \(F16\), 0\.bias \(BF16\), 2\.weight \(F64\), 2\.bias \(BF16\)$/);
  });

  it('refuses an F64 value beyond the float32 range rather than loading an infinity', async () => {
    const path = file('big.safetensors', [['0.weight', 'F64', [2, 3], f64(0, 0, 0, 1e39, 0, 0)], ['0.bias', 'F32', [2], f32(...B0)],
      ['2.weight', 'F32', [2, 2], f32(...W2)], ['2.bias', 'F32', [2], f32(...B2)]]);
    await expect(tiny().loadParameters(path)).rejects.toThrow(`${path}: tensor '0.weight' (F64) holds 1e+39 at index 3, beyond the float32 range`);
  });

  it('refuses a file that fits in no way, listing what it holds and what the model needs, and keeps the parameters', async () => {
    const path = file('wide.safetensors', [['0.weight', 'F32', [4, 3], f32(...range(12, 0))], ['0.bias', 'F32', [4], f32(...range(4, 0))],
      ['2.weight', 'F32', [2, 4], f32(...range(8, 0))], ['2.bias', 'F32', [2], f32(...B2)]]);
    const t = tiny();
    const before = t.parameters.slice();
    const err = await t.loadParameters(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toBe(
      `${path}: does not fit this model: tensor '0.weight' has shape (4, 3); the model needs (2, 3)\n` +
      "  the file holds 4 tensors: '0.weight' (4, 3) F32, '0.bias' (4) F32, '2.weight' (2, 4) F32, '2.bias' (2) F32\n" +
      '  the model (layers [3,2,2]) needs layers.0.weight (2, 3), layers.0.bias (2), layers.2.weight (2, 2), layers.2.bias (2)\n' +
      "hint: name the tensors as nn.Sequential's state_dict does (0.weight, 0.bias, 2.weight, ...) or as gradpool does (layers.0.weight, ...), " +
      "or store each layer's weight (out, in) and bias (out) in order; or give the model the file's widths",
    );
    expect(Array.from(t.parameters)).toEqual(Array.from(before));
  });

  it('refuses a layer more than the model has, and a norm layer between the linears', async () => {
    const base: [string, string, number[], Uint8Array][] = [['0.weight', 'F32', [2, 3], f32(...W0)], ['0.bias', 'F32', [2], f32(...B0)],
      ['2.weight', 'F32', [2, 2], f32(...W2)], ['2.bias', 'F32', [2], f32(...B2)]];
    const deeper = file('deeper.safetensors', [...base, ['4.weight', 'F32', [2, 2], f32(...W2)], ['4.bias', 'F32', [2], f32(...B2)]]);
    await expect(tiny().loadParameters(deeper)).rejects.toThrow(/does not fit this model: the model has no place for its tensor '4\.weight' \(2, 2\)\n/);
    const norm = file('norm.safetensors', [...base, ['1.running_mean', 'F32', [2], f32(0, 0)]]);
    await expect(tiny().loadParameters(norm)).rejects.toThrow(/does not fit this model: the model has no place for its tensor '1\.running_mean' \(2\)\n/);
    const counted = file('counted.safetensors', [...base.map(([n, ...r]) => [`net.${n}`, ...r] as typeof base[0]), ['steps', 'I64', [], new Uint8Array(8)]]);
    await expect(tiny().loadParameters(counted)).rejects.toThrow(/does not fit this model: tensor 'steps' has shape \(\), neither a weight \(out, in\) nor a bias \(out\)\n/);
  });

  it('refuses a named tensor of an integer dtype', async () => {
    const path = file('int.safetensors', [['0.weight', 'I32', [2, 3], new Uint8Array(24)], ['0.bias', 'F32', [2], f32(...B0)],
      ['2.weight', 'F32', [2, 2], f32(...W2)], ['2.bias', 'F32', [2], f32(...B2)]]);
    await expect(tiny().loadParameters(path)).rejects.toThrow(`${path}: tensor '0.weight' has dtype I32; a model's weights are floating point (F32, F64, F16, BF16)`);
  });

  it('Trainer.load takes the model for such a file, and refuses without it, saying what the file holds', async () => {
    const path = file('load.safetensors', [['0.weight', 'F32', [2, 3], f32(...W0)], ['0.bias', 'F32', [2], f32(...B0)],
      ['2.weight', 'F32', [2, 2], f32(...W2)], ['2.bias', 'F32', [2], f32(...B2)]]);
    const t = keep(await Trainer.load(path, { layers: [3, 2, 2], activation: 'tanh', workers: 1 }));
    expect(Array.from(t.parameters)).toEqual(ALL);
    expect(t.config).toEqual({ layers: [3, 2, 2], activation: 'tanh', loss: 'cross-entropy' });
    expect(t.progress).toEqual({ epoch: 0, step: 0, batch: 0 });
    expect(t.importedWeights?.matchedBy).toBe('sequential-names');
    await expect(Trainer.load(path, { workers: 1 })).rejects.toThrow(
      `${path}: records no gradpool model (its metadata has no "config"), so the model must be given; it holds 4 tensors: '0.weight' (2, 3) F32,`,
    );
  });

  it('Trainer.load refuses model options that differ from a checkpoint\'s own', async () => {
    const path = join(dir, 'own.safetensors');
    await tiny().save(path);
    await expect(Trainer.load(path, { layers: [3, 4, 2], workers: 1 })).rejects.toThrow(
      `${path}: holds a model with layers [3,2,2]; options.layers is [3,4,2]`,
    );
    const same = keep(await Trainer.load(path, { layers: [3, 2, 2], activation: 'relu', workers: 1 }));
    expect(same.importedWeights?.matchedBy).toBe('checkpoint');
  });
});

const WRITE_TORCH = `
import json, struct, sys, torch
def save_file(tensors, path):
    # As the safetensors reference writer: tensors ordered by dtype size (largest first), then by name;
    # the header space-padded so the data starts 8-byte aligned; no metadata.
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    names = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16"}
    header, blobs, at = {}, [], 0
    for name, t in items:
        b = bytes(t.contiguous().view(torch.uint8).numpy())
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b); at += len(b)
    text = json.dumps(header)
    text += " " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text))); f.write(text.encode()); f.write(b"".join(blobs))
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
x = torch.rand(20, 784)
out = {}
for dtype, tag in [(torch.float32, "f32"), (torch.float64, "f64"), (torch.float16, "f16"), (torch.bfloat16, "bf16")]:
    sd = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
    save_file(sd, sys.argv[1] + "/torch-" + tag + ".safetensors")
    m = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    m.load_state_dict({k: v.float() for k, v in sd.items()})
    out[tag] = torch.softmax(m(x), dim=1).detach().reshape(-1).tolist()
x.numpy().tofile(sys.argv[1] + "/x.bin")
print(json.dumps(out))
`;

describe.skipIf(skipWithoutTorch)('a state_dict saved from PyTorch (needs Debian python3-torch)', () => {
  beforeAll(requireTorch);
  const run = (): Record<string, number[]> => {
    const r = spawnSync(python, ['-c', WRITE_TORCH, dir], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as Record<string, number[]>;
  };
  let torchOut: Record<string, number[]> | null = null;
  const expected = (): Record<string, number[]> => (torchOut ??= run());

  it("predicts what PyTorch predicts with it, from F32, F64, F16 and BF16 files (--init's 784,16,10 case)", async () => {
    const want = expected();
    const x = new Float32Array(readFileSync(join(dir, 'x.bin')).buffer.slice(0));
    const t = make({ layers: [784, 16, 10], workers: 1 });
    for (const tag of ['f32', 'f64', 'f16', 'bf16']) {
      const r = await t.loadParameters(join(dir, `torch-${tag}.safetensors`));
      expect(r.matchedBy).toBe('sequential-names');
      expect(r.converted.length).toBe(tag === 'f32' ? 0 : 4);
      const diff = maxAbsDiff(await t.predict(x), want[tag]);
      expect(diff, `${tag}: max |diff| ${diff}`).toBeLessThan(1e-5);
    }
  });

  it('starts the training script from it with --init, saying how it read it', async () => {
    expected();
    const init = join(dir, 'torch-bf16.safetensors');
    const out = join(dir, 'from-torch.safetensors');
    const r = await runCli(['--layers', '784,16,10', '--epochs', '1', '--lr', '0', '--workers', '1', '--init', init, '--out', out]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`init: ${init}: 4 tensors by their nn.Sequential state_dict names (0.weight -> layers.0.weight, `);
    expect(r.out).toContain('; converted to float32: 0.weight (BF16), 0.bias (BF16), 2.weight (BF16), 2.bias (BF16)');
    // lr 0: the saved model is the file's, converted
    const t = make({ layers: [784, 16, 10], workers: 1 });
    await t.loadParameters(init);
    expect(Array.from((await loadCheckpoint(out)).params)).toEqual(Array.from(t.parameters));
  });
});
