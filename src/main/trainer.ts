// The public Trainer: builds the model and its worker pool from validated options, and offers fit()
// (epochs of mini-batch SGD or Adam, with an optional learning-rate schedule and gradient clipping),
// evaluation, prediction, per-sample losses, and checkpoints that hold the whole training state. This
// file is the API: it validates and shares what it is given; the epoch loop is fit.ts's, the per-step
// work the Coordinator's. Its types are in types.ts.

import { Coordinator } from './core/coordinator.js';
import { shareDataset, shareFeatures, type Dataset, type Features, type SharedDataset, type ShareOutputs } from './data/data.js';
import { loadSafetensors, saveCheckpoint } from './checkpoint/file.js';
import {
  ADAM_TENSORS, CONFIG_KEY, metadataJson, MOMENTUM_TENSOR, OPTIONS_KEY, parseMetadataJson, PREPROCESSING_KEY, STATE_KEY,
} from './checkpoint/metadata.js';
import { checkpointOf, type Checkpoint, type SafetensorsFile } from './checkpoint/safetensors.js';
import { holdings, weightsFor, type ImportedWeights } from './checkpoint/weights.js';
import { CheckpointError, DataError, GradpoolError, OptionRangeError, OptionTypeError } from './errors.js';
import { evaluationCounts } from './reporting/evaluation.js';
import { initParameters } from './core/init.js';
import { lossSpec } from './options/loss-options.js';
import { adamOptions, appliedOptions, modelConfig, resolveOptions, type ResolvedOptions, type TrainerOptions } from './options/options.js';
import { EarlyStopping } from './reporting/early-stopping.js';
import { RunClock, writeStdout } from './reporting/epoch-text.js';
import { saveOnnx, type OnnxExportOptions } from './export/onnx.js';
import { Training } from './core/fit.js';
import { EventFile } from './tensorboard/writer.js';
import { parsePreprocessing, preprocessingJson, resolvePreprocessing, type ResolvedPreprocessing } from './data/preprocessing.js';
import { reportOfCounts } from './reporting/report.js';
import { dataChange, fingerprintMetadata, fingerprintOf, parseFingerprint, type DataFingerprint } from './data/fingerprint.js';
import { parseState, stateJson } from './core/state.js';
import { chooseWorkers, type WorkersChoice } from './tune/choose.js';
import type { EpochRecord, Evaluation, FitOptions } from './options/types.js';
import { boolean, integerIn, positiveInteger, shown } from './options/validate.js';
import type { LossSpec } from '../shared/losses.js';
import { isSoftmaxLoss, type ModelConfig } from '../shared/model.js';
import { RING_STEPS } from '../shared/contract.js';

// The API types travel with the Trainer (the package's index exports them from here).
export type { EarlyStoppingOptions, EpochRecord, Evaluation, FitOptions, Monitor, StepInfo, StepTiming } from './options/types.js';

export class Trainer {
  readonly options: Readonly<ResolvedOptions>;
  readonly config: Readonly<ModelConfig>;
  readonly loss: Readonly<LossSpec>;
  private readonly core: Coordinator;
  /** The training state and fit()'s epoch loop. */
  private readonly training: Training;
  /** The data the run trains on (its last fit()'s, or the loaded checkpoint's), which save() records. */
  private dataPrint: DataFingerprint | null = null;
  /** The loaded checkpoint's data, until the first fit() has checked its data against it. */
  private resumedData: DataFingerprint | null = null;
  /** The model's input pipeline (preprocessing.ts), or null: features are used as given. */
  private prep: ResolvedPreprocessing | null;
  /** The call running on the pool, if any: every shard slot is in use by it. */
  private running: string | null = null;
  private imported: ImportedWeights | null = null;
  /** How the worker count was chosen, when it was workers: 'auto'. */
  workersChoice?: WorkersChoice;

