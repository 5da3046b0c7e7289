// The optimizer's flags: SGD's (--momentum, --dampening, --nesterov) and Adam's (--betas, --eps,
// --amsgrad) are refused with the other optimizer, naming the flag; the script's defaults that differ by
// optimizer (--lr: the SGD recipe's 0.05, torch's 0.001 for Adam; --weight-decay: 0.01 for AdamW) are
// written into the flags, so that the run saved for --resume records them.

import type { Command } from 'commander';
import { TRAINER_DEFAULTS } from '../main/index.js';
import type { Flags } from './program.js';
import { UsageError } from './usage-error.js';

const SGD_FLAGS = ['momentum', 'dampening', 'nesterov'] as const;
const ADAM_FLAGS = ['betas', 'eps', 'amsgrad'] as const;
/** AdamW's weight_decay default, torch.optim.AdamW's. */
const ADAMW_WEIGHT_DECAY = 1e-2;

const flagName = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

export function optimizerFlags(program: Command, f: Flags): Flags {
  const given = (k: keyof Flags): boolean => program.getOptionValueSource(k) === 'cli';
  const sgd = f.optimizer === 'sgd';
  const wrong = (sgd ? ADAM_FLAGS : SGD_FLAGS).filter(given);
  if (wrong.length > 0) {
    throw new UsageError(sgd
      ? `${wrong.map(flagName).join(', ')} ${wrong.length > 1 ? 'are options' : 'is an option'} of Adam and AdamW; add --optimizer adam or --optimizer adamw`
      : `${wrong.map(flagName).join(', ')} ${wrong.length > 1 ? 'are options' : 'is an option'} of SGD, not of --optimizer ${f.optimizer}` +
        (wrong.includes('momentum') ? "; Adam's counterpart is --betas's first value" : ''));
  }
  if (sgd) return f;
  return {
    ...f,
    lr: given('lr') ? f.lr : TRAINER_DEFAULTS.lr,
    weightDecay: given('weightDecay') || f.optimizer === 'adam' ? f.weightDecay : ADAMW_WEIGHT_DECAY,
  };
}
