// Every opset the ONNX export accepts (13 to 21), checked twice: by ONNX's own checker from Debian's
// python3-onnx (1.12, which knows opsets up to 17) with full_check, and by running the file in
// onnxruntime-node against trainer.predict (within 1e-5). The IR versions are compared with ONNX's release
// table: onnx.helper.find_min_ir_version_for where python3-onnx knows the opset, and for 18 to 21 the rows
// onnx 1.16 added to onnx/helper.py's VERSION_TABLE (1.13 opset 18 IR 8, 1.14 19/9, 1.15 20/9, 1.16 21/10).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportMain } from '../src/cli/export.js';
import { OptionRangeError, OptionTypeError, type Trainer, type TrainerOptions } from '../src/main/index.js';
import { maxAbsDiff, runCommand, trainers } from './helpers.js';

const python = '/usr/bin/python3';
const onnxVersion = spawnSync(python, ['-c', 'import onnx; print(onnx.__version__)'], { encoding: 'utf8' });
const hasOnnx = onnxVersion.status === 0;
if (!hasOnnx && process.env.CI === 'true') {
  throw new Error(`CI=true but ${python} cannot import onnx (Debian's python3-onnx): ${onnxVersion.stderr ?? onnxVersion.error}`);
}
const OPSETS = [13, 14, 15, 16, 17, 18, 19, 20, 21];
/** onnx/helper.py's VERSION_TABLE rows from onnx 1.13 to 1.16, which python3-onnx 1.12 does not have. */
const NEWER_IR: Record<number, number> = { 18: 8, 19: 9, 20: 9, 21: 10 };

