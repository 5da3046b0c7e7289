// Flag parsing shared by the training script and the tuner: commander parses; help goes to `out` and
// exits 0; a usage error is one line on stderr, prefixed with the command's name, and exit code 2.

import type { Command } from 'commander';

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
