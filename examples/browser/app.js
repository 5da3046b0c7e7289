// The page's logic: a 28 x 28 drawing pad (drawn 10 times larger) whose pixels, ink 1 on 0 as in the
// bundled MNIST digits, go as they are into model.onnx (exported by gradpool, input 'input' (1, 784),
// output 'probabilities' (1, 10)), run by onnxruntime-web's WebAssembly build, served from node_modules.

import * as ort from './ort/ort.wasm.min.mjs';

const SIZE = 28;
const SCALE = 10;
const CLASSES = 10;
/** Brush radius in grid pixels: full ink within RADIUS - 0.5, fading to none at RADIUS + 0.5. */
const RADIUS = 1.5;

// One thread: then no SharedArrayBuffer is needed, and the page works without cross-origin isolation
// (COOP/COEP headers) on any static server. The .wasm and its loader come from the same folder as ort.
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;

const pixels = new Float32Array(SIZE * SIZE); // (28, 28), row-major, in [0, 1]
const canvas = document.getElementById('pad');
const ctx = canvas.getContext('2d');
const status = document.getElementById('status');
const prediction = document.getElementById('prediction');
const bars = document.getElementById('bars');

const rows = Array.from({ length: CLASSES }, (_, k) => {
  const li = document.createElement('li');
  li.dataset.digit = String(k);
  li.innerHTML = `<span class="digit">${k}</span><span class="track"><span class="fill"></span></span><span class="value"></span>`;
  bars.append(li);
  return { li, fill: li.querySelector('.fill'), value: li.querySelector('.value') };
});

function render() {
  const image = ctx.createImageData(SIZE, SIZE);
  for (let i = 0; i < pixels.length; i++) {
    const shade = Math.round(255 * (1 - pixels[i])); // ink dark on white
    image.data.set([shade, shade, shade, 255], 4 * i);
  }
  // Drawn at 28 x 28 and scaled up without smoothing: each grid pixel is a 10 x 10 square.
  const small = new OffscreenCanvas(SIZE, SIZE);
  small.getContext('2d').putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, SIZE * SCALE, SIZE * SCALE);
}

function show(probabilities) {
  let best = 0;
  for (let k = 1; k < CLASSES; k++) if (probabilities[k] > probabilities[best]) best = k;
  rows.forEach((row, k) => {
    const p = probabilities[k];
    row.li.dataset.probability = String(p);
    row.li.classList.toggle('best', k === best);
    row.fill.style.width = `${(100 * p).toFixed(2)}%`;
    row.value.textContent = `${(100 * p).toFixed(1)}%`;
  });
  prediction.textContent = String(best);
  prediction.dataset.digit = String(best);
}

const session = ort.InferenceSession.create('model.onnx', { executionProviders: ['wasm'] });

// One inference at a time; a drawing that changes meanwhile is classified again when it ends.
let running = null;
let dirty = false;
async function classify() {
  dirty = true;
  if (running !== null) return running;
  running = (async () => {
    try {
      const s = await session;
      while (dirty) {
        dirty = false;
        const input = new ort.Tensor('float32', Float32Array.from(pixels), [1, SIZE * SIZE]);
        const out = await s.run({ input });
        if (out.probabilities?.data.length !== CLASSES) throw new Error(`expected 'probabilities' of ${CLASSES} values`);
        show(out.probabilities.data);
      }
    } catch (err) {
      dirty = false;
      status.textContent = `model.onnx is not a digit classifier with input 'input' (1, ${SIZE * SIZE}): ${err.message}`;
      status.classList.add('error');
    } finally {
      running = null;
    }
  })();
  return running;
}

function ink(gx, gy) {
  for (let y = Math.floor(gy - RADIUS - 1); y <= Math.ceil(gy + RADIUS + 1); y++) {
    for (let x = Math.floor(gx - RADIUS - 1); x <= Math.ceil(gx + RADIUS + 1); x++) {
      if (x < 0 || y < 0 || x >= SIZE || y >= SIZE) continue;
      const d = Math.hypot(x + 0.5 - gx, y + 0.5 - gy);
      const v = Math.min(1, Math.max(0, RADIUS + 0.5 - d));
      if (v > pixels[y * SIZE + x]) pixels[y * SIZE + x] = v;
    }
  }
}

let last = null;
/** The pointer in grid pixels: (0, 0) is the top left corner of the drawing area, inside the border. */
function gridPoint(event) {
  const r = canvas.getBoundingClientRect();
  const x = event.clientX - r.left - canvas.clientLeft;
  const y = event.clientY - r.top - canvas.clientTop;
  return [(x / canvas.clientWidth) * SIZE, (y / canvas.clientHeight) * SIZE];
}
function stroke(event) {
  const p = gridPoint(event);
  const from = last ?? p;
  const steps = Math.max(1, Math.ceil(4 * Math.hypot(p[0] - from[0], p[1] - from[1])));
  for (let s = 1; s <= steps; s++) ink(from[0] + ((p[0] - from[0]) * s) / steps, from[1] + ((p[1] - from[1]) * s) / steps);
  last = p;
  render();
  classify();
}
canvas.addEventListener('pointerdown', (e) => { e.preventDefault(); canvas.setPointerCapture(e.pointerId); last = null; stroke(e); });
canvas.addEventListener('pointermove', (e) => { if (last !== null) stroke(e); });
canvas.addEventListener('pointerup', () => { last = null; });
canvas.addEventListener('pointercancel', () => { last = null; });
document.getElementById('clear').addEventListener('click', () => { pixels.fill(0); render(); classify(); });

render();
session.then(
  async () => { status.textContent = 'Model loaded: draw with the mouse, a finger or a pen.'; await classify(); },
  (err) => { status.textContent = `Could not load model.onnx: ${err.message}`; status.classList.add('error'); },
);

// For scripts and tests: put 784 values in [0, 1] on the pad, read them back, wait for the bars.
window.demo = {
  ready: session.then(() => classify()),
  async setPixels(values) {
    if (values.length !== SIZE * SIZE) throw new RangeError(`setPixels: expected ${SIZE * SIZE} values; got ${values.length}`);
    pixels.set(values);
    render();
    await classify();
  },
  pixels: () => Array.from(pixels),
  idle: async () => { while (running !== null) await running; },
};
