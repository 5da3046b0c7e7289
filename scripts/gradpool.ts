#!/usr/bin/env node
// The `gradpool` command: `gradpool tune ...` runs the worker tuner, `gradpool plot ...` draws a
// --metrics file's learning curves, `gradpool evaluate ...` and `gradpool predict ...` use a saved
// model, `gradpool export ...` exports one (ONNX, a PyTorch DDP script), anything else trains.
import { ignoreClosedOutput } from '../src/cli/closed-output.js';
import { evaluateMain } from '../src/cli/evaluate.js';
import { exportMain } from '../src/cli/export.js';
import { plotMain } from '../src/cli/plot.js';
import { predictMain } from '../src/cli/predict.js';
import { main } from '../src/cli/train.js';
import { tuneMain } from '../src/cli/tune.js';

const commands: Record<string, (argv: string[]) => Promise<number>> = { tune: tuneMain, plot: plotMain, evaluate: evaluateMain, predict: predictMain, export: exportMain };
ignoreClosedOutput();
const argv = process.argv.slice(2);
const command = commands[argv[0]];
process.exitCode = command !== undefined ? await command(argv.slice(1)) : await main(argv);
