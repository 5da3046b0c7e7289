// A gradpool checkpoint as one self-contained PyTorch script that continues its training under
// torchrun with DistributedDataParallel: the model as nn.Sequential, the loss with its options,
// torch.optim.SGD, Adam or AdamW with its options and the saved state (momentum buffer; moments and step
// count), the learning-rate scheduler advanced
// to the saved step, the same data files read with the recorded preprocessing, in gradpool's epoch order.
// PyTorch's DDP is the distributed engine for runs that outgrow one machine; gradpool does not grow one.

import { writeFileAtomic } from '../system/atomic-file.js';
import { GradpoolError } from '../errors.js';
import type { ResolvedOptions } from '../options/options.js';
import type { ResolvedPreprocessing } from '../data/preprocessing.js';
import { SCRIPT_BODY } from './pytorch-template.js';
import { isSoftmaxLoss, paramLayout, type Activation, type ModelConfig } from '../../shared/model.js';
import type { ScheduleSpec } from '../../shared/schedule.js';

/** The training split's files, as the training script's data flags name them. */
export type TrainingFiles =
  | { format: 'csv'; train: string; labelColumns: (string | number)[]; targets: 'index' | 'values' }
  | { format: 'idx'; images: string; labels: string };

export interface PytorchExport {
  /** The checkpoint the script continues from (it reads the weights, momentum and state there). */
  checkpoint: string;
  config: ModelConfig;
  options: ResolvedOptions;
  preprocessing: ResolvedPreprocessing | null;
  data: TrainingFiles;
  /** The rows held out for validation by the run, which the script leaves out as it did. */
  validationSplit?: { fraction: number; seed: number };
  /** Epochs in all: the saved run's last epoch. */
  epochs: number;
}

const MODULES: Record<Activation, string> = { relu: 'nn.ReLU()', tanh: 'nn.Tanh()', sigmoid: 'nn.Sigmoid()' };

/** The script's text. */
export function pytorchScript(x: PytorchExport): string {
  const { config, options: o, preprocessing: p } = x;
  const { layers } = config;
  if (x.data.format === 'idx' && !isSoftmaxLoss(config.loss)) {
    throw new GradpoolError(`IDX labels are class indices; loss '${config.loss}' takes (N, K) targets, which the script cannot read from them`);
  }
  const modules: string[] = [];
  for (let l = 0; l + 1 < layers.length; l++) {
    if (l > 0) modules.push(MODULES[config.activation]);
    modules.push(`nn.Linear(${layers[l]}, ${layers[l + 1]})`);
  }
  const clip = o.clipGradNorm === null ? 'None'
    : `dict(max_norm=${py(o.clipGradNorm)}, norm_type=${py(o.clipNormType)}, error_if_nonfinite=${py(o.errorIfNonfinite)})`;
  const csvData = x.data.format === 'csv' ? x.data : null;
  const lines = [
    '#!/usr/bin/env python3',
    `"""Continues the gradpool run saved in ${x.checkpoint} under PyTorch DistributedDataParallel.`,
    '',
    `Written by \`gradpool export ${x.checkpoint} --pytorch\`. One process per GPU (NCCL), or per CPU share (gloo):`,
    '',
    '    torchrun --redirects 1 --tee 1 --nproc_per_node 4 THIS_SCRIPT.py [--epochs E] [--max-steps S] [--out ddp.safetensors]',
    '',
    '(--redirects 1 --tee 1: Debian\'s torch 1.13 under Python 3.11 cannot map torchrun\'s default of 0.)',
    '',
    'It reads the weights, SGD\'s momentum buffer and the training state from the checkpoint, the training data',
    'from the files the run was trained on, and saves a checkpoint that gradpool loads (gradpool --resume).',
    '"""',
    'import argparse, csv, gzip, json, math, os, struct, sys, time, warnings',
    'import numpy as np',
    'import torch',
    'import torch.distributed as dist',
    'import torch.nn as nn',
    'import torch.nn.functional as F',
    'from torch.nn.parallel import DistributedDataParallel as DDP',
    'from torch.optim import lr_scheduler',
    '',
    `CHECKPOINT = ${py(x.checkpoint)}`,
    `EPOCHS = ${x.epochs}  # in all: the run's last epoch (gradpool's --resume --epochs n trains n more)`,
    `LAYERS = ${py(layers)}`,
    `PARAM_NAMES = ${py(paramLayout(layers).entries.map((e) => e.name))}`,
    `BATCH_SIZE = ${o.batchSize}`,
    `SHUFFLE = ${py(o.shuffle)}`,
    `SEED = ${o.seed}`,
    `REDUCTION = ${py(o.reduction)}`,
    `SCHEDULE_INTERVAL = ${py(o.scheduleInterval)}`,
    `CLIP = ${clip}  # torch.nn.utils.clip_grad_norm_ on the averaged gradient`,
    `ON_NONFINITE = ${py(o.onNonfinite)}  # a step with a non-finite loss or gradient is never applied; then stop, or skip it`,
    `DATA = ${py(x.data.format === 'csv' ? { format: 'csv', train: x.data.train } : x.data)}`,
    `VALIDATION = ${py(x.validationSplit ?? null)}  # rows held out by the run (fraction, seed), left out here too`,
    `CSV_DELIMITER = ","`,
    `LABEL_COLUMNS = ${py(csvData?.labelColumns ?? [])}`,
    `TARGETS = ${py(csvData?.targets ?? 'index')}`,
    `FEATURE_NAMES = ${py(p?.featureNames ?? null)}`,
    `CLASS_NAMES = ${py(p?.classNames ?? null)}`,
    `NORMALIZE = ${py(p?.normalize == null ? null : { mode: p.normalize.mode, offset: [...p.normalize.offset], scale: [...p.normalize.scale] })}`,
    '',
    '',
    'def build_model():',
    `    return nn.Sequential(${modules.join(', ')})`,
    '',
    '',
    ...lossCode(config, o),
    '',
    '',
    'def build_optimizer(params):',
    optimizerCode(o),
    '',
    '',
    'def build_scheduler(optimizer):',
    `    return ${o.schedule === null ? 'Constant()' : scheduler(o.schedule)}`,
  ];
  return lines.join('\n') + '\n' + SCRIPT_BODY;
}