  /**
   * Makes a Trainer like `new Trainer(options)`, and also takes workers: 'auto': the worker count is then
   * read from a saved tuning result for this model shape and batch size (`tuneFile`, written by
   * `npm run tune`), or measured by a quick probe; `workersChoice` says which and why.
   */
  static async create(options: TrainerOptions, tuneFile?: string): Promise<Trainer> {
    if (options.workers !== 'auto') return new Trainer(options);
    // The probe trains Trainers itself: it is handed the constructor rather than importing this file.
    const choice = await chooseWorkers((o) => new Trainer(o), { ...options, workers: undefined }, tuneFile);
    const trainer = new Trainer({ ...options, workers: choice.workers });
    trainer.workersChoice = choice;
    return trainer;
  }

  constructor(options: TrainerOptions) {
    this.options = resolveOptions(options);
    this.config = modelConfig(this.options);
    this.loss = lossSpec(this.options);
    this.prep = resolvePreprocessing('options.preprocessing', options.preprocessing, this.config);
    const o = this.options;
    this.core = new Coordinator({
      model: this.config, loss: this.loss, pool: o, sgd: o, adam: o.optimizer === 'sgd' ? null : adamOptions(o),
    });
    this.training = new Training(this.core, o);
    initParameters(this.core.params, o.layers, o.seed);
  }

  /**
   * Rebuilds a Trainer from a checkpoint written by save(): its model, its options and its training
   * state (epoch, step, schedule position, momentum), so fit() continues exactly where it stopped, and
   * its preprocessing, so predict() and evaluate() take raw features as at the end of training (a file
   * that records none, as those written before gradpool recorded it, has `preprocessing` null).
   * `options` override the saved ones (workers, say; a `preprocessing` replaces the recorded one, or
   * gives one to a file that records none); layers, activation and loss are the file's, and
   * may be given only as the file has them.
   *
   * A safetensors file with no gradpool metadata (a PyTorch state_dict) holds weights only: give the
   * model in `options` (layers, activation; the loss defaults by the output width), and its tensors are
   * matched as loadParameters() does; the Trainer starts a fresh run from them.
   */
  static async load(path: string, options: Partial<TrainerOptions> = {}): Promise<Trainer> {
    const file = await loadSafetensors(path);
    if (!Object.hasOwn(file.metadata, CONFIG_KEY)) {
      if (options.layers === undefined) {
        throw new CheckpointError(
          path,
          `records no gradpool model (its metadata has no "config"), so the model must be given; it holds ${holdings(file.tensors)}`,
          "Trainer.load(path, { layers: [784, 128, 10], activation: 'relu' }), with the widths the file's tensors have",
        );
      }
      const trainer = await Trainer.create(options as TrainerOptions);
      try {
        trainer.importWeights(file, path);
      } catch (err) {
        await trainer.close();
        throw err;
      }
      return trainer;
    }
    const ckpt = checkpointOf(file, path);
    for (const key of ['layers', 'activation', 'loss'] as const) {
      const given = options[key];
      if (given !== undefined && JSON.stringify(given) !== JSON.stringify(ckpt.config[key])) {
        throw new CheckpointError(
          path,
          `holds a model with ${key} ${JSON.stringify(ckpt.config[key])}; options.${key} is ${JSON.stringify(given)}`,
          'leave layers, activation and loss out: Trainer.load takes them from the file',
        );
      }
    }
    const saved = savedOptions(ckpt, path);
    const preprocessing = parsePreprocessing(ckpt.metadata, ckpt.config, path);
    const trainer = await Trainer.create({ ...saved, preprocessing, ...options, ...ckpt.config });
    try {
      // options.preprocessing, when given, overrides the file's (importWeights would put it back).
      trainer.importWeights(file, path, options.preprocessing === undefined);
      trainer.restoreState(ckpt, path);
    } catch (err) {
      await trainer.close();
      throw err;
    }
    return trainer;
  }

  /** The flat parameter buffer (P) in PyTorch's order: layers.0.weight (out, in), layers.0.bias, ...
   *  A view of the current parameters: each step writes the next ones elsewhere, so read this again
   *  after fit() rather than keeping an old view (copy it with .slice() to keep values). */
  get parameters(): Float32Array {
    this.still('trainer.parameters was read');
    return this.core.params;
  }

