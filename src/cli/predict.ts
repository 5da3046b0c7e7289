// `gradpool predict model.safetensors --input new.csv --out predictions.csv`: a saved model's
// predictions for raw inputs (CSV, IDX images, or --data mnist: the bundled digits' test split), read
// and normalised with the model's recorded
// preprocessing. One output row per input row, in order: the predicted class (its name when the model
// records class names) and each class's probability, or with --top-k the k most probable classes; for
// independent sigmoid outputs, each output's probability. Streamed in pieces of bounded size: a file is
// written atomically (whole or not there); standard output waits for its reader, and a reader that
// goes (`| head`) ends the command quietly.

import { Command, Option } from 'commander';
import { isSoftmaxLoss, loadIdx, loadMnist, predictedClass, type Trainer } from '../main/index.js';
import { isClosedOutput } from './closed-output.js';
import { shortestFloat32 } from './float32-text.js';
import { modelLine, openModel } from './model-command.js';
import { isIdxName, loadCsvForModel } from './model-data.js';
import { fileSink, streamSink, type OutputSink } from './output-sink.js';
import { parseFlags, positiveInt } from './parse.js';
import { failure, UsageError } from './usage-error.js';
import { checkDistinctFiles, checkRegularFiles, checkWritableFile, fileFlag } from './writable.js';

interface PredictFlags {
  data?: 'mnist';
  input?: string;
  out: string;
  topK?: number;
  labelColumn?: string;
  workers?: number;
}

/** Probabilities per trainer.predict() call (4 MB of float32), so memory does not grow with the rows. */
const BLOCK_CELLS = 1 << 20;
/** Characters of text handed to the file or stream at once. */
const PIECE_CHARS = 1 << 20;

export function buildPredictProgram(): Command {
  return new Command('gradpool predict')
    .description("Predict with a saved model: one row per input row, the predicted class and each class's probability, with the model's own preprocessing.")
    .argument('<model>', 'a checkpoint written by gradpool (the training script or trainer.save())')
    .addOption(new Option('--input <file>', 'a CSV file holding the model\'s feature columns (other columns are left out), or IDX images (...-idx3-ubyte[.gz])'))
    .addOption(new Option('--data <source>', "mnist: the bundled digits' test split (1,996 images), instead of --input").choices(['mnist']))
    .addOption(new Option('--out <file>', "where the predictions go, as CSV ('-': standard output)").makeOptionMandatory())
    .addOption(new Option('--top-k <k>', 'write the k most probable classes (outputs) and their probabilities per row, not every class').argParser(positiveInt()))
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
    checkDistinctFiles([fileFlag('--out', f.out)], [fileFlag('<model>', modelPath), fileFlag('--input', f.input)]);
    checkRegularFiles([['the model', modelPath], ['--input', f.input !== undefined && isIdxName(f.input) ? f.input : undefined]]);
    trainer = await openModel(modelPath, f.workers);
    const table = predictionTable(trainer, f.topK);
    log.write(modelLine(trainer, modelPath));
    const data = f.input === undefined ? loadMnist().test
      : isIdxName(f.input) ? await loadIdx(f.input) : await loadCsvForModel(trainer, f.input, false, f.labelColumn);
    const sink = toStdout ? streamSink(out) : await fileSink(f.out);
    try {
      await writePredictions(trainer, data.x, table, sink);
      await sink.end();
    } catch (err) {
      await sink.discard();
      throw err;
    }
    if (!toStdout) log.write(`wrote ${f.out}: ${data.rows} rows\n`);
    return 0;
  } catch (err) {
    // The reader of standard output has gone (`| head`): it has what it wanted.
    if (toStdout && isClosedOutput(err)) return 0;
    return failure('gradpool predict', err);
  } finally {
    await trainer?.close();
  }
}

/** The CSV's header, and the text of row r of a block of probabilities (N, K). */
export interface PredictionTable {
  head: string;
  row(probs: Float32Array, r: number): string;
}

/**
 * The columns for `trainer`'s model. Softmax models: `predicted` (the class name, or index), then
 * `p_<class>` per class, or with top-k, `class_i,p_i` for the i-th most probable class (i = 1 ... k).
 * One sigmoid output: `predicted` (class 1 at a probability >= 0.5) and `p_<class 1>`. Several sigmoid
 * outputs: `p_<label>` per output, or with top-k, `label_i,p_i`. Probabilities in their shortest float32 form.
 */
