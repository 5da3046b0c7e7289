#!/usr/bin/env node
// The training script: `npm run train -- <flags>`, and the `gradpool` bin. See src/main/cli.ts.
import { main } from '../src/main/cli.js';

process.exitCode = await main(process.argv.slice(2));
