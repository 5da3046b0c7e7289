#!/usr/bin/env node
// The worker tuner: `npm run tune -- <flags>`, and `gradpool tune`. See src/cli/tune.ts.
import { ignoreClosedOutput } from '../src/cli/closed-output.js';
import { tuneMain } from '../src/cli/tune.js';

ignoreClosedOutput();

process.exitCode = await tuneMain(process.argv.slice(2));
