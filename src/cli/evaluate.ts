// `gradpool evaluate model.safetensors --test test.csv` (or --test-images and --test-labels, or --data
// mnist: the bundled digits' test split, as the training script evaluates it at its end): a saved
// model's loss, accuracy, confusion matrix and per-class report on labelled data, read and normalised
// with the model's recorded preprocessing, so the figures are the ones training printed at its end.

import { Command, Option } from 'commander';
import { loadIdx, loadMnist, reportText, type Trainer } from '../main/index.js';
import { outputClosed } from './closed-output.js';
import { modelLine, openModel } from './model-command.js';
import { isIdxName, loadCsvForModel } from './model-data.js';
import { matrixText } from './output.js';
import { parseFlags, positiveInt } from './parse.js';
import { failure, UsageError } from './usage-error.js';
import { checkRegularFiles } from './writable.js';

interface EvaluateFlags {
  data?: 'mnist';
  test?: string;
  testImages?: string;
  testLabels?: string;
  labelColumn?: string;
  workers?: number;
}

export function buildEvaluateProgram(): Command {
  return new Command('gradpool evaluate')
    .description("Evaluate a saved model on labelled data: loss, accuracy, confusion matrix and per-class report, with the model's own preprocessing.")
    .argument('<model>', 'a checkpoint written by gradpool (the training script or trainer.save())')
    .addOption(new Option('--data <source>', "mnist: the bundled digits' test split (1,996 images), as training evaluates it").choices(['mnist']))
    .addOption(new Option('--test <file>', 'a CSV file with the label column (its feature columns as the model records them)'))
    .addOption(new Option('--test-images <file>', 'IDX images (e.g. t10k-images-idx3-ubyte.gz), with --test-labels'))
    .addOption(new Option('--test-labels <file>', 'IDX labels, with --test-images'))
    .addOption(new Option('--label-column <names>', "the CSV label column(s), by name or 0-based index (default: the model's)"))
    .addOption(new Option('--workers <n>', 'worker threads (default: the CPUs)').argParser(positiveInt()))
    .showHelpAfterError(false)
    .exitOverride();
}

export async function evaluateMain(argv: string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const program = buildEvaluateProgram();
  const parsed = parseFlags<EvaluateFlags>(program, argv, out, 'gradpool evaluate');
  if ('code' in parsed) return parsed.code;
  const f = parsed.flags;
  const modelPath = program.args[0];
  let trainer: Trainer | null = null;
  try {
    if ([f.data, f.test, f.testImages].filter((v) => v !== undefined).length !== 1) {
      throw new UsageError('give the data to evaluate on, one of: --test file.csv, --test-images and --test-labels, or --data mnist');
    }
    if ((f.testImages === undefined) !== (f.testLabels === undefined)) throw new UsageError('--test-images and --test-labels go together');
    if (f.test !== undefined && isIdxName(f.test)) throw new UsageError(`--test ${f.test} looks like an IDX file: give --test-images and --test-labels`);
    checkRegularFiles([['the model', modelPath], ['--test-images', f.testImages], ['--test-labels', f.testLabels]]);
    trainer = await openModel(modelPath, f.workers);
    out.write(modelLine(trainer, modelPath));
    const data = f.test !== undefined ? await loadCsvForModel(trainer, f.test, true, f.labelColumn)
      : f.testImages !== undefined ? await loadIdx(f.testImages, f.testLabels as string) : loadMnist().test;
    if (outputClosed(out)) return 0; // its reader has gone (`| head`): nothing to evaluate for
    const e = await trainer.evaluate(data);
    const names = trainer.preprocessing?.classNames ?? undefined;
    out.write(`data: ${f.test ?? f.testImages ?? 'MNIST digits (bundled), the test split'}, ${e.rows} rows\n`);
    if (e.confusion !== null) {
      out.write(`confusion matrix (rows: true class, columns: predicted):\n${matrixText(e.confusion, names)}`);
    }
    out.write(`per-class report:\n${reportText(e.report, names)}`);
    out.write(`loss ${e.loss.toFixed(4)}, accuracy ${(100 * e.accuracy).toFixed(2)}%\n`);
    return 0;
  } catch (err) {
    return failure('gradpool evaluate', err);
  } finally {
    await trainer?.close();
  }
}
