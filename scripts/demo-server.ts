// The browser example's static server (examples/browser/, `npm run demo`): node:http serving a fixed
// table of files, the page's own, the model, and the onnxruntime-web files the page loads from
// node_modules. A URL is looked up in the table as it is, never joined to a folder, so no request can
// reach another file (no path traversal, no listing). No COOP/COEP headers: the page runs ort with one
// thread, which needs no SharedArrayBuffer and so no cross-origin isolation.

import { createReadStream, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The page's folder (the demo runs from a clone, with tsx: examples/ is not in the npm package). */
export const PAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'browser');
/** Where `npm run demo` keeps the model it exports. */
export const DEMO_MODEL = join(PAGE_DIR, 'model.onnx');
/** ort.wasm.min.mjs is onnxruntime-web's WebAssembly-only build (no WebGPU/WebGL); it loads the other two. */
export const ORT_FILES = ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.png': 'image/png',
};

/** URL path -> file, the whole of what the server serves. */
export function demoFiles(model: string): Map<string, string> {
  // The package exports its .wasm by name (not its package.json): its folder is onnxruntime-web/dist.
  const ortDist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
  return new Map([
    ['/', join(PAGE_DIR, 'index.html')],
    ['/index.html', join(PAGE_DIR, 'index.html')],
    ['/app.js', join(PAGE_DIR, 'app.js')],
    ['/style.css', join(PAGE_DIR, 'style.css')],
    ['/model.onnx', resolve(model)],
    ...ORT_FILES.map((f): [string, string] => [`/ort/${f}`, join(ortDist, f)]),
  ]);
}

export interface DemoServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Serves the page with `model` as its model.onnx on host:port (port 0: any free one). */
export async function startDemoServer(options: { model: string; port?: number; host?: string }): Promise<DemoServer> {
  const files = demoFiles(options.model);
  const server = createServer((req, res) => {
    const send = (code: number, text: string): void => {
      res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${text}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'only GET and HEAD');
    const path = (req.url ?? '/').split('?')[0];
    const file = files.get(path);
    let size: number;
    try {
      if (file === undefined) throw new Error('not served');
      size = statSync(file).size;
    } catch {
      return send(404, `not found: ${path}`);
    }
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Length': size,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).on('error', () => res.destroy()).pipe(res);
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, host, () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host === '127.0.0.1' ? 'localhost' : host}:${port}/`,
    server,
    close: () => new Promise((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}