  /** Throws while a run of steps is under way (from onStep), when the parameters are in motion. */
  private still(what: string): void {
    if (this.training.inRun) {
      throw new GradpoolError(
        `${what} while the workers run several steps on their own (from onStep): the parameters are in motion`,
        'read them in onEpoch or after fit(), or give fit() stepsPerExecution: 1 to stop after every step',
      );
    }
  }

  /** Epochs completed and optimizer steps taken so far, and batches done of the epoch in progress (not 0
   *  only after fit() was interrupted mid-epoch); continued by load(). */
  get progress(): { epoch: number; step: number; batch: number } {
    const st = this.training.state;
    return { epoch: st.epoch, step: st.step, batch: st.batch };
  }

  /** Worker failures (a throw, an exit, running out of memory, a hang) recovered from by re-running
   *  their shards, over this Trainer's life. */
  get recoveredFailures(): number {
    return this.core.retries;
  }

  /** The model's input pipeline: normalisation statistics, feature, label and class names; null when
   *  none was given or recorded. A copy. */
  get preprocessing(): ResolvedPreprocessing | null {
    const p = this.prep;
    if (p === null) return null;
    return {
      normalize: p.normalize === null ? null : { mode: p.normalize.mode, offset: p.normalize.offset.slice(), scale: p.normalize.scale.slice() },
      featureNames: p.featureNames?.slice() ?? null,
      labelNames: p.labelNames?.slice() ?? null,
      classNames: p.classNames?.slice() ?? null,
    };
  }

  /**
   * Replaces the parameters with a file's, and the preprocessing with the file's when it records one (the
   * weights were trained on inputs prepared so). The file is a gradpool checkpoint, or any safetensors
   * file of the model's tensors: named as nn.Sequential's state_dict names them ('0.weight', '0.bias',
   * '2.weight', ...) or as gradpool does ('layers.0.weight', ...), or in any names with each layer's
   * weight (out, in) and bias (out) in the order of the file; F64, F16 and BF16 tensors are converted to
   * float32. A file that fits in none of these ways is refused, listing what it holds and what the model
   * needs, and the parameters keep their values. Returns (and `importedWeights` keeps) what was read.
   */
  async loadParameters(path: string): Promise<ImportedWeights> {
    return this.importWeights(await loadSafetensors(path), path);
  }

  /** What the last loadParameters() or Trainer.load() read, and how; null before either. */
  get importedWeights(): ImportedWeights | null {
    return this.imported;
  }

  private importWeights(file: SafetensorsFile, path: string, filePreprocessing = true): ImportedWeights {
    const { params, imported } = weightsFor(file, this.options.layers, path);
    const prep = parsePreprocessing(file.metadata, this.config, path);
    this.core.params.set(params);
    if (prep !== null && filePreprocessing) this.prep = prep;
    this.imported = imported;
    return imported;
  }

  async fit(train: Dataset, fit: FitOptions = {}): Promise<EpochRecord[]> {
    return this.exclusive('fit', () => this.fitNow(train, fit));
  }

  /** Runs `work` on a shared copy of data, then lets the workers drop it. */
  private async using<T>(data: SharedDataset, work: (d: SharedDataset) => Promise<T>): Promise<T> {
    try {
      return await work(data);
    } finally {
      this.core.release(data);
    }
  }

  private async fitNow(train: Dataset, fit: FitOptions): Promise<EpochRecord[]> {
    const { epochs, perRun, early, log } = this.fitOptions(fit);
    // The run's clock (for verbose's elapsed time and ETA) starts with fit(), data included.
    const clock = new RunClock(epochs);
    // Everything is validated and copied before the first step, so bad data costs no training time.
    // Per-sample losses are kept too, to name the samples of a step whose loss is not finite.
    const data = this.share(train, 'training data', { losses: true });
    const val = fit.validation === undefined ? undefined
      : this.share(fit.validation, 'validation data', {});
    if (fit.tensorboard !== undefined && (typeof fit.tensorboard !== 'string' || fit.tensorboard === '')) {
      throw new OptionTypeError(`fit options.tensorboard must be a directory path; got ${shown(fit.tensorboard)}`);
    }
    const stop = (): void => this.core.requestStop();
    fit.signal?.addEventListener('abort', stop);
    let board: EventFile | null = null;
    let failed = false;
    try {
      this.checkData(fingerprintOf(data.buffers), fit.allowDataChange ?? false);
      if (fit.tensorboard !== undefined) board = await EventFile.create(fit.tensorboard, this.training.state.step);
      const rowName = train.rowName ?? ((r: number) => `row ${r}`);
      return await this.training.epochs({ data, val, epochs, fit, perRun, rowName, early, board, log, clock });
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      fit.signal?.removeEventListener('abort', stop);
      this.core.clearStop();
      this.core.release(data);
      if (val !== undefined) this.core.release(val);
      // The points up to the stop are written; an error writing them is fit()'s only when nothing else is.
      await board?.close().catch((err: unknown) => {
        if (!failed) throw err;
      });
    }
  }

