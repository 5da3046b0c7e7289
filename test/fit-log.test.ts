// Where fit({ verbose: true })'s per-epoch lines go: to fit options.log when it is given (the training
// script's writer), else to standard output; nowhere without verbose. The lines are epochText's for the
// records fit() returns, so one run is checked against its own history.

import { describe, expect, it } from 'vitest';
import { noisy, trainers } from './helpers.js';
import { epochText, type EpochRecord, type TrainerOptions } from '../src/main/index.js';

const { make } = trainers();

const options: TrainerOptions = { layers: [6, 8, 2], lr: 0.3, batchSize: 16, workers: 1, seed: 3 };
const train = noisy(64, 1);

/** Runs `work` with standard output captured; returns what was written to it. */
async function stdoutOf(work: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((t: string) => (lines.push(t), true)) as typeof process.stdout.write;
  try {
    await work();
  } finally {
    process.stdout.write = write;
  }
  return lines;
}

describe("fit()'s verbose lines", () => {
  it('go to fit options.log when given, one per epoch, and not to standard output', async () => {
    const logged: string[] = [];
    let history: EpochRecord[] = [];
    const printed = await stdoutOf(async () => {
      history = await make(options).fit(train, { epochs: 2, verbose: true, log: (text) => logged.push(text) });
    });
    expect(printed).toEqual([]);
    expect(logged).toHaveLength(2);
    history.forEach((r, i) => {
      // The clock's figures vary; everything before them is the record's.
      const head = epochText(r, { epochs: 2 }).replace(/\n$/, '');
      expect(logged[i].startsWith(`${head}; elapsed `)).toBe(true);
      expect(logged[i]).toMatch(i === 0 ? /; elapsed [0-9.]+ s, ETA [0-9.]+ s\n$/ : /; elapsed [0-9.]+ s\n$/);
    });
  });

  it('are not written at all without verbose, log or not', async () => {
    const logged: string[] = [];
    const printed = await stdoutOf(() => make(options).fit(train, { epochs: 1, log: (text) => logged.push(text) }));
    expect([...printed, ...logged]).toEqual([]);
  });

  it('refuse a log that is not a function', async () => {
    await expect(make(options).fit(train, { verbose: true, log: 'stdout' as never }))
      .rejects.toThrow('fit options.log must be a function (text: string) => void; got "stdout"');
  });
});
