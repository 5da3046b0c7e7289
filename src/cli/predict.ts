// `gradpool predict model.safetensors --input new.csv --out predictions.csv`: a saved model's
// predictions for raw inputs (CSV, IDX images, or --data mnist: the bundled digits' test split), read
// and normalised with the model's recorded
// preprocessing. One output row per input row, in order: the predicted class (its name when the model
// records class names) and each class's probability; for independent sigmoid outputs, each output's
// probability. Written atomically: the file is whole or not there.

import { Command, Option } from 'commander';
import { isSoftmaxLoss, loadIdx, loadMnist, writeFileAtomic, type Trainer } from '../main/index.js';
import { modelLine, openModel } from './model-command.js';
import { isIdxName, loadCsvForModel } from './model-data.js';
import { parseFlags, positiveInt } from './parse.js';
import { failure, UsageError } from './usage-error.js';
import { checkWritableFile } from './writable.js';

interface PredictFlags {
  data?: 'mnist';
  input?: string;
  out: string;
  labelColumn?: string;
  workers?: number;
}

export function buildPredictProgram(): Command {
  return new Command('gradpool predict')
    .description("Predict with a saved model: one row per input row, the predicted class and each class's probability, with the model's own preprocessing.")
    .argument('<model>', 'a checkpoint written by gradpool (the training script or trainer.save())')
    .addOption(new Option('--input <file>', 'a CSV file holding the model\'s feature columns (other columns are left out), or IDX images (...-idx3-ubyte[.gz])'))
    .addOption(new Option('--data <source>', "mnist: the bundled digits' test split (1,996 images), instead of --input").choices(['mnist']))
    .addOption(new Option('--out <file>', "where the predictions go, as CSV ('-': standard output)").makeOptionMandatory())
    .addOption(new Option('--label-column <names>', 'a column of the CSV file to leave out, for a model that records no feature columns'))
    .addOption(new Option('--workers <n>', 'worker threads (default: the CPUs)').argParser(positiveInt()))
    .showHelpAfterError(false)
    .exitOverride();
}

export async function predictMain(argv: string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const program = buildPredictProgram();
  const parsed = parseFlags<PredictFlags>(program, argv, out, 'gradpool predict');
  if ('code' in parsed) return parsed.code;
  const f = parsed.flags;
  const modelPath = program.args[0];
  const toStdout = f.out === '-';
  const log = toStdout ? process.stderr : out;
  let trainer: Trainer | null = null;
  try {
    if ((f.input === undefined) === (f.data === undefined)) throw new UsageError('give the inputs, one of: --input file, or --data mnist');
    if (!toStdout) checkWritableFile('--out', f.out);
    trainer = await openModel(modelPath, f.workers);
    log.write(modelLine(trainer, modelPath));
    const data = f.input === undefined ? loadMnist().test
      : isIdxName(f.input) ? await loadIdx(f.input) : await loadCsvForModel(trainer, f.input, false, f.labelColumn);
    const text = await predictionsCsv(trainer, data.x);
    if (toStdout) {
      out.write(text);
    } else {
      await writeFileAtomic(f.out, text);
      log.write(`wrote ${f.out}: ${data.rows} rows\n`);
    }
    return 0;
  } catch (err) {
    return failure('gradpool predict', err);
  } finally {
    await trainer?.close();
  }
}

/**
 * The predictions as CSV. Softmax models: `predicted` (the class name, or index) then `p_<class>` per
 * class; one sigmoid output: `predicted` (class 1 at a probability >= 0.5) and `p_<class 1>`; several
 * sigmoid outputs: `p_<label>` per output. Probabilities are float32 values in their shortest form.
 */
export async function predictionsCsv(trainer: Trainer, x: Float32Array): Promise<string> {
  const K = trainer.config.layers[trainer.config.layers.length - 1];
  const p = trainer.preprocessing;
  const probs = await trainer.predict(x);
  const rows = probs.length / K;
  const single = isSoftmaxLoss(trainer.config.loss) || K === 1;
  const classes = single ? await trainer.predictClasses(x) : null;
  let head: string[];
  if (isSoftmaxLoss(trainer.config.loss)) {
    head = ['predicted', ...Array.from({ length: K }, (_, k) => `p_${p?.classNames?.[k] ?? k}`)];
  } else if (K === 1) {
    head = ['predicted', `p_${p?.classNames?.[1] ?? p?.labelNames?.[0] ?? 1}`];
  } else {
    head = Array.from({ length: K }, (_, k) => `p_${p?.labelNames?.[k] ?? k}`);
  }
  const lines = [head.map(csvField).join(',')];
  for (let r = 0; r < rows; r++) {
    const cells: string[] = classes === null ? [] : [csvField(classes[r])];
    for (let k = 0; k < K; k++) cells.push(shortestFloat32(probs[r * K + k]));
    lines.push(cells.join(','));
  }
  return lines.join('\n') + '\n';
}

/** The shortest decimal that reads back as the same float32. */
export function shortestFloat32(v: number): string {
  for (let digits = 1; digits < 9; digits++) {
    const s = String(Number(v.toPrecision(digits)));
    if (Math.fround(Number(s)) === v) return s;
  }
  return String(Number(v.toPrecision(9)));
}

/** A CSV cell: quoted when it holds a comma, a quote or a line break (RFC 4180). */
function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