  /** fit()'s options, validated: the epochs, the steps per run, early stopping, where verbose lines go. */
  private fitOptions(fit: FitOptions): { epochs: number; perRun: number; early: EarlyStopping | null; log: ((text: string) => void) | null } {
    const epochs = fit.epochs ?? 1;
    positiveInteger('fit options.epochs', epochs);
    if (fit.verbose !== undefined) boolean('fit options.verbose', fit.verbose);
    if (fit.log !== undefined && typeof fit.log !== 'function') {
      throw new OptionTypeError(`fit options.log must be a function (text: string) => void; got ${shown(fit.log)}`);
    }
    if (fit.allowDataChange !== undefined) boolean('fit options.allowDataChange', fit.allowDataChange);
    const perRun = fit.stepsPerExecution ?? 'auto';
    if (perRun !== 'auto') integerIn('fit options.stepsPerExecution', perRun, 1, RING_STEPS);
    const early = fit.earlyStopping === undefined ? null
      : new EarlyStopping('fit options.earlyStopping', fit.earlyStopping, fit.validation !== undefined);
    const monitored = this.training.plateauMonitor();
    if (monitored !== null && monitored.startsWith('val') && fit.validation === undefined) {
      throw new OptionRangeError(
        `options.schedule.monitor '${monitored}' needs validation data, and fit() was given none: ReduceLROnPlateau steps on it`,
        "pass fit options.validation, or give the schedule monitor: 'trainLoss'",
      );
    }
    const log = fit.verbose === true ? fit.log ?? writeStdout : null;
    return { epochs, perRun: perRun === 'auto' ? RING_STEPS : perRun, early, log };
  }

  /** Loss, accuracy, confusion matrix and per-class report of the current parameters on `data`. */
  async evaluate(data: Dataset): Promise<Evaluation> {
    return this.exclusive('evaluate', () =>
      this.using(this.share(data, 'evaluation data', { probabilities: true }), (d) => this.evaluateShared(d)));
  }

  /** Probabilities (N, K), row-major: softmax rows for the softmax losses, sigmoids otherwise. */
  async predict(x: Features): Promise<Float32Array> {
    return this.exclusive('predict', () =>
      this.using(this.shareX(x, 'predict input'), async (d) => {
        await this.core.forwardAll(d);
        return new Float32Array(d.out as Float32Array);
      }));
  }

  /**
   * The predicted class of each row: its name when the preprocessing records class names (a model trained
   * on a CSV of class names), else its index as a string. Softmax losses: the most probable output; one
   * sigmoid output: class 1 when its probability is at least 0.5. Several sigmoid outputs are independent
   * labels, not one class: use predict().
   */
  async predictClasses(x: Features): Promise<string[]> {
    const K = this.config.layers[this.config.layers.length - 1];
    if (!isSoftmaxLoss(this.config.loss) && K > 1) {
      throw new GradpoolError(
        `predictClasses() picks one class per row, but loss '${this.config.loss}' with ${K} outputs predicts ${K} independent labels`,
        "use predict() for each output's probability",
      );
    }
    const p = await this.predict(x);
    const names = this.prep?.classNames ?? null;
    const rows = p.length / K;
    const out = new Array<string>(rows);
    for (let r = 0; r < rows; r++) {
      const c = predictedClass(p, r, K);
      out[r] = names === null ? String(c) : names[c];
    }
    return out;
  }

