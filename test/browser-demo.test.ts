// The browser example (examples/browser/) as a new user runs it: `npm run demo` (scripts/demo.ts) trains
// and exports the bundled-digits model, serves the page, and Debian's chromium, driven by playwright-core,
// draws on it. The page's probabilities are compared with trainer.predict on the checkpoint the demo kept
// (within 1e-5), for three test digits put on the pad and for a real mouse stroke. Needs /usr/bin/chromium
// (.ci/run installs it); skipped, saying so, where it is missing, but never under CI=true.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoServer, type DemoServer } from '../scripts/demo-server.js';
import { loadMnist, Trainer } from '../src/main/index.js';
import { maxAbsDiff } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'];
const skipReason = existsSync(CHROMIUM) ? null : `skipped: ${CHROMIUM} is not installed (apt-get install chromium; .ci/run does)`;
if (skipReason !== null && process.env.CI === 'true') throw new Error(`CI=true but the browser test cannot run: ${skipReason}`);
const named = (title: string): string => (skipReason === null ? title : `${title} (${skipReason})`);

const dir = mkdtempSync(join(tmpdir(), 'gradpool-demo-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `npm run demo`'s script; resolves with its URL once it serves, and everything it printed. */
function startDemo(args: string[]): Promise<{ url: string; out: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  return new Promise((ok, fail) => {
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const m = / on (http:\/\/localhost:\d+\/)/.exec(out);
      if (m !== null) ok({ url: m[1], out, child });
    });
    child.stderr?.on('data', (b: Buffer) => { err += b.toString(); });
    child.on('exit', (code) => fail(new Error(`the demo exited (${code}) before serving:\n${out}${err}`)));
  });
}

/** A raw GET (fetch() would resolve '..' itself): the status and the body. */
function rawGet(url: string, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const req = request(url, { path, method }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => { body += b.toString(); });
      res.on('end', () => ok({ status: res.statusCode as number, body }));
    });
    req.on('error', fail).end();
  });
}

const model = join(dir, 'model.onnx');
let demo: { url: string; out: string };
let trainer: Trainer;
let browser: Browser;
let page: Page;
const requests: string[] = [];
const pageErrors: string[] = [];

/** The page's hook for scripts (examples/browser/app.js: window.demo); the test's tsconfig has no DOM types. */
interface Hook {
  demo: { ready: Promise<void>; setPixels(values: number[]): Promise<void>; pixels(): number[]; idle(): Promise<void> };
}

/** What the page shows: its predicted digit and each bar's probability. */
async function shown(): Promise<{ digit: number; probabilities: number[]; texts: string[] }> {
  await page.evaluate(() => (globalThis as unknown as Hook).demo.idle());
  const probabilities = await page.$$eval('#bars li', (li) => li.map((l) => Number((l as unknown as { dataset: Record<string, string> }).dataset.probability)));
  const texts = await page.$$eval('#bars li .value', (v) => v.map((e) => e.textContent ?? ''));
  return { digit: Number(await page.textContent('#prediction')), probabilities, texts };
}

