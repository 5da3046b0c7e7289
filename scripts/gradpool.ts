#!/usr/bin/env node
// The `gradpool` command: `gradpool tune ...` runs the worker tuner, anything else trains.
import { main } from '../src/cli/train.js';
import { tuneMain } from '../src/cli/tune.js';

const argv = process.argv.slice(2);
process.exitCode = argv[0] === 'tune' ? await tuneMain(argv.slice(1)) : await main(argv);