  /** Per-sample losses, PyTorch's reduction='none': (N) for softmax losses (0 for ignored rows), (N, K)
   *  row-major for the sigmoid losses. */
  async losses(data: Dataset): Promise<Float32Array> {
    return this.exclusive('losses', () =>
      this.using(this.share(data, 'loss data', { losses: true }), async (d) => {
        await this.core.forwardAll(d);
        return new Float32Array(d.lossOut as Float32Array);
      }));
  }

  /**
   * Writes a safetensors checkpoint atomically (see checkpoint/): the model's tensors (what PyTorch
   * loads), the momentum buffer, and in its metadata the options and the training state.
   */
  async save(path: string, metadata: Record<string, string> = {}): Promise<void> {
    // Everything is copied now, synchronously, so the file is the model between two steps even if
    // fit() goes on while it is written (as when save() is called from onEpoch).
    this.still('save() was called');
    const core = this.core;
    const progress = core.optimizerProgress;
    const tensors: Record<string, Float32Array> = {};
    if (progress.hasMomentumBuffer) tensors[MOMENTUM_TENSOR] = new Float32Array(core.momentumBuffer);
    if (progress.adamStep > 0) {
      [core.momentumBuffer, ...core.moments].forEach((buffer, i) => (tensors[ADAM_TENSORS[i]] = new Float32Array(buffer)));
    }
    await saveCheckpoint(path, this.config, new Float32Array(this.core.params), {
      ...metadata,
      [OPTIONS_KEY]: metadataJson(appliedOptions(this.options)),
      [STATE_KEY]: stateJson(this.training.state, progress),
      ...(this.prep === null ? {} : { [PREPROCESSING_KEY]: preprocessingJson(this.prep) }),
      ...fingerprintMetadata(this.dataPrint),
    }, Object.keys(tensors).length > 0 ? tensors : undefined);
  }

  /**
   * Writes the model as an ONNX graph (see export/onnx.ts), atomically: input 'input' takes raw features
   * (N, D), the recorded normalisation being the graph's first nodes; outputs 'probabilities' (N, K), what
   * predict() returns, and 'logits'. For onnxruntime-node, onnxruntime-web or any ONNX runtime.
   * options.opsetVersion: the ai.onnx opset, 13 to 21 (default 17), as torch.onnx.export's opset_version.
   */
  async exportOnnx(path: string, options: OnnxExportOptions = {}): Promise<void> {
    this.still('exportOnnx() was called');
    await saveOnnx(path, { config: this.config, params: new Float32Array(this.core.params), preprocessing: this.prep }, options);
  }

