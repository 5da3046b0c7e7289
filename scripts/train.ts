#!/usr/bin/env node
// The training script: `npm run train -- <flags>` (the `gradpool` bin is scripts/gradpool.ts). See src/cli/train.ts.
import { ignoreClosedOutput } from '../src/cli/closed-output.js';
import { main } from '../src/cli/train.js';

ignoreClosedOutput();

process.exitCode = await main(process.argv.slice(2));