/** build_optimizer's body: torch.optim.SGD, Adam or AdamW with the run's options (a checkpoint from
 *  before Adam records no optimizer: SGD). */
function optimizerCode(o: ResolvedOptions): string {
  const optimizer = o.optimizer ?? 'sgd';
  if (optimizer === 'sgd') {
    return `    return torch.optim.SGD(params, lr=${py(o.lr)}, momentum=${py(o.momentum)}, dampening=${py(o.dampening)}, ` +
      `weight_decay=${py(o.weightDecay)}, nesterov=${py(o.nesterov)}, maximize=${py(o.maximize)})`;
  }
  return `    return torch.optim.${optimizer === 'adam' ? 'Adam' : 'AdamW'}(params, lr=${py(o.lr)}, betas=(${py(o.betas[0])}, ${py(o.betas[1])}), ` +
    `eps=${py(o.eps)}, weight_decay=${py(o.weightDecay)}, amsgrad=${py(o.amsgrad)}, maximize=${py(o.maximize)})`;
}

/** Writes pytorchScript(x) to `path` atomically. */
export async function savePytorchScript(path: string, x: PytorchExport): Promise<void> {
  await writeFileAtomic(path, pytorchScript(x));
}

/** loss_and_weight(logits, y): the loss *sum* of a part of a batch and its share of the 'mean' divisor,
 *  as gradpool's losses (src/shared/losses.ts) and PyTorch's define them. */