  async close(): Promise<void> {
    await this.core.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * The first fit() after a checkpoint was loaded continues its run: on the data the checkpoint records
   * (its fingerprint), unless `allow`. Then `now` is the data the run trains on, and save() records it.
   */
  private checkData(now: DataFingerprint, allow: boolean): void {
    const then = this.resumedData;
    this.resumedData = null;
    const change = then === null ? null : dataChange(then, now);
    if (change !== null && !allow) {
      throw new DataError(
        `training data: not the data this run was trained on (as its checkpoint records it): ${change}`,
        'resume with the same training data, or give fit options.allowDataChange: true to continue on this data knowingly',
      );
    }
    this.dataPrint = now;
  }

  private restoreState(ckpt: Checkpoint, path: string): void {
    const saved = parseState(ckpt.metadata, path);
    if (saved === null) return; // parameters only: a fresh run starting from them
    this.dataPrint = parseFingerprint(ckpt.metadata, path);
    this.resumedData = this.dataPrint;
    if (saved.hasMomentumBuffer) {
      const m = ckpt.tensors[MOMENTUM_TENSOR];
      if (m === undefined || m.length !== this.core.P) {
        throw new CheckpointError(path, `tensor '${MOMENTUM_TENSOR}' is missing or not ${this.core.P} floats, but the state says SGD momentum had started`);
      }
      this.core.momentumBuffer.set(m);
    }
    if (saved.adamStep > 0) {
      const core = this.core;
      if (core.adam === null) {
        throw new CheckpointError(path, `the state says Adam took ${saved.adamStep} steps, but options.optimizer is 'sgd'`);
      }
      [core.momentumBuffer, ...core.moments].forEach((buffer, i) => {
        const t = ckpt.tensors[ADAM_TENSORS[i]];
        if (t === undefined || t.length !== core.P) {
          throw new CheckpointError(path, `tensor '${ADAM_TENSORS[i]}' is missing or not ${core.P} floats, but the state says Adam took ${saved.adamStep} steps`);
        }
        buffer.set(t);
      });
    }
    this.core.restoreOptimizerProgress(saved);
    this.training.state = saved.state;
  }

  /** Runs one pool call at a time: the shard slots belong to the running call until it ends. */
  private async exclusive<T>(name: string, work: () => Promise<T>): Promise<T> {
    if (this.running !== null) {
      throw new GradpoolError(`${name}() was called while ${this.running}() is still running on this Trainer; await it first`);
    }
    this.running = name;
    try {
      return await work();
    } finally {
      this.running = null;
    }
  }

  /** `data` checked against the model's recorded columns, validated and copied into shared memory with
   *  the model's normalisation. */
  private share(data: Dataset, what: string, outputs: ShareOutputs): SharedDataset {
    this.checkColumns(data, what);
    return shareDataset(data, this.config, this.loss, what, outputs, this.prep?.normalize ?? null);
  }

  private shareX(x: Features, what: string): SharedDataset {
    this.checkColumns(x, what);
    return shareFeatures(x, this.config, what, this.prep?.normalize ?? null);
  }

  /** Refuses loaded data (a loader's result names its columns) whose feature columns are not the ones the
   *  model was trained on, in that order: the same count in another order would be silently wrong. */
  private checkColumns(data: unknown, what: string): void {
    const want = this.prep?.featureNames ?? null;
    const have = typeof data === 'object' && data !== null ? (data as { featureNames?: unknown }).featureNames : undefined;
    if (want === null || !Array.isArray(have)) return;
    if (have.length === want.length && have.every((n, i) => n === want[i])) return;
    const missing = want.filter((n) => !have.includes(n));
    throw new DataError(
      `${what} has the feature columns ${listed(have)}, but the model was trained on ${listed(want)}` +
        (missing.length > 0 ? `; missing: ${listed(missing)}` : '; the same columns in another order'),
      `load the data with featureColumns: trainer.preprocessing.featureNames`,
    );
  }

  private async evaluateShared(data: SharedDataset): Promise<Evaluation> {
    const sums = await this.core.forwardAll(data);
    const { counts, confusion } = evaluationCounts(data, this.config, this.loss);
    return {
      loss: sums.lossSum / sums.weightSum,
      accuracy: sums.correct / sums.counted,
      rows: data.rows,
      confusion,
      report: reportOfCounts(counts),
    };
  }
}

function savedOptions(ckpt: Checkpoint, path: string): Partial<TrainerOptions> {
  const text = ckpt.metadata[OPTIONS_KEY];
  if (text === undefined) return {};
  try {
    // The worker count is the machine's, not the run's: results do not depend on it (shards do).
    const { workers: _, ...options } = parseMetadataJson(text) as TrainerOptions;
    return options;
  } catch {
    throw new CheckpointError(path, `metadata "${OPTIONS_KEY}" is not valid JSON: ${text.slice(0, 80)}`);
  }
}

/**
 * The class row `row` of probabilities (N, K) predicts: the most probable output (the first of equals),
 * or for one sigmoid output, class 1 when its probability is at least 0.5.
 */
export function predictedClass(p: Float32Array, row: number, K: number): number {
  if (K === 1) return p[row] >= 0.5 ? 1 : 0;
  const base = row * K;
  let best = 0;
  for (let k = 1; k < K; k++) if (p[base + k] > p[base + best]) best = k;
  return best;
}

/** 'a', 'b', 'c' (the first 8, then how many more). */
function listed(names: readonly unknown[]): string {
  const shown = names.slice(0, 8).map((n) => `'${String(n)}'`).join(', ');
  return names.length > 8 ? `${shown} and ${names.length - 8} more` : shown;
}
