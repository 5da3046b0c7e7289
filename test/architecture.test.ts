// The layout the README describes, checked on the import graph (madge, type-only imports included):
// no import cycle anywhere in src/; the library (src/main) and the worker (src/worker) meet only in the
// shared core (src/shared); the CLI (src/cli) uses the library through its public API alone; the
// library's top level holds only its API files, the rest in one folder per concept (docs/design.md).

import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import madge from 'madge';
import { describe, expect, it } from 'vitest';

const src = fileURLToPath(new URL('../src/', import.meta.url));
const graph = madge(src, { fileExtensions: ['ts'], detectiveOptions: { ts: { skipTypeImports: false } } });

/** Every import edge 'from -> to' of the given folder that breaks `allowed`. */
async function edges(from: string, allowed: (to: string) => boolean): Promise<string[]> {
  const deps = (await graph).obj();
  return Object.entries(deps)
    .filter(([file]) => file.startsWith(from))
    .flatMap(([file, tos]) => tos.filter((to) => !allowed(to)).map((to) => `${file} -> ${to}`));
}

describe('the source layout', () => {
  it('has no import cycle in src/', async () => {
    expect((await graph).circular()).toEqual([]);
  });

  it('keeps the library from importing the worker or the CLI', async () => {
    expect(await edges('main/', (to) => to.startsWith('main/') || to.startsWith('shared/'))).toEqual([]);
  });

  it('keeps the worker from importing the library or the CLI', async () => {
    expect(await edges('worker/', (to) => to.startsWith('worker/') || to.startsWith('shared/'))).toEqual([]);
  });

  it('keeps the shared core to itself', async () => {
    expect(await edges('shared/', (to) => to.startsWith('shared/'))).toEqual([]);
  });

  it('has the CLI use the library only through its public API', async () => {
    expect(await edges('cli/', (to) => to.startsWith('cli/') || to === 'main/index.ts')).toEqual([]);
  });

  it('keeps only the API at the library\'s top level, every other module in a concept\'s folder', () => {
    const top = readdirSync(`${src}main`, { withFileTypes: true });
    expect(top.filter((e) => !e.isDirectory()).map((e) => e.name).sort()).toEqual(['errors.ts', 'index.ts', 'trainer.ts']);
    expect(top.filter((e) => e.isDirectory()).map((e) => e.name).sort()).toEqual(
      ['checkpoint', 'core', 'data', 'export', 'loaders', 'options', 'reporting', 'system', 'tensorboard', 'tune']);
  });

  it('has no module in the library import its public barrel', async () => {
    expect(await edges('main/', (to) => to !== 'main/index.ts')).toEqual([]);
  });
});
