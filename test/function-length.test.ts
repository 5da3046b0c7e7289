// No function longer than MAX_LINES: every function, method, accessor, constructor and arrow of the
// git-tracked TypeScript in src/, scripts/ and wasm/, measured from its first line to its last on the
// compiler's own syntax tree. A long function is split into named steps; only a declarative table (a list
// of flags, a layout) may stay long, and then it is listed in ALLOWED with the reason.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const MAX_LINES = 80;

/** 'file name' of the functions that may be longer: declarative tables only, each with why. */
const ALLOWED: Record<string, string> = {
  // e.g. 'src/cli/program.ts buildProgram': 'a table of commander flags, one per line',
};

const root = fileURLToPath(new URL('..', import.meta.url));

function trackedTypeScript(): string[] {
  const out = execFileSync('git', ['ls-files', '-z', '--', 'src', 'scripts', 'wasm'], { cwd: root, encoding: 'utf8' });
  return out.split('\0').filter((f) => f.endsWith('.ts'));
}

/** The name a reader finds a function by: its own, or that of the variable or property holding it. */
function nameOf(node: ts.SignatureDeclaration): string {
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const holder = ts.isVariableDeclaration(node.parent) || ts.isPropertyAssignment(node.parent) || ts.isPropertyDeclaration(node.parent)
    ? node.parent.name
    : undefined;
  const name = node.name ?? holder;
  return name === undefined ? '(anonymous)' : name.getText();
}

/** Every function of `file` longer than MAX_LINES, as 'file:line name: n lines'. */
function longFunctions(file: string, text: string): { key: string; where: string }[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: { key: string; where: string }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body !== undefined) {
      const first = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const last = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = last - first + 1;
      const name = nameOf(node);
      if (lines > MAX_LINES) found.push({ key: `${file} ${name}`, where: `${file}:${first + 1} ${name}: ${lines} lines` });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('function length', () => {
  const files = trackedTypeScript();

  it('walks the TypeScript of src/, scripts/ and wasm/', () => {
    expect(files).toEqual(expect.arrayContaining(['src/main/trainer.ts', 'src/cli/program.ts', 'scripts/bench.ts', 'wasm/kernels.ts']));
  });

  it(`has no function over ${MAX_LINES} lines but the declarative tables allowed`, () => {
    const long = files.flatMap((f) => longFunctions(f, readFileSync(`${root}${f}`, 'utf8')));
    expect(long.filter((l) => !(l.key in ALLOWED)).map((l) => l.where)).toEqual([]);
    // An entry whose function is gone or now short is removed, so that the list stays the exceptions.
    expect(Object.keys(ALLOWED).filter((key) => !long.some((l) => l.key === key))).toEqual([]);
  });

  it(`measures a function from its first line to its last: ${MAX_LINES} lines pass, ${MAX_LINES + 1} fail`, () => {
    const body = (n: number): string => Array.from({ length: n - 2 }, (_, i) => `  x += ${i};`).join('\n');
    const text = `let x = 0;\nfunction fits() {\n${body(MAX_LINES)}\n}\nconst tooLong = () => {\n${body(MAX_LINES + 1)}\n};\n` +
      `class C {\n  method() {\n${body(MAX_LINES + 1)}\n  }\n}\n`;
    expect(longFunctions('x.ts', text).map((l) => l.where)).toEqual([
      `x.ts:${MAX_LINES + 2} tooLong: ${MAX_LINES + 1} lines`,
      `x.ts:${2 * MAX_LINES + 4} method: ${MAX_LINES + 1} lines`,
    ]);
  });
});
