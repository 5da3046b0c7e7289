#!/usr/bin/env node
// The `gradpool` command: `gradpool tune ...` runs the worker tuner, `gradpool plot ...` draws a
// --metrics file's learning curves, anything else trains.
import { plotMain } from '../src/cli/plot.js';
import { main } from '../src/cli/train.js';
import { tuneMain } from '../src/cli/tune.js';

const commands: Record<string, (argv: string[]) => Promise<number>> = { tune: tuneMain, plot: plotMain };
const argv = process.argv.slice(2);
const command = commands[argv[0]];
process.exitCode = command !== undefined ? await command(argv.slice(1)) : await main(argv);
