#!/usr/bin/env node
// The training script: `npm run train -- <flags>`, and the `gradpool` bin. See src/main/cli.ts.
import { main } from '../src/cli/train.js';

process.exitCode = await main(process.argv.slice(2));
