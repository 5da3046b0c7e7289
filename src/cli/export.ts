// `gradpool export model.safetensors --onnx model.onnx --pytorch train_ddp.py`: a checkpoint written by
// gradpool, as an ONNX graph for serving, and as a PyTorch script that continues its training under
// torchrun with DistributedDataParallel. Each file is written atomically.

import { Command, Option } from 'commander';
import { isSoftmaxLoss, loadCheckpoint, ONNX_OPSET, parsePreprocessing, saveOnnx } from '../main/index.js';
import { parseFlags } from './parse.js';
import { failure, UsageError } from './usage-error.js';

interface ExportFlags {
  onnx?: string;
  pytorch?: string;
}

export function buildExportProgram(): Command {
  return new Command('gradpool export')
    .description('Export a gradpool checkpoint: as an ONNX graph (--onnx), or as a PyTorch DDP script that continues its training (--pytorch).')
    .argument('<checkpoint>', 'a safetensors checkpoint written by gradpool')
    .addOption(new Option('--onnx <file.onnx>', 'write the model as an ONNX graph: raw features in, probabilities out'))
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
    if (f.onnx === undefined && f.pytorch === undefined) throw new UsageError('nothing to export: give --onnx <file.onnx>');
    const ckpt = await loadCheckpoint(path);
    const preprocessing = parsePreprocessing(ckpt.metadata, ckpt.config, path);
    if (f.onnx !== undefined) {
      await saveOnnx(f.onnx, { config: ckpt.config, params: ckpt.params, preprocessing });
      const { layers, loss } = ckpt.config;
      const n = preprocessing?.normalize ?? null;
      out.write(
        `wrote ${f.onnx}: ONNX opset ${ONNX_OPSET}, input 'input' (N, ${layers[0]}) raw features` +
          (n === null ? '' : ` (normalised in the graph: ${n.mode}, statistics recorded in ${path})`) +
          `, outputs 'probabilities' (N, ${layers.at(-1)}, ${isSoftmaxLoss(loss) ? 'softmax' : 'sigmoid'}) and 'logits'\n`,
      );
    }
    return 0;
  } catch (err) {
    return failure('gradpool export', err);
  }
}
