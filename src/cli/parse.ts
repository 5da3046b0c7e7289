// Flag parsing shared by the training script and the tuner: commander parses, with the value parsers
// below; help goes to `out` and exits 0; a usage error is one line on stderr, prefixed with the command's
// name, and exit code 2. Library messages are reworded in flag terms (usageWords, option-flags.ts).

import { InvalidArgumentError, type Command } from 'commander';
import { usageWords } from './option-flags.js';

/** A number parser for a flag: the text must be a number passing `check`, worded by `what`. */
export function num(check: (v: number) => boolean, what: string) {
  return (text: string): number => {
    const v = Number(text);
    if (text.trim() === '' || Number.isNaN(v) || !check(v)) throw new InvalidArgumentError(`expected ${what}`);
    return v;
  };
}
export const finite = (check: (v: number) => boolean, what: string) => num((v) => Number.isFinite(v) && check(v), what);
export const positiveInt = () => finite((v) => Number.isInteger(v) && v >= 1, 'a positive integer');
export const positiveNumber = () => finite((v) => v > 0, 'a positive number');
export const nonNegative = () => finite((v) => v >= 0, 'a number >= 0');
export const anyNumber = () => finite(() => true, 'a number');

/** A comma-separated list of numbers, each passing `check`. */
export function numberList(what: string, check: (v: number) => boolean = Number.isFinite) {
  return (text: string): number[] => {
    const parts = text.split(',').map((p) => p.trim());
    const values = parts.map(Number);
    if (!values.every((v, i) => parts[i] !== '' && check(v))) throw new InvalidArgumentError(`expected ${what}`);
    return values;
  };
}
export const positiveIntList = (what = 'positive integers separated by commas') => numberList(what, (v) => Number.isInteger(v) && v > 0);

export function parseFlags<T>(program: Command, argv: string[], out: NodeJS.WriteStream, name: string): { flags: T } | { code: number } {
  program.configureOutput({ writeOut: (s) => out.write(s), writeErr: () => {} });
  try {
    program.parse(argv, { from: 'user' });
    return { flags: program.opts<T & Record<string, unknown>>() };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return { code: 0 };
    const message = (e.message ?? String(err)).replace(/^error: /, '');
    process.stderr.write(`${name}: ${usageWords(message)}${e.code === 'commander.unknownOption' ? synonymHint(program, message) : ''}\n`);
    return { code: 2 };
  }
}

/** What users of PyTorch, Keras or other trainers type for a flag of ours. */
const SYNONYMS: Record<string, string> = {
  'learning-rate': 'lr', 'learningrate': 'lr', 'batch': 'batch-size', 'batchsize': 'batch-size', 'bs': 'batch-size',
  'epoch': 'epochs', 'num-epochs': 'epochs', 'max-epochs': 'epochs', 'n-epochs': 'epochs', 'num-workers': 'workers',
  'threads': 'workers', 'jobs': 'workers', 'patience': 'early-stopping-patience', 'early-stopping': 'early-stopping-patience',
  'checkpoint': 'out', 'output': 'out', 'save': 'out', 'val-split': 'validation-split', 'validation': 'validation-split',
  'label': 'label-column', 'target': 'label-column', 'labels': 'label-column', 'wd': 'weight-decay', 'decay': 'weight-decay',
  'hidden': 'layers', 'layer-sizes': 'layers', 'lr-schedule': 'schedule', 'scheduler': 'schedule', 'clip': 'clip-grad-norm',
  'max-grad-norm': 'clip-grad-norm', 'gradient-clip-val': 'clip-grad-norm',
};

/** '\n(Did you mean --lr?)' for an unknown flag that names one of ours another way (underscores and
 *  camelCase included), when commander has no suggestion of its own. */
function synonymHint(program: Command, message: string): string {
  if (message.includes('Did you mean')) return '';
  const flag = /unknown option '--([^'=]+)/.exec(message)?.[1];
  if (flag === undefined) return '';
  const plain = flag.replace(/_/g, '-').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).toLowerCase();
  const ours = new Set(program.options.map((o) => o.long?.replace(/^--/, '')));
  const target = ours.has(plain) ? plain : SYNONYMS[plain];
  return target !== undefined && ours.has(target) ? `\n(Did you mean --${target}?)` : '';
}
