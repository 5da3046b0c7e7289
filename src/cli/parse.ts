// Flag parsing shared by the training script and the tuner: commander parses, with the value parsers
// below; help goes to `out` and exits 0; a usage error is one line on stderr, prefixed with the command's
// name, and exit code 2. Library messages are reworded in flag terms (usageWords).

import { InvalidArgumentError, type Command } from 'commander';

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
    process.stderr.write(`${name}: ${usageWords((e.message ?? String(err)).replace(/^error: /, ''))}\n`);
    return { code: 2 };
  }
}

/** Library messages name options as `options.batchSize`; on the command line they are flags. */
export function usageWords(message: string): string {
  return message
    .replace(/options\.weight\b/g, '--class-weight')
    .replace(/options\.(\w+)/g, (_, name: string) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
}
