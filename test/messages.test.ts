// Messages that name only what exists (issue 22, item 5): every --flag a message or hint in src/ can
// print is in the --help of the command that prints it; every option a library message names has a flag
// or words in the CLI's one table (src/cli/option-flags.ts), so that a message raised under the CLI
// names flags and one raised under the library names options.x; a string is shown as a string.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { buildEvaluateProgram } from '../src/cli/evaluate.js';
import { buildExportProgram } from '../src/cli/export.js';
import { OPTION_FLAGS, usageWords } from '../src/cli/option-flags.js';
import { buildPlotProgram } from '../src/cli/plot.js';
import { buildPredictProgram } from '../src/cli/predict.js';
import { buildProgram } from '../src/cli/program.js';
import { buildTuneProgram } from '../src/cli/tune.js';
import { Trainer } from '../src/main/index.js';
import { runCli } from './helpers.js';

const SRC = join(import.meta.dirname, '..', 'src');

/** Every string literal and template-literal part of every .ts file under src/, by file. */
function literals(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts')) {
        const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
        const texts: string[] = [];
        const visit = (node: ts.Node): void => {
          if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateHead(node) ||
            ts.isTemplateMiddle(node) || ts.isTemplateTail(node)) texts.push(node.text);
          ts.forEachChild(node, visit);
        };
        visit(source);
        out.set(relative(SRC, path), texts);
      }
    }
  };
  walk(SRC);
  return out;
}

const help = (program: { helpInformation: () => string }): Set<string> =>
  new Set(program.helpInformation().match(/--[a-z][a-z-]*/g) ?? []);
const HELP: Record<string, Set<string>> = {
  train: help(buildProgram()), evaluate: help(buildEvaluateProgram()), predict: help(buildPredictProgram()),
  tune: help(buildTuneProgram()), plot: help(buildPlotProgram()), export: help(buildExportProgram()),
};
const ALL = new Set(Object.values(HELP).flatMap((s) => [...s]));

/** The commands whose messages a file's strings reach: its own command's, or any for shared code. */
function commandsOf(file: string): Set<string> {
  const own = /^cli\/(evaluate|predict|tune|plot|export)\.ts$/.exec(file)?.[1];
  // export's messages name the training flags a run was saved with, as well as its own.
  if (own === 'export') return new Set([...HELP.export, ...HELP.train]);
  if (own !== undefined) return HELP[own];
  if (file === 'cli/model-data.ts' || file === 'cli/model-command.ts') return new Set([...HELP.evaluate, ...HELP.predict]);
  if (file.startsWith('cli/')) return HELP.train;
  return ALL;
}

/** Flags of other programs that gradpool's messages name, and why. */
const OTHER_PROGRAMS: Record<string, string> = {
  '--nproc': "torchrun's --nproc_per_node",
  '--enable-source-maps': "Node's, for the worker threads",
  '--si': "free's, in a comment-like docstring",
  '--max-steps': "the exported PyTorch script's own flag",
  '--redirects': "torchrun's, which Debian's torch 1.13 under Python 3.11 needs",
  '--tee': "torchrun's, beside --redirects",
  '--logdir': "TensorBoard's, in the line that says how to view the curves",
  '--experimental-wasm-relaxed-simd': "Node 20's, which turns relaxed SIMD (the FMA kernels) on",
};