export function predictionTable(trainer: Trainer, topK: number | undefined): PredictionTable {
  const K = trainer.config.layers[trainer.config.layers.length - 1];
  const p = trainer.preprocessing;
  const softmax = isSoftmaxLoss(trainer.config.loss);
  const names = Array.from({ length: K }, (_, k) => csvField(String((softmax ? p?.classNames?.[k] : p?.labelNames?.[k]) ?? k)));
  if (topK !== undefined) {
    if (K === 1) {
      throw new UsageError('--top-k: this model has one sigmoid output, whose row is already its class and probability; leave --top-k out');
    }
    if (topK > K) throw new UsageError(`--top-k ${topK}: the model has ${K} ${softmax ? 'classes' : 'outputs'}; give a k from 1 to ${K}`);
    const order = new Int32Array(K);
    const what = softmax ? 'class' : 'label';
    const pairs = Array.from({ length: topK }, (_, i) => `${what}_${i + 1},p_${i + 1}`).join(',');
    return {
      head: softmax ? `predicted,${pairs}` : pairs,
      row: (probs, r) => {
        const n = mostProbable(probs, r * K, K, topK, order);
        let line = softmax ? names[order[0]] : '';
        for (let i = 0; i < n; i++) line += `${i === 0 && !softmax ? '' : ','}${names[order[i]]},${shortestFloat32(probs[r * K + order[i]])}`;
        return line;
      },
    };
  }
  if (!softmax && K > 1) {
    return { head: names.map((n) => `p_${n}`).join(','), row: (probs, r) => probabilities(probs, r * K, K) };
  }
  const shown = softmax ? names : [csvField(String(p?.classNames?.[1] ?? p?.labelNames?.[0] ?? 1))];
  const classNames = softmax ? names : [csvField(String(p?.classNames?.[0] ?? 0)), csvField(String(p?.classNames?.[1] ?? 1))];
  return {
    head: `predicted,${shown.map((n) => `p_${n}`).join(',')}`,
    row: (probs, r) => `${classNames[predictedClass(probs, r, K)]},${probabilities(probs, r * K, K)}`,
  };
}

/** The model's predictions for the rows of `x`, block by block of bounded size, into `sink`: at most
 *  `blockCells` probabilities per trainer.predict call (one row at least), pieces of about `pieceChars`. */
export async function writePredictions(
  trainer: Trainer, x: Float32Array, table: PredictionTable, sink: OutputSink, blockCells = BLOCK_CELLS, pieceChars = PIECE_CHARS,
): Promise<void> {
  const D = trainer.config.layers[0];
  const K = trainer.config.layers[trainer.config.layers.length - 1];
  const rows = x.length / D;
  const block = Math.max(1, Math.floor(blockCells / K));
  let text = `${table.head}\n`;
  for (let r0 = 0; r0 < rows; r0 += block) {
    const n = Math.min(block, rows - r0);
    const probs = await trainer.predict(x.subarray(r0 * D, (r0 + n) * D));
    for (let r = 0; r < n; r++) {
      text += `${table.row(probs, r)}\n`;
      if (text.length >= pieceChars) {
        await sink.write(text);
        text = '';
      }
    }
  }
  if (text !== '') await sink.write(text);
}

/** The K probabilities from `base`, comma-separated. */
function probabilities(probs: Float32Array, base: number, K: number): string {
  let line = shortestFloat32(probs[base]);
  for (let k = 1; k < K; k++) line += `,${shortestFloat32(probs[base + k])}`;
  return line;
}

/**
 * Puts in order[0 ... k-1] the indices of the k largest of probs[base ... base+K-1], largest first (equal
 * ones by index, as predictedClass picks the first); returns k. Small k: one pass keeping the k best in
 * order; large k: a sort of all K.
 */
export function mostProbable(probs: Float32Array, base: number, K: number, k: number, order: Int32Array): number {
  if (k > 32) {
    for (let c = 0; c < K; c++) order[c] = c;
    order.sort((a, b) => probs[base + b] - probs[base + a] || a - b);
    return k;
  }
  let n = 0;
  for (let c = 0; c < K; c++) {
    const v = probs[base + c];
    if (n === k && !(v > probs[base + order[n - 1]])) continue;
    let i = n < k ? n++ : n - 1;
    while (i > 0 && v > probs[base + order[i - 1]]) {
      order[i] = order[i - 1];
      i--;
    }
    order[i] = c;
  }
  return n;
}

/** A CSV cell: quoted when it holds a comma, a quote or a line break (RFC 4180). */
function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
