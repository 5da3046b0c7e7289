#!/usr/bin/env node
// The `gradpool` command: `gradpool tune ...` runs the worker tuner, `gradpool export ...` exports a
// checkpoint, anything else trains.
import { exportMain } from '../src/cli/export.js';
import { main } from '../src/cli/train.js';
import { tuneMain } from '../src/cli/tune.js';

const argv = process.argv.slice(2);
process.exitCode = argv[0] === 'tune' ? await tuneMain(argv.slice(1))
  : argv[0] === 'export' ? await exportMain(argv.slice(1))
  : await main(argv);