describe('flags named in messages', () => {
  const files = literals();

  it('every --flag in a string in src/ is in the --help of a command that can print it', () => {
    const missing: string[] = [];
    let seen = 0;
    for (const [file, texts] of files) {
      if (file === 'main/export/pytorch-template.ts') continue; // the exported Python script's own argparse
      for (const text of texts) {
        for (const flag of text.match(/(?<![\w-])--[a-z][a-z-]*[a-z]/g) ?? []) {
          seen++;
          if (flag in OTHER_PROGRAMS || commandsOf(file).has(flag)) continue;
          missing.push(`${file}: ${flag} in ${JSON.stringify(text.slice(0, 80))}`);
        }
      }
    }
    expect(seen).toBeGreaterThan(100); // the scan does find the flags
    expect(missing).toEqual([]);
  });

  it('every flag of the option table is in the help of the training command', () => {
    const flags = Object.values(OPTION_FLAGS).filter((f): f is `--${string}` => typeof f === 'string');
    expect(flags.filter((f) => !HELP.train.has(f))).toEqual([]);
  });

  it('every option a library message names is in the table, so none becomes a made-up flag', () => {
    const missing = new Set<string>();
    // `options.x` and `options.x.y` in any string; `${where}.y` for the schedule's fields and
    // `${name}.y` for early stopping's, named by their callers as options.schedule and fit options.earlyStopping.
    const parents: Record<string, string> = { 'shared/schedule.ts': 'schedule', 'main/reporting/early-stopping.ts': 'earlyStopping' };
    for (const [file, texts] of files) {
      for (const text of texts) {
        for (const m of text.matchAll(/\boptions\.([A-Za-z]+)(?:\.([A-Za-z]+))?/g)) {
          if (m[1] === 'js') continue; // an import of options.js
          if (!(m[1] in OPTION_FLAGS)) missing.add(`${file}: options.${m[1]}`);
          if (m[2] !== undefined && !(`${m[1]}.${m[2]}` in OPTION_FLAGS) && typeof OPTION_FLAGS[m[1]] === 'string' && m[1] !== 'layers') {
            missing.add(`${file}: options.${m[1]}.${m[2]}`);
          }
        }
      }
      const parent = parents[file];
      if (parent === undefined) continue;
      const source = readFileSync(join(SRC, file), 'utf8');
      for (const m of source.matchAll(/\$\{(?:where|name)\}\.([A-Za-z]+)|\((?:where|name), '([A-Za-z]+)'/g)) {
        const field = m[1] ?? m[2];
        if (!(`${parent}.${field}` in OPTION_FLAGS)) missing.add(`${file}: ${parent}.${field}`);
      }
    }
    expect([...missing]).toEqual([]);
  });
});

describe('library messages in CLI terms', () => {
  it.each([
    ['a row longer than 67108864 characters (options.maxLineLength); expected', 'a row longer than 67108864 characters (the line-length limit); expected'],
    ['on 3 workers in a row (options.shardRetries is 2)', 'on 3 workers in a row (the retry limit is 2)'],
    ["options.preprocessing.classNames names class \"a\" twice", "the model's recorded preprocessing (classNames) names class \"a\" twice"],
    ['options.labelColumns must name exactly one column', '--label-column must name exactly one column'],
    ['options.weight must be 3 finite numbers', '--class-weight must be 3 finite numbers'],
    ['options.schedule.milestones must be strictly increasing', '--milestones must be strictly increasing'],
    ['hint: resume with the same training data, or give fit options.allowDataChange: true to continue', 'hint: resume with the same training data, or give --allow-data-change to continue'],
    ["hint: pass fit options.validation, or monitor 'trainLoss'", "hint: pass --validation-split, or monitor 'trainLoss'"],
    ['fit options.earlyStopping.minDelta must be a finite number >= 0', '--min-delta must be a finite number >= 0'],
  ])('%s', (library, cli) => {
    expect(usageWords(library)).toBe(cli);
  });

  it('names no flag the CLI lacks for the options it has no flag for', () => {
    for (const name of ['labelColumns', 'maxLineLength', 'shardRetries', 'preprocessing.classNames', 'workerHeapMb', 'header']) {
      const words = usageWords(`options.${name} is wrong`);
      for (const flag of words.match(/--[a-z-]+/g) ?? []) expect(ALL.has(flag), `${name}: ${words}`).toBe(true);
      expect(words).not.toMatch(/options\./);
    }
  });
});

describe('a string where a number is expected', () => {
  it('is shown quoted, as a string, by the library', () => {
    expect(() => new Trainer({ layers: [2, 2], lr: '0.1' as unknown as number })).toThrow('options.lr must be a finite number; got "0.1" (a string)');
    expect(() => new Trainer({ layers: [2, 2], momentum: 'true' as unknown as number })).toThrow('options.momentum must be a finite number; got "true" (a string)');
    expect(() => new Trainer({ layers: [2, 2], batchSize: '64' as unknown as number })).toThrow('options.batchSize must be a positive integer; got "64" (a string)');
    expect(() => new Trainer({ layers: [2, 2], clipGradNorm: '1' as unknown as number })).toThrow('options.clipGradNorm must be a finite number; got "1" (a string)');
    expect(() => new Trainer({ layers: [2, 2], schedule: { name: 'step', stepSize: '3' as unknown as number } }))
      .toThrow("options.schedule.stepSize must be a finite number; got '3' (a string)");
  });

  it('the CLI names the flag where the library names the option', async () => {
    const r = await runCli(['--class-weight', '1,2', '--layers', '784,10', '--epochs', '1']);
    expect(r.err).toBe('gradpool: --class-weight must be 10 finite numbers >= 0, one per class (layers ends in 10); got [1,2]\n');
    expect(r.code).toBe(2);
  });
});
