// `gradpool plot metrics.jsonl --out curves.svg`: the learning curves of a run from its --metrics file
// (its epoch lines; the file's last run when several were appended), as --plot draws them while training.

import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { curvesSvg, DataError, epochsFromMetrics, writeFileAtomic } from '../main/index.js';
import { parseFlags } from './parse.js';
import { failure } from './usage-error.js';
import { checkDistinctFiles, checkRegularFiles, fileFlag } from './writable.js';

export function buildPlotProgram(): Command {
  return new Command('gradpool plot')
    .description('Draw the learning curves (loss, accuracy, learning rate per epoch) of a --metrics file as an SVG.')
    .argument('<metrics>', 'a JSON Lines file written by the training script\'s --metrics')
    .addOption(new Option('--out <file.svg>', 'where the picture goes').default('curves.svg'))
    .showHelpAfterError(false)
    .exitOverride();
}

export async function plotMain(argv: string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const program = buildPlotProgram();
  const parsed = parseFlags<{ out: string }>(program, argv, out, 'gradpool plot');
  if ('code' in parsed) return parsed.code;
  const path = program.args[0];
  try {
    checkDistinctFiles([fileFlag('--out', parsed.flags.out)], [fileFlag('<metrics>', path)]);
    checkRegularFiles([['the metrics file', path]]);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new DataError(`${path}: cannot read the file (${(err as Error).message})`);
    }
    const history = epochsFromMetrics(text, path);
    await writeFileAtomic(parsed.flags.out, curvesSvg(history, `gradpool: ${path}, epochs ${history[0].epoch}-${history.at(-1)?.epoch}`));
    out.write(`wrote ${parsed.flags.out}: ${history.length} epochs\n`);
    return 0;
  } catch (err) {
    return failure('gradpool plot', err);
  }
}