function lossCode(config: ModelConfig, o: ResolvedOptions): string[] {
  const tensor = (v: readonly number[] | null | undefined): string =>
    v == null ? 'None' : `torch.tensor(${py([...v])}, dtype=torch.float32, device=logits.device)`;
  const head = [
    'def loss_and_weight(logits, y):',
    `    """The ${config.loss} loss summed over this part of the batch, and its share of the 'mean' divisor."""`,
  ];
  switch (config.loss) {
    case 'cross-entropy':
      return [...head,
        `    w = ${tensor(o.weight)}`,
        '    if y.dim() == 2:  # class probabilities: the divisor is the row count',
        `        return F.cross_entropy(logits, y, weight=w, label_smoothing=${py(o.labelSmoothing ?? 0)}, reduction="sum"), y.shape[0]`,
        `    kept = y != ${o.ignoreIndex ?? -100}`,
        `    loss = F.cross_entropy(logits, y, weight=w, ignore_index=${o.ignoreIndex ?? -100}, label_smoothing=${py(o.labelSmoothing ?? 0)}, reduction="sum")`,
        '    return loss, (w[y[kept]].double().sum().item() if w is not None else int(kept.sum()))',
      ];
    case 'bce-with-logits':
      return [...head,
        `    loss = F.binary_cross_entropy_with_logits(logits, y, weight=${tensor(o.weight)}, pos_weight=${tensor(o.posWeight)}, reduction="sum")`,
        '    return loss, y.numel()',
      ];
    case 'bce':
      return [...head,
        `    return F.binary_cross_entropy(torch.sigmoid(logits), y, weight=${tensor(o.weight)}, reduction="sum"), y.numel()`,
      ];
    case 'sigmoid-focal': {
      const alpha = typeof o.focalAlpha === 'number' ? o.focalAlpha : 0.25;
      return [...head,
        '    # torchvision.ops.sigmoid_focal_loss, written out',
        '    p = torch.sigmoid(logits)',
        '    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")',
        '    p_t = p * y + (1 - p) * (1 - y)',
        `    loss = ce * ((1 - p_t) ** ${py(o.focalGamma ?? 2)})`,
        ...(alpha >= 0 ? [`    loss = (${py(alpha)} * y + (1 - ${py(alpha)}) * (1 - y)) * loss`] : []),
        '    return loss.sum(), y.numel()',
      ];
    }
    case 'softmax-focal': {
      const K = config.layers[config.layers.length - 1];
      const a = o.focalAlpha;
      const alpha = a == null ? null : typeof a === 'number' ? new Array<number>(K).fill(a) : a;
      return [...head,
        '    # -alpha[t] (1 - p_t)^gamma log p_t over the rows not ignored',
        `    kept = y != ${o.ignoreIndex ?? -100}`,
        '    t = y[kept]',
        '    logp_t = F.log_softmax(logits[kept], dim=1).gather(1, t[:, None])[:, 0]',
        `    loss = -((1 - logp_t.exp()) ** ${py(o.focalGamma ?? 2)}) * logp_t`,
        ...(alpha === null ? [] : [`    loss = ${tensor(alpha)}[t] * loss`]),
        '    return loss.sum(), int(kept.sum())',
      ];
    }
  }
}

/** The torch.optim.lr_scheduler expression of a schedule; options left unset take torch's defaults,
 *  which are gradpool's. */
function scheduler(s: ScheduleSpec): string {
  const args = (pairs: [string, unknown][]): string =>
    ['optimizer', ...pairs.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${py(v)}`)].join(', ');
  switch (s.name) {
    case 'step':
      return `lr_scheduler.StepLR(${args([['step_size', s.stepSize], ['gamma', s.gamma]])})`;
    case 'multistep':
      return `lr_scheduler.MultiStepLR(${args([['milestones', s.milestones], ['gamma', s.gamma]])})`;
    case 'exponential':
      return `lr_scheduler.ExponentialLR(${args([['gamma', s.gamma]])})`;
    case 'cosine':
      return `lr_scheduler.CosineAnnealingLR(${args([['T_max', s.tMax], ['eta_min', s.etaMin]])})`;
    case 'linear':
      return `lr_scheduler.LinearLR(${args([['start_factor', s.startFactor], ['end_factor', s.endFactor], ['total_iters', s.totalIters]])})`;
    case 'onecycle':
      return `lr_scheduler.OneCycleLR(${args([
        ['max_lr', s.maxLr], ['total_steps', s.totalSteps], ['pct_start', s.pctStart], ['anneal_strategy', s.annealStrategy],
        ['div_factor', s.divFactor], ['final_div_factor', s.finalDivFactor], ['three_phase', s.threePhase],
        ['cycle_momentum', s.cycleMomentum], ['base_momentum', s.baseMomentum], ['max_momentum', s.maxMomentum],
      ])})`;
    case 'plateau':
      // The script's loop steps schedulers without a metric, and does not hold out gradpool's validation rows.
      throw new GradpoolError(
        "a run with schedule 'plateau' cannot be exported as a PyTorch script yet: ReduceLROnPlateau steps on a validation metric, which the script does not compute",
        "export a run with another schedule, or continue this one with gradpool's --resume",
      );
    case 'sequential':
      return `lr_scheduler.SequentialLR(optimizer, schedulers=[${s.schedulers.map(scheduler).join(', ')}], milestones=${py(s.milestones)})`;
  }
}

/** A JSON-like value as a Python literal: numbers in their shortest round-trip form (the same double in
 *  both languages), strings as JSON writes them (valid Python), true/false/null as True/False/None. */
export function py(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : v > 0 ? 'math.inf' : v < 0 ? '-math.inf' : 'math.nan';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return `[${Array.from(v as ArrayLike<unknown>, py).join(', ')}]`;
  return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${JSON.stringify(k)}: ${py(x)}`).join(', ')}}`;
}
