// What a Trainer holds is given back by close() (issue 14, row 12): Trainers made and closed in one
// process run from source by the tsx command from another folder, as `npx tsx my-script.ts` runs a
// user's script, leave the file descriptors and the child processes as they were. Counted from /proc,
// independently of the code.

import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-resources-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('resources', () => {
  it('keeps file descriptors and child processes flat over 10 Trainers made, trained and closed under tsx', () => {
    const script = join(dir, 'many-trainers.mts');
    writeFileSync(script, `
      import { readdirSync, readFileSync } from 'node:fs';
      import { Trainer } from '${pathToFileURL(resolve('src/main/index.ts')).href}';
      const openFiles = () => readdirSync('/proc/self/fd').length;
      // this process's children, with their state (Z: a zombie no one waited for)
      const children = () => readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).flatMap((p) => {
        try {
          const stat = readFileSync('/proc/' + p + '/stat', 'utf8');
          const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          return Number(ppid) === process.pid ? [p + ' ' + state] : [];
        } catch {
          return [];
        }
      });
      const data = { x: new Float32Array(40).map((_, i) => i / 40), y: Int32Array.from({ length: 10 }, (_, i) => i % 3) };
      const cycle = async () => {
        const t = new Trainer({ layers: [4, 3], workers: 2 });
        await t.fit(data);
        await t.close();
      };
      await cycle(); // whatever is made once per process is made here
      const before = { fds: openFiles(), children: children() };
      for (let i = 0; i < 10; i++) await cycle();
      console.log(JSON.stringify({ before, after: { fds: openFiles(), children: children() } }));
    `);
    const tsx = join(createRequire(import.meta.url).resolve('tsx'), '../cli.mjs');
    // From a folder outside the package, as a user's own project is (in the package's own, tsx did not leak).
    const r = spawnSync(process.execPath, [tsx, script], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const { before, after } = JSON.parse(r.stdout);
    // Before, each worker thread loaded tsx: about 12 descriptors and a zombie esbuild process per thread.
    expect(after.fds, 'open file descriptors').toBeLessThanOrEqual(before.fds + 2);
    expect(after.children, 'child processes').toEqual(before.children);
  }, 60_000);
});