const dir = mkdtempSync(join(tmpdir(), 'gradpool-opsets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { make } = trainers();

const D = 5;
const N = 30;
const X = Float32Array.from({ length: N * D }, (_, i) => 8 * Math.sin(1.3 * i + 0.7) + 2 * (i % D));
const NORMALIZE = { mode: 'standardize' as const, offset: [1, 2, 3, 4, 5], scale: [0.5, 0.25, 0.2, 0.1, 0.3] };
const classes = Int32Array.from({ length: N }, (_, i) => (i * 5) % 4);
const multiLabel = Array.from({ length: N }, (_, i) => [i & 1, (i >> 1) & 1]);

/** Models covering every op the export writes: Sub, Mul, Gemm, Relu, Tanh, Sigmoid, Softmax. */
const MODELS: { name: string; options: TrainerOptions; y: unknown }[] = [
  { name: 'relu-softmax', options: { layers: [D, 6, 4], activation: 'relu' }, y: classes },
  { name: 'tanh-softmax', options: { layers: [D, 6, 5, 4], activation: 'tanh' }, y: classes },
  { name: 'sigmoid-bce', options: { layers: [D, 6, 2], activation: 'sigmoid', loss: 'bce-with-logits' }, y: multiLabel },
];
const trained: Record<string, Trainer> = {};
beforeAll(async () => {
  for (const m of MODELS) {
    const t = make({ workers: 1, lr: 0.1, momentum: 0.9, batchSize: 8, preprocessing: { normalize: NORMALIZE }, ...m.options });
    await t.fit({ x: X, y: m.y } as never, { epochs: 2 });
    trained[m.name] = t;
  }
});

const file = (model: string, opset: number): string => join(dir, `${model}-${opset}.onnx`);

describe('ONNX export at every opset from 13 to 21', () => {
  for (const opset of OPSETS) {
    it(`opset ${opset}: runs in onnxruntime-node with trainer.predict's probabilities for relu, tanh and sigmoid MLPs`, async () => {
      for (const m of MODELS) {
        const t = trained[m.name];
        await t.exportOnnx(file(m.name, opset), { opsetVersion: opset });
        const model = onnxProto.onnx.ModelProto.decode(readFileSync(file(m.name, opset)));
        expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', opset]]);
        const session = await ort.InferenceSession.create(file(m.name, opset));
        const r = await session.run({ input: new ort.Tensor('float32', X, [N, D]) });
        const diff = maxAbsDiff(await t.predict(X), r.probabilities.data as Float32Array);
        expect(diff, `${m.name} at opset ${opset}: max |diff| ${diff}`).toBeLessThan(1e-5);
      }
    });
  }

  it.skipIf(!hasOnnx)(
    `passes onnx.checker.check_model(full_check=True) of Debian's python3-onnx at each opset it knows (13 to 17), with the IR version ONNX's table gives (${hasOnnx ? `onnx ${onnxVersion.stdout.trim()}` : 'skipped: /usr/bin/python3 cannot import onnx; apt-get install python3-onnx'})`,
    async () => {
      const files: string[] = [];
      for (const opset of OPSETS.filter((o) => o <= 17)) {
        for (const m of MODELS) {
          await trained[m.name].exportOnnx(file(m.name, opset), { opsetVersion: opset });
          files.push(file(m.name, opset));
        }
      }
      const script = [
        'import json, sys, onnx',
        'from onnx import helper',
        'out = []',
        'for path in sys.argv[1:]:',
        '    m = onnx.load(path)',
        '    onnx.checker.check_model(m, full_check=True)',
        '    out.append([path, m.ir_version, helper.find_min_ir_version_for(list(m.opset_import))])',
        'print(json.dumps(out))',
      ].join('\n');
      const r = spawnSync(python, ['-c', script, ...files], { encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const rows = JSON.parse(r.stdout) as [string, number, number][];
      expect(rows.map((row) => row[0])).toEqual(files);
      for (const [path, ir, minIr] of rows) expect(ir, path).toBe(minIr);
    },
  );

  it('writes the IR version of the ONNX release that introduced opsets 18 to 21', async () => {
    for (const opset of [18, 19, 20, 21]) {
      await trained['relu-softmax'].exportOnnx(file('ir', opset), { opsetVersion: opset });
      expect(Number(onnxProto.onnx.ModelProto.decode(readFileSync(file('ir', opset))).irVersion), `opset ${opset}`).toBe(NEWER_IR[opset]);
    }
  });

  it('defaults to opset 17 with IR version 8, the library and the CLI alike', async () => {
    const t = trained['relu-softmax'];
    await t.exportOnnx(join(dir, 'default.onnx'));
    const lib = onnxProto.onnx.ModelProto.decode(readFileSync(join(dir, 'default.onnx')));
    expect([Number(lib.irVersion), Number(lib.opsetImport[0].version)]).toEqual([8, 17]);
    const ckpt = join(dir, 'default.safetensors');
    await t.save(ckpt);
    const r = await runCommand(exportMain, [ckpt, '--onnx', join(dir, 'cli-default.onnx')]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('ONNX opset 17 (IR version 8)');
    const cli = onnxProto.onnx.ModelProto.decode(readFileSync(join(dir, 'cli-default.onnx')));
    expect([Number(cli.irVersion), Number(cli.opsetImport[0].version)]).toEqual([8, 17]);
  });

  it('`gradpool export --onnx --opset 13` writes opset 13, running as the Trainer predicts', async () => {
    const t = trained['tanh-softmax'];
    const ckpt = join(dir, 'tanh.safetensors');
    await t.save(ckpt);
    const onnx = join(dir, 'cli-13.onnx');
    const r = await runCommand(exportMain, [ckpt, '--onnx', onnx, '--opset', '13']);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/^wrote .*cli-13\.onnx: ONNX opset 13 \(IR version 7\), input 'input' \(N, 5\)/);
    const model = onnxProto.onnx.ModelProto.decode(readFileSync(onnx));
    expect([Number(model.irVersion), Number(model.opsetImport[0].version)]).toEqual([7, 13]);
    const session = await ort.InferenceSession.create(onnx);
    const out = await session.run({ input: new ort.Tensor('float32', X, [N, D]) });
    expect(maxAbsDiff(await t.predict(X), out.probabilities.data as Float32Array)).toBeLessThan(1e-5);
  });

  it('refuses an opset outside 13 to 21 on the command line, naming the range, before writing anything, and --opset without --onnx', async () => {
    const ckpt = join(dir, 'refuse.safetensors');
    await trained['relu-softmax'].save(ckpt);
    for (const bad of ['12', '22', '17.5', 'seventeen']) {
      const onnx = join(dir, `refused-${bad}.onnx`);
      const r = await runCommand(exportMain, [ckpt, '--onnx', onnx, '--opset', bad]);
      expect(r.code).toBe(2);
      expect(r.err).toBe(`gradpool export: option '--opset <n>' argument '${bad}' is invalid. expected an ONNX opset version from 13 to 21\n`);
      expect(existsSync(onnx)).toBe(false);
    }
    const alone = await runCommand(exportMain, [ckpt, '--opset', '13']);
    expect([alone.code, alone.err]).toEqual([2, 'gradpool export: --opset is the opset of --onnx: give --onnx <file.onnx> too\n']);
  });

  it('refuses options.opsetVersion outside 13 to 21, or not a number, or an unknown option, writing nothing', async () => {
    const t = trained['relu-softmax'];
    const path = join(dir, 'refused.onnx');
    await expect(t.exportOnnx(path, { opsetVersion: 12 })).rejects.toThrow(OptionRangeError);
    await expect(t.exportOnnx(path, { opsetVersion: 22 })).rejects.toThrow(
      'Unsupported ONNX opset version: options.opsetVersion must be an integer from 13 to 21; got 22',
    );
    await expect(t.exportOnnx(path, { opsetVersion: 16.5 })).rejects.toThrow('options.opsetVersion must be an integer from 13 to 21; got 16.5');
    await expect(t.exportOnnx(path, { opsetVersion: '17' as never })).rejects.toThrow(OptionTypeError);
    await expect(t.exportOnnx(path, { opset: 17 } as never)).rejects.toThrow(
      'options.opset is not an ONNX export option; the options are: opsetVersion',
    );
    expect(existsSync(path)).toBe(false);
  });
});
