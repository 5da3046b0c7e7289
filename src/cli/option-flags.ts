// The one table from the library's option names to the command line's: a message the library raises
// names `options.batchSize` (or `fit options.validation`, `options.schedule.milestones`); printed by the
// CLI it names the flag that sets that option, `--batch-size`. An option the CLI has no flag for (it sets
// it itself, or does not offer it) is named in words instead, so that no message points to a flag that
// does not exist. test/messages.test.ts checks that every option a message can name is here, and that
// every flag here is in the help of a command.

/** A flag, or the words for an option the command line has no flag for. */
type Flag = `--${string}` | { words: string };

export const OPTION_FLAGS: Readonly<Record<string, Flag>> = {
  // The Trainer's options (src/main/options/options.ts).
  layers: '--layers', activation: '--activation', loss: '--loss', reduction: '--reduction',
  optimizer: '--optimizer', betas: '--betas', eps: '--eps', amsgrad: '--amsgrad',
  lr: '--lr', momentum: '--momentum', dampening: '--dampening', weightDecay: '--weight-decay', nesterov: '--nesterov',
  maximize: '--maximize', weight: '--class-weight', ignoreIndex: '--ignore-index', labelSmoothing: '--label-smoothing',
  posWeight: '--pos-weight', focalGamma: '--focal-gamma', focalAlpha: '--focal-alpha',
  schedule: '--schedule', scheduleInterval: '--schedule-interval', clipGradNorm: '--clip-grad-norm', clipNormType: '--clip-norm-type',
  errorIfNonfinite: '--error-if-nonfinite', onNonfinite: '--on-nonfinite', batchSize: '--batch-size', shuffle: '--no-shuffle',
  seed: '--seed', workers: '--workers', shards: '--shards', kernels: '--kernels', workerTimeout: '--worker-timeout',
  shardRetries: { words: 'the retry limit' },
  workerHeapMb: { words: "the workers' heap limit" },
  preprocessing: { words: "the model's recorded preprocessing" },
  // The schedule's fields (src/shared/schedule.ts), as the flags of src/cli/schedule-flags.ts set them.
  'schedule.name': '--schedule', 'schedule.stepSize': '--step-size', 'schedule.gamma': '--gamma', 'schedule.milestones': '--milestones',
  'schedule.etaMin': '--eta-min', 'schedule.endFactor': '--end-factor', 'schedule.maxLr': '--max-lr', 'schedule.pctStart': '--pct-start',
  'schedule.startFactor': '--warmup-start-factor', 'schedule.totalIters': '--epochs', 'schedule.tMax': '--epochs',
  'schedule.totalSteps': '--epochs',
  'schedule.threePhase': { words: "the schedule's three-phase setting" },
  'schedule.cycleMomentum': { words: "the schedule's momentum cycling" },
  'schedule.baseMomentum': { words: "the schedule's base momentum" },
  'schedule.maxMomentum': { words: "the schedule's maximum momentum" },
  'schedule.annealStrategy': { words: "the schedule's annealing strategy" },
  'schedule.divFactor': { words: "the schedule's initial division factor" },
  'schedule.finalDivFactor': { words: "the schedule's final division factor" },
  'schedule.schedulers': { words: "the schedule's parts" },
  'schedule.monitor': '--monitor', 'schedule.mode': '--monitor', 'schedule.factor': '--plateau-factor',
  'schedule.patience': '--plateau-patience', 'schedule.threshold': '--plateau-threshold',
  'schedule.thresholdMode': '--plateau-threshold-mode', 'schedule.cooldown': '--plateau-cooldown', 'schedule.minLr': '--min-lr',
  'schedule.eps': '--plateau-eps',
  // fit()'s options and early stopping's (src/main/options/types.ts).
  epochs: '--epochs', validation: '--validation-split', allowDataChange: '--allow-data-change',
  earlyStopping: '--early-stopping-patience', 'earlyStopping.monitor': '--monitor', 'earlyStopping.patience': '--early-stopping-patience',
  'earlyStopping.minDelta': '--min-delta', 'earlyStopping.restoreBestWeights': '--restore-best-weights',
  verbose: { words: 'the per-epoch printing' }, log: { words: "the per-epoch lines' writer" }, tensorboard: '--tensorboard',
  // exportOnnx's options (src/main/export/onnx.ts).
  opsetVersion: { words: 'the ONNX opset version' },
  stepsPerExecution: { words: 'the steps per execution' },
  // loadCsv's options (src/main/loaders/csv.ts).
  labelColumns: '--label-column', featureColumns: '--feature-columns', ignoreColumns: '--ignore-columns', delimiter: '--delimiter',
  header: { words: 'the header setting (the CLI detects the header)' },
  targets: { words: 'the kind of targets (class indices for softmax losses)' },
  classNames: { words: "the training file's class names" },
  maxLineLength: { words: 'the line-length limit' },
};

/** `options.x` (after `fit `, with a field after it: `options.schedule.milestones`, and a `: true` after
 *  it for a boolean) in a library message. */
const OPTION_NAME = /\b(?:fit )?options\.([A-Za-z]+)(\.[A-Za-z]+)?(: true)?/g;

/** A library message in the terms of the command line: each option named by its flag, or in words. */
export function usageWords(message: string): string {
  return message.replace(OPTION_NAME, (all: string, name: string, field: string | undefined, isTrue: string | undefined) => {
    const whole = field === undefined ? undefined : OPTION_FLAGS[`${name}${field}`];
    const flag = whole ?? OPTION_FLAGS[name];
    if (flag === undefined) return all; // test/messages.test.ts keeps this from happening
    const rest = whole === undefined && field !== undefined ? ` (${field.slice(1)})` : '';
    // 'give fit options.allowDataChange: true' is 'give --allow-data-change'.
    return typeof flag === 'string' ? `${flag}${rest}` : `${flag.words}${rest}${isTrue ?? ''}`;
  });
}
