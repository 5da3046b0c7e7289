#!/usr/bin/env node
// The worker tuner: `npm run tune -- <flags>`, and `gradpool tune`. See src/main/tune-cli.ts.
import { tuneMain } from '../src/cli/tune.js';

process.exitCode = await tuneMain(process.argv.slice(2));
