// The ```sh blocks of the README and of each file in docs/ as a new user runs them, in order, each file in
// its own scratch folder (the repository's examples/ beside it): `npm run <script>` as package.json
// defines it (scripts/train.ts, gradpool.ts, tune-workers.ts) and `npx gradpool` as its bin (the command's
// main run in this process, for speed: test/model-commands.test.ts spawns the script itself), `torchrun`
// as Debian's torch runs it. Small data stands in for long runs (fewer epochs and windows, a process
// fewer); commands on the user's own files are listed here, each checked to be in one of those files. So
// a command that reads a file no earlier command wrote, a flag or script that does not exist, or a file
// moved under examples/ fails here. (test/pytorch-ddp.test.ts runs torchrun with 2 processes.)

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluateMain } from '../src/cli/evaluate.js';
import { exportMain } from '../src/cli/export.js';
import { plotMain } from '../src/cli/plot.js';
import { predictMain } from '../src/cli/predict.js';
import { main } from '../src/cli/train.js';
import { tuneMain } from '../src/cli/tune.js';
import { runCommand } from './helpers.js';
import { hasTorch, PYTHON, requireTorch, skipWithoutTorch, torchrunLocal } from './torch.js';

const root = resolve('.');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
/** docs/*.md, by name: the reference, whose commands run the same way. */
const docs = new Map(readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => [`docs/${f}`, readFileSync(join(root, 'docs', f), 'utf8')]));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
/** scripts/gradpool.ts's commands; anything else trains (scripts/train.ts). */
const COMMANDS: Record<string, (argv: string[], out: NodeJS.WriteStream) => Promise<number>> = {
  tune: tuneMain, plot: plotMain, evaluate: evaluateMain, predict: predictMain, export: exportMain,
};
const scratch = mkdtempSync(join(tmpdir(), 'gradpool-readme-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A fresh folder for one file's commands, the repository's examples/ beside them. */
function freshDir(name: string): string {
  const d = mkdtempSync(join(scratch, `${name.replace(/[^A-Za-z0-9.-]/g, '-')}-`));
  symlinkSync(join(root, 'examples'), join(d, 'examples'));
  return d;
}

/** Commands not run here, each with the reason: set-up and the suite itself, and the user's own files. Each
 *  is in the README or in a file of docs/. */
const NOT_RUN: Record<string, string> = {
  'npm ci': 'the set-up this suite runs in',
  'npm test': 'this suite',
  'npm run bench -- --vs-pytorch --write-docs': 'the benchmark: minutes of a quiet machine, figures no test asserts',
  'PATH=/path/to/node26/bin:$PATH npm run bench -- --vs-pytorch --write-docs': 'the benchmark, under another Node',
  'npm run demo': 'serves until stopped: test/browser-demo.test.ts runs it in a real browser',
  "npm run train -- --data csv --train sales.csv --label-column churned --ignore-columns customer_id --layers 12,32,2": "the user's own file",
  'npm run train -- --data csv --train tags.csv --label-column a,b,c --loss bce-with-logits --layers 20,32,3': "the user's own file",
  'npm run train -- --data idx --train-images train-images-idx3-ubyte.gz --train-labels train-labels-idx1-ubyte.gz --test-images t10k-images-idx3-ubyte.gz --test-labels t10k-labels-idx1-ubyte.gz': "the user's own files (torchvision's download)",
  'npm run train -- --layers 784,128,10 --init torch.safetensors': "a file the user's PyTorch wrote",
};

/** Small data for long runs: the flags a command gets instead, or added. */
const SMALLER: [RegExp, string][] = [
  [/^npm run train$/, 'npm run train -- --epochs 1'],
  [/^npm run train -- --optimizer (\w+)$/, 'npm run train -- --optimizer $1 --epochs 1'],
  // one epoch past the iris run's 40, and a process fewer: 2 cores, and torch's start-up
  [/--nproc_per_node 4 (.*) --epochs 100/, '--nproc_per_node 1 $1 --epochs 41'],
  [/^(npx gradpool --resume ddp\.safetensors) --epochs 20$/, '$1 --epochs 1'],
  [/^npm run tune -- (.*)$/, 'npm run tune -- $1 --windows 1 --window-seconds 0.05'],
];

/** The commands of a Markdown file's ```sh blocks, in order: continued lines joined, comments dropped. */
function shCommands(text: string): string[] {
  const commands: string[] = [];
  for (const [, block] of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const lines = block.replace(/\\\n\s*/g, '').split('\n');
    for (const line of lines) {
      const code = line.replace(/(^|\s)#.*$/, '').trim();
      if (code !== '') commands.push(...code.split(/\s+&&\s+/).map((c) => c.replace(/\s+/g, ' ')));
    }
  }
  return commands;
}

/** A command's words (single quotes kept together, as a shell would). */
function words(command: string): string[] {
  return [...command.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]);
}

type Run = { main: (argv: string[], out: NodeJS.WriteStream) => Promise<number>; argv: string[] } | { spawn: string[] };

/** What runs for a command: package.json's script or bin (its command's main), or torchrun as Debian's torch runs it. */
function runOf(command: string, dir: string): Run {
  const [tool, ...rest] = words(command);
  let argv: string[];
  if (tool === 'npm' && rest[0] === 'run') {
    const script = pkg.scripts[rest[1]];
    if (script === undefined) throw new Error(`${command}: package.json has no script '${rest[1]}'`);
    const m = /^node --import tsx scripts\/(train|gradpool|tune-workers)\.ts(.*)$/.exec(script);
    if (m === null) throw new Error(`${command}: the script '${script}' does not run scripts/train.ts, scripts/gradpool.ts or scripts/tune-workers.ts`);
    argv = [...words(m[2]), ...(rest[2] === '--' ? rest.slice(3) : rest.slice(2))];
    if (m[1] === 'train') return { main, argv };
    if (m[1] === 'tune-workers') return { main: tuneMain, argv };
  } else if (tool === 'npx' && rest[0] === 'gradpool') {
    expect(pkg.bin.gradpool).toBe('./dist/scripts/gradpool.js'); // the build of scripts/gradpool.ts
    argv = rest.slice(1);
  } else if (tool === 'torchrun') {
    return { spawn: [PYTHON, '-m', 'torch.distributed.run', '--log_dir', join(dir, 'torch-logs'), ...rest] };
  } else {
    throw new Error(`${command}: a README command this test does not know how to run (${tool})`);
  }
  const command_ = COMMANDS[argv[0]];
  return command_ === undefined ? { main, argv } : { main: command_, argv: argv.slice(1) };
}

/** Runs it in the folder `dir`: exit code and output. */
async function run(r: Run, dir: string): Promise<{ code: number | null; out: string; err: string }> {
  if ('spawn' in r) {
    const [exe, module, torchrun, ...args] = r.spawn;
    const p = spawnSync(exe, [module, torchrun, ...(await torchrunLocal()), ...args], { cwd: dir, encoding: 'utf8', timeout: 180_000 });
    return { code: p.status, out: p.stdout, err: p.stderr };
  }
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    return await runCommand(r.main, r.argv);
  } finally {
    process.chdir(cwd);
  }
}

/** Runs a file's commands in order in a fresh folder, as SMALLER makes them, each to exit 0; returns the folder and what ran. */
async function runAll(name: string, commands: string[]): Promise<{ dir: string; ran: string[] }> {
  const dir = freshDir(name);
  const ran: string[] = [];
  for (const command of commands) {
    if (NOT_RUN[command] !== undefined) continue;
    if (command.startsWith('torchrun') && skipWithoutTorch) {
      console.warn(`test/readme.test.ts: skipped without torch: ${command}`);
      break; // what follows continues its run
    }
    if (command.startsWith('torchrun')) requireTorch();
    const small = SMALLER.reduce((c, [from, to]) => c.replace(from, to), command);
    const r = await run(runOf(small, dir), dir);
    expect(r.code, `${name}: ${small}\n${r.out}\n${r.err}`).toBe(0);
    ran.push(small);
  }
  return { dir, ran };
}

describe("the README's command blocks", () => {
  const commands = shCommands(readme);

  it('lists every command it does not run, and each of those is in the README or in docs/', () => {
    expect(commands.length).toBeGreaterThan(10);
    const everywhere = [...commands, ...[...docs.values()].flatMap(shCommands)];
    for (const c of Object.keys(NOT_RUN)) expect(everywhere, `not in the README or docs/ any more: ${c}`).toContain(c);
  });

  it('run in order in a fresh folder, each reading only what the repository or an earlier command holds', async () => {
    const { dir, ran } = await runAll('README.md', commands);
    // what the blocks promise they write
    for (const f of ['model.safetensors', 'iris.safetensors', 'metrics.jsonl', 'predictions.csv', 'curves.svg', 'iris.onnx', 'gradpool-tune.json', 'train_ddp.py']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    if (hasTorch) expect(existsSync(join(dir, 'ddp.safetensors'))).toBe(true);
    expect(ran.length).toBeGreaterThanOrEqual(8);
  }, 600_000);

  it('prints no npm warning (no unknown .npmrc key)', () => {
    const r = spawnSync('npm', ['run', 'plot', '--', '--help'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stderr).not.toMatch(/npm warn/i);
  });
});

describe("the command blocks of docs/", () => {
  it('holds the reference files the README links to', () => {
    for (const [, link] of readme.matchAll(/\]\((docs\/[a-z-]+\.md)[#)]/g)) {
      if (link !== 'docs/performance.md') expect([...docs.keys()], `README links to ${link}`).toContain(link); // written by the bench
    }
  });

  for (const [name, text] of docs) {
    const commands = shCommands(text);
    if (commands.length === 0) continue;
    it(`${name}: run in order in a fresh folder`, async () => {
      const { ran } = await runAll(name, commands);
      expect(ran.length + commands.filter((c) => NOT_RUN[c] !== undefined).length).toBe(commands.length);
    }, 300_000);
  }
});