describe.skipIf(skipReason !== null)('the browser example in chromium', () => {
  beforeAll(async () => {
    // The browser starts while the demo trains.
    const { chromium } = await import('playwright-core');
    [demo, browser] = await Promise.all([startDemo(['--model', model, '--port', '0']), chromium.launch({ executablePath: CHROMIUM, args: ARGS })]);
    trainer = await Trainer.load(join(dir, 'model.safetensors'), { workers: 1 });
    page = await browser.newPage();
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('response', (r) => { if (r.status() >= 400) pageErrors.push(`${r.status()} ${r.url()}`); });
    await page.goto(demo.url);
    await page.evaluate(() => (globalThis as unknown as Hook).demo.ready);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await trainer?.close();
  });

  it(named('`npm run demo` trains and exports the bundled-digits model when there is none, and serves that file'), async () => {
    expect(JSON.parse(readFileSync('package.json', 'utf8')).scripts.demo).toBe('node --import tsx scripts/demo.ts');
    expect(demo.out).toContain(`no ${model} yet: training 784-64-10 on the bundled MNIST digits`);
    const accuracy = Number(/test accuracy ([\d.]+)%/.exec(demo.out)?.[1]);
    expect(accuracy).toBeGreaterThan(85);
    const onnx = onnxProto.onnx.ModelProto.decode(readFileSync(model));
    expect(Number(onnx.opsetImport[0].version)).toBe(17);
    const served = Buffer.from(await (await fetch(new URL('model.onnx', demo.url))).arrayBuffer());
    expect(served.equals(readFileSync(model))).toBe(true);
  });

  it(named("shows trainer.predict's probabilities (within 1e-5) and class for three test digits put on the pad"), async () => {
    const test = loadMnist().test;
    const rows = [2, 5, 8].map((digit) => test.y.indexOf(digit) + 3); // the fourth test image of each
    for (const row of rows) {
      const x = test.x.subarray(row * 784, (row + 1) * 784);
      await page.evaluate((v) => (globalThis as unknown as Hook).demo.setPixels(v), Array.from(x));
      const ours = await trainer.predict(x);
      const { digit, probabilities, texts } = await shown();
      const diff = maxAbsDiff(probabilities, ours);
      expect(diff, `test row ${row} (a ${test.y[row]}): max |diff| ${diff}`).toBeLessThan(1e-5);
      expect(digit).toBe(ours.indexOf(Math.max(...ours)));
      expect(texts).toEqual(Array.from(ours, (p) => `${(100 * p).toFixed(1)}%`));
    }
  });

  it(named('inks the pixels under a mouse stroke and classifies them as trainer.predict does'), async () => {
    await page.click('#clear');
    const box = await page.locator('#pad').boundingBox();
    if (box === null) throw new Error('#pad is not visible');
    // A vertical stroke down the middle column (grid x = 14), from grid row 5 to row 23: a "1".
    const at = (gx: number, gy: number): [number, number] => [box.x + (gx / 28) * box.width, box.y + (gy / 28) * box.height];
    await page.mouse.move(...at(14, 5));
    await page.mouse.down();
    await page.mouse.move(...at(14, 23), { steps: 12 });
    await page.mouse.up();
    const { digit, probabilities } = await shown();
    const pixels = await page.evaluate(() => (globalThis as unknown as Hook).demo.pixels());
    const px = (x: number, y: number): number => pixels[y * 28 + x];
    for (let y = 6; y <= 22; y++) expect([px(13, y), px(14, y)], `row ${y}`).toEqual([1, 1]);
    for (let y = 0; y < 28; y++) for (const x of [0, 5, 10, 18, 27]) expect(px(x, y), `(${x}, ${y})`).toBe(0);
    const ours = await trainer.predict(Float32Array.from(pixels));
    expect(maxAbsDiff(probabilities, ours)).toBeLessThan(1e-5);
    expect(digit).toBe(ours.indexOf(Math.max(...ours)));
    if (process.env.GRADPOOL_SCREENSHOT !== undefined) await page.screenshot({ path: process.env.GRADPOOL_SCREENSHOT });
  });

  it(named('loads onnxruntime-web, its WebAssembly and the model from the local server only, without cross-origin isolation'), async () => {
    expect(pageErrors).toEqual([]);
    expect(requests.filter((u) => !u.startsWith(demo.url) && !u.startsWith('data:'))).toEqual([]);
    for (const f of ['ort/ort.wasm.min.mjs', 'ort/ort-wasm-simd-threaded.mjs', 'ort/ort-wasm-simd-threaded.wasm', 'model.onnx']) {
      expect(requests).toContain(new URL(f, demo.url).href);
    }
    expect(await page.evaluate(() => (globalThis as unknown as { crossOriginIsolated: boolean }).crossOriginIsolated)).toBe(false);
  });

  it(named('says on the page when model.onnx is not a digit classifier (784 pixels in, 10 probabilities out)'), async () => {
    const other = new Trainer({ layers: [784, 3], workers: 1 });
    const wrong = join(dir, 'three-classes.onnx');
    await other.exportOnnx(wrong).finally(() => other.close());
    const server = await startDemoServer({ model: wrong });
    const second = await browser.newPage();
    try {
      await second.goto(server.url);
      await second.evaluate(() => (globalThis as unknown as Hook).demo.ready);
      expect(await second.textContent('#status')).toBe("model.onnx is not a digit classifier with input 'input' (1, 784): expected 'probabilities' of 10 values");
      expect(await second.textContent('#prediction')).toBe('–');
    } finally {
      await second.close();
      await server.close();
    }
  });

  it(named('`npm run demo` again serves the model it has without training it again'), async () => {
    const before = statSync(model).mtimeMs;
    const again = await startDemo(['--model', model, '--port', '0']);
    again.child.kill();
    expect(again.out).not.toContain('training');
    expect(statSync(model).mtimeMs).toBe(before);
  });

  it(named('`npm run demo` exports a checkpoint whose ONNX file is missing instead of training over it'), async () => {
    const ckpt = join(dir, 'model.safetensors');
    const before = readFileSync(ckpt);
    rmSync(model);
    const again = await startDemo(['--model', model, '--port', '0']);
    again.child.kill();
    expect(again.out).not.toContain('training');
    expect(again.out).toContain(`exported ${ckpt} to ${model}`);
    expect(readFileSync(ckpt).equals(before)).toBe(true);
    const session = await ort.InferenceSession.create(model);
    const x = loadMnist().test.x.subarray(0, 784);
    const out = await session.run({ input: new ort.Tensor('float32', x, [1, 784]) });
    expect(maxAbsDiff(out.probabilities.data as Float32Array, await trainer.predict(x))).toBeLessThan(1e-5);
  });
});

