// A model trained by gradpool, taken to PyTorch with the README's own Python lines (run verbatim), gives
// the same predictions as gradpool. Needs Debian's python3-torch (.ci/run installs it); the Python
// `safetensors` package cannot be installed on these machines, so a stand-in module with the same
// load_file, written here from the format's specification, is put on PYTHONPATH.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, loadMnist } from '../src/main/index.js';
import { needsTorch, PYTHON, requireTorch, skipWithoutTorch } from './torch.js';

const python = PYTHON;
needsTorch('test/pytorch.test.ts');
const dir = mkdtempSync(join(tmpdir(), 'gradpool-torch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SHIM = `
import json, struct, torch
def load_file(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    start = 8 + n
    return {name: torch.frombuffer(bytearray(data[start + t["data_offsets"][0]:start + t["data_offsets"][1]]), dtype=torch.float32).reshape(t["shape"])
            for name, t in header.items() if name != "__metadata__"}
`;

/** The README's Python block, as a user copies it. */
function readmePython(): string {
  const m = /```python\n([\s\S]*?)```/.exec(readFileSync('README.md', 'utf8'));
  if (m === null) throw new Error('README.md has no ```python block');
  return m[1];
}

describe('the model in PyTorch', () => {
  it.skipIf(skipWithoutTorch)("loads with the README's Python lines and predicts what gradpool predicts (needs Debian python3-torch)", async () => {
    requireTorch();
    const { train, test } = loadMnist();
    const t = new Trainer({ layers: [784, 128, 10], lr: 0.05, momentum: 0.9, workers: 2 });
    try {
      await t.fit({ x: train.x.subarray(0, 1500 * 784), y: train.y.subarray(0, 1500) }, { epochs: 1 });
      await t.save(join(dir, 'model.safetensors'));
      const x = test.x.subarray(0, 50 * 784);
      const ours = await t.predict(x);
      writeFileSync(join(dir, 'x.bin'), x);
      mkdirSync(join(dir, 'safetensors'), { recursive: true });
      writeFileSync(join(dir, 'safetensors', '__init__.py'), '');
      writeFileSync(join(dir, 'safetensors', 'torch.py'), SHIM);
      const script = readmePython() +
        '\nimport json, numpy, torch\n' +
        'x = torch.from_numpy(numpy.fromfile("x.bin", dtype="<f4").reshape(-1, 784))\n' +
        'print(json.dumps(torch.softmax(model(x), dim=1).detach().reshape(-1).tolist()))\n';
      const r = spawnSync(python, ['-c', script], { cwd: dir, encoding: 'utf8', env: { ...process.env, PYTHONPATH: dir }, timeout: 60_000 });
      expect(r.stderr).toBe('');
      const theirs = JSON.parse(r.stdout) as number[];
      expect(theirs).toHaveLength(ours.length);
      let worst = 0;
      for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - theirs[i]));
      expect(worst, `max |diff| ${worst}`).toBeLessThan(1e-5);
    } finally {
      await t.close();
    }
  });
});