describe("the browser example's server", () => {
  let server: DemoServer;
  beforeAll(async () => { server = await startDemoServer({ model: join(dir, 'absent.onnx') }); });
  afterAll(async () => { await server.close(); });

  it('serves the page and the onnxruntime-web files, with their types', async () => {
    const page = await rawGet(server.url, '/');
    expect(page.status).toBe(200);
    expect(page.body).toBe(readFileSync('examples/browser/index.html', 'utf8'));
    const wasm = await fetch(new URL('ort/ort-wasm-simd-threaded.wasm', server.url));
    expect([wasm.status, wasm.headers.get('content-type')]).toEqual([200, 'application/wasm']);
  });

  it('serves nothing outside its table: no path traversal, no other file of the repository or node_modules', async () => {
    for (const path of [
      // examples/serve-onnx.mjs is one folder up from the page, package.json two.
      '/../serve-onnx.mjs', '/%2e%2e/serve-onnx.mjs', '/..%2fserve-onnx.mjs', '/ort/../../serve-onnx.mjs', '/../../package.json',
      '/%2e%2e/%2e%2e/package.json', '/ort/..%2f..%2f..%2fpackage.json', '/../../node_modules/onnxruntime-web/dist/ort.min.mjs',
      '/package.json', '/node_modules/onnxruntime-web/package.json', '/ort/ort.min.mjs', '/examples/browser/app.js', '//etc/passwd',
      '/model.onnx',
    ]) {
      const r = await rawGet(server.url, path);
      expect(r.status, path).toBe(404);
    }
    expect((await rawGet(server.url, '/', 'POST')).status).toBe(405);
  });

  it('`npm run demo` refuses a bad --port, and a --model in a folder that does not exist before training', async () => {
    const run = (args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', ...args], { encoding: 'utf8', timeout: 30_000 })
      .then(() => ({ status: 0, stderr: '', stdout: '' }), (e: { code: number; stderr: string; stdout: string }) => ({ status: e.code, stderr: e.stderr, stdout: e.stdout }));
    const missing = join(dir, 'no-such-folder', 'model.onnx');
    const [port, folder] = await Promise.all([run(['--port', 'eighty']), run(['--model', missing])]);
    expect([port.status, port.stderr]).toEqual([2, "npm run demo: --port must be an integer from 0 to 65535; got 'eighty'\n"]);
    expect([folder.status, folder.stderr, folder.stdout]).toEqual([2, `npm run demo: --model: the folder of ${missing} does not exist; create it first\n`, '']);
  });
});
