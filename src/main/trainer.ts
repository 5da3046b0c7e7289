// The public Trainer: builds the model and its worker pool from validated options, and runs epochs of
// mini-batch SGD (fit) with an optional learning-rate schedule and gradient clipping, evaluation,
// prediction, per-sample losses, and checkpoints that hold the whole training state. The per-step work
// happens in the Coordinator; this file is the API and the epoch loop. Its types are in types.ts.

import { Coordinator } from './coordinator.js';
import { shareDataset, shareFeatures, type Dataset, type Features, type SharedDataset, type ShareOutputs } from './data.js';
import { loadSafetensors, saveCheckpoint } from './checkpoint/file.js';
import {
  ADAM_TENSORS, CONFIG_KEY, metadataJson, MOMENTUM_TENSOR, OPTIONS_KEY, parseMetadataJson, PREPROCESSING_KEY, STATE_KEY,
} from './checkpoint/metadata.js';
import { checkpointOf, type Checkpoint, type SafetensorsFile } from './checkpoint/safetensors.js';
import { holdings, weightsFor, type ImportedWeights } from './checkpoint/weights.js';
import { CheckpointError, DataError, GradpoolError, OptionRangeError, OptionTypeError, ShardFailure } from './errors.js';
import { evaluationCounts } from './evaluation.js';
import { initParameters } from './init.js';
import { lossSpec } from './loss-options.js';
import { adamOptions, appliedOptions, modelConfig, resolveOptions, type ResolvedOptions, type TrainerOptions } from './options.js';
import { EarlyStopping } from './early-stopping.js';
import { epochText, RunClock } from './epoch-text.js';
import { epochOrder } from './order.js';
import { saveOnnx, type OnnxExportOptions } from './export/onnx.js';
import { EventFile, TENSORBOARD_TAGS as TAGS } from './tensorboard/writer.js';
import { parsePreprocessing, preprocessingJson, resolvePreprocessing, type ResolvedPreprocessing } from './preprocessing.js';
import { reportOfCounts } from './report.js';
import { dataChange, fingerprintMetadata, fingerprintOf, parseFingerprint, type DataFingerprint } from './fingerprint.js';
import { freshState, parseState, stateJson, type TrainingState } from './state.js';
import { nonfiniteError, shardFailure, type RowName, type StepPlace } from './step-failures.js';
import { stepTiming } from './timing.js';
import { chooseWorkers, type WorkersChoice } from './tune/choose.js';
import type { EpochRecord, Evaluation, FitOptions, Monitor } from './types.js';
import { boolean, integerIn, positiveInteger, shown } from './validate.js';
import { checkNormFinite } from '../shared/clip.js';
import type { LossSpec } from '../shared/losses.js';
import { isSoftmaxLoss, type ModelConfig } from '../shared/model.js';
import { scheduleAt } from '../shared/schedule.js';
import { filledPlateau, plateauStart, plateauStep } from '../shared/plateau.js';
import { RING_STEPS } from '../shared/contract.js';
import { addSums, emptySums, type BatchSums } from '../shared/step.js';

// The API types travel with the Trainer (the package's index exports them from here).
export type { EarlyStoppingOptions, EpochRecord, Evaluation, FitOptions, Monitor, StepInfo, StepTiming } from './types.js';

/** How long the epoch loop may run steps without giving the event loop a turn. */
const EVENT_LOOP_TURN_MS = 10;

export class Trainer {
  readonly options: Readonly<ResolvedOptions>;
  readonly config: Readonly<ModelConfig>;
  readonly loss: Readonly<LossSpec>;
  private readonly core: Coordinator;
  private state: TrainingState = freshState();
  /** The data the run trains on (its last fit()'s, or the loaded checkpoint's), which save() records. */
  private dataPrint: DataFingerprint | null = null;
  /** The loaded checkpoint's data, until the first fit() has checked its data against it. */
  private resumedData: DataFingerprint | null = null;
  /** The model's input pipeline (preprocessing.ts), or null: features are used as given. */
  private prep: ResolvedPreprocessing | null;
  /** The call running on the pool, if any: every shard slot is in use by it. */
  private running: string | null = null;
  /** True while a run of several steps is under way: the parameters are then in motion. */
  private inRun = false;
  private imported: ImportedWeights | null = null;
  /** The TensorBoard event file of the fit() under way, if it was given one. */
  private board: EventFile | null = null;
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
    this.core = new Coordinator(this.config, this.loss, o, o, o.optimizer === 'sgd' ? null : adamOptions(o));
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
    if (this.inRun) {
      throw new GradpoolError(
        `${what} while the workers run several steps on their own (from onStep): the parameters are in motion`,
        'read them in onEpoch or after fit(), or give fit() stepsPerExecution: 1 to stop after every step',
      );
    }
  }

  /** Epochs completed and optimizer steps taken so far, and batches done of the epoch in progress (not 0
   *  only after fit() was interrupted mid-epoch); continued by load(). */
  get progress(): { epoch: number; step: number; batch: number } {
    return { epoch: this.state.epoch, step: this.state.step, batch: this.state.batch };
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

  /** The learning rate and SGD's momentum (Adam's betas[0]) at scheduler step t: a OneCycle schedule
   *  cycles either, as OneCycleLR does (use_beta1 when the optimizer has betas). */
  private hyper(t: number): { lr: number; momentum: number } {
    const o = this.options;
    const momentum = o.optimizer === 'sgd' ? o.momentum : o.betas[0];
    if (o.schedule === null) return { lr: o.lr, momentum };
    if (o.schedule.name === 'plateau') return { lr: this.state.plateau?.lr ?? o.lr, momentum };
    const at = scheduleAt(o.schedule, o.lr, t);
    return { lr: at.lr, momentum: at.momentum ?? momentum };
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
    const epochs = fit.epochs ?? 1;
    positiveInteger('fit options.epochs', epochs);
    if (fit.verbose !== undefined) boolean('fit options.verbose', fit.verbose);
    if (fit.allowDataChange !== undefined) boolean('fit options.allowDataChange', fit.allowDataChange);
    const perRun = fit.stepsPerExecution ?? 'auto';
    if (perRun !== 'auto') integerIn('fit options.stepsPerExecution', perRun, 1, RING_STEPS);
    const early = fit.earlyStopping === undefined ? null
      : new EarlyStopping('fit options.earlyStopping', fit.earlyStopping, fit.validation !== undefined);
    const monitored = this.plateauMonitor();
    if (monitored !== null && monitored.startsWith('val') && fit.validation === undefined) {
      throw new OptionRangeError(
        `options.schedule.monitor '${monitored}' needs validation data, and fit() was given none: ReduceLROnPlateau steps on it`,
        "pass fit options.validation, or give the schedule monitor: 'trainLoss'",
      );
    }
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
    let failed = false;
    try {
      this.checkData(fingerprintOf(data.buffers), fit.allowDataChange ?? false);
      if (fit.tensorboard !== undefined) this.board = await EventFile.create(fit.tensorboard, this.state.step);
      return await this.epochs(data, val, epochs, fit, perRun === 'auto' ? RING_STEPS : perRun, train.rowName ?? ((r) => `row ${r}`), early);
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      fit.signal?.removeEventListener('abort', stop);
      this.core.clearStop();
      this.core.release(data);
      if (val !== undefined) this.core.release(val);
      const board = this.board;
      this.board = null;
      // The points up to the stop are written; an error writing them is fit()'s only when nothing else is.
      await board?.close().catch((err: unknown) => {
        if (!failed) throw err;
      });
    }
  }

  private async epochs(
    data: SharedDataset, val: SharedDataset | undefined, epochs: number, fit: FitOptions, perRun: number, rowName: RowName,
    early: EarlyStopping | null,
  ): Promise<EpochRecord[]> {
    const o = this.options;
    const batches = Math.ceil(data.rows / o.batchSize);
    const history: EpochRecord[] = [];
    const st = this.state;
    if (st.batch >= batches) {
      throw new DataError(
        `this Trainer stopped after batch ${st.batch} of an epoch, but the training data has only ${batches} batches of ${o.batchSize}`,
        'resume with the same training data',
      );
    }
    let best: Float32Array | null = null; // the best epoch's parameters, for restoreBestWeights
    const verbose = fit.verbose ?? false;
    const clock = new RunClock(epochs);
    await this.payPlateauStep(val);
    const lastEpoch = st.epoch + epochs;
    for (let e = 0; e < epochs; e++) {
      const epoch = st.epoch + 1;
      epochOrder(data.order, o.shuffle ? o.seed : null, epoch);
      const t0 = performance.now();
      const first = st.batch; // 0, or where an interrupted epoch stopped
      let lr = o.lr;
      let turn = performance.now();
      while (st.batch < batches) {
        // Short runs that end quickly never leave the microtask queue: every few milliseconds the event
        // loop gets a turn, so that signals, timers and abort() reach this loop.
        if (performance.now() - turn > EVENT_LOOP_TURN_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          turn = performance.now();
        }
        if (fit.signal?.aborted) throw fit.signal.reason;
        const run = await this.runSteps(data, epoch, batches, Math.min(perRun, batches - st.batch), fit, rowName);
        lr = run.lr;
        if (run.error !== null || run.stopped) {
          // The workers may have reached the epoch's end before they stopped: then it is complete.
          if (st.batch === batches) this.owePlateauStep(this.closeEpoch(epoch, batches, lr, data.rows, first, t0));
          throw run.error ?? (fit.signal?.aborted ? fit.signal.reason : new GradpoolError('the run of steps stopped early for no known reason'));
        }
      }
      const record = this.closeEpoch(epoch, batches, lr, data.rows, first, t0);
      if (val !== undefined) {
        // Loss and accuracy only: the per-class report is evaluate()'s.
        // A stop during the validation pass (a worker that hangs there is stopped) ends fit() as a stop.
        const sums = await this.forwardAll(val).catch((err: unknown) => {
          throw fit.signal?.aborted ? fit.signal.reason : err;
        });
        record.valLoss = sums.lossSum / sums.weightSum;
        record.valAccuracy = sums.correct / sums.counted;
      }
      // scheduler.step(metric) after the epoch's validation, as PyTorch's loop does; the next epoch's
      // steps use its rate, and a save() from onEpoch records its state.
      const monitored = this.plateauMonitor();
      if (monitored !== null) this.stepPlateau(record[monitored]);
      history.push(record);
      if (this.board !== null) {
        this.board.scalars(st.step, [
          [TAGS.epochTrainLoss, record.trainLoss], [TAGS.epochTrainAccuracy, record.trainAccuracy],
          [TAGS.epochValLoss, record.valLoss], [TAGS.epochValAccuracy, record.valAccuracy], [TAGS.epochLr, record.lr],
        ]);
        await this.board.flush();
      }
      if (early !== null) {
        const { improved, stop } = early.update(record);
        if (improved && early.restoreBestWeights) best = this.core.params.slice();
        if (stop !== null) {
          if (best !== null) this.core.params.set(best);
          record.stopReason = stop;
        }
      }
      if (verbose) process.stdout.write(epochText(record, { epochs: lastEpoch, valName: 'validation', ...clock.epoch() }));
      const answer = await fit.onEpoch?.(record);
      if (answer === false && record.stopReason === undefined) record.stopReason = `stopped by onEpoch after epoch ${record.epoch}`;
      if (record.stopReason !== undefined) break;
    }
    return history;
  }

  /** The metric a 'plateau' schedule steps on, or null under any other schedule. */
  private plateauMonitor(): Monitor | null {
    const s = this.options.schedule;
    return s?.name === 'plateau' ? filledPlateau(s).monitor : null;
  }

  /** ReduceLROnPlateau.step(metric), under a 'plateau' schedule. */
  private stepPlateau(metric: number | undefined): void {
    const s = this.options.schedule;
    if (s?.name !== 'plateau') return;
    this.state.plateau = plateauStep(s, this.state.plateau ?? plateauStart(this.options.lr), metric as number);
  }

  /** A run stopped right after an epoch's last step, before its validation: a training metric is stepped
   *  on now; a validation metric's step is owed, to be made by the next fit() before its first epoch. */
  private owePlateauStep(record: EpochRecord): void {
    const m = this.plateauMonitor();
    if (m === null) return;
    if (!m.startsWith('val')) return this.stepPlateau(record[m]);
    this.state.plateau = { ...(this.state.plateau ?? plateauStart(this.options.lr)), owed: true };
  }

  /** Makes an owed step on the validation data, with the parameters of the end of that epoch (the run
   *  stopped there), so that the resumed run steps as the uninterrupted one did. */
  private async payPlateauStep(val: SharedDataset | undefined): Promise<void> {
    const m = this.plateauMonitor();
    if (m === null || this.state.plateau?.owed !== true || val === undefined) return;
    const sums = await this.forwardAll(val);
    this.stepPlateau(m === 'valLoss' ? sums.lossSum / sums.weightSum : sums.correct / sums.counted);
  }

  /** The record of the epoch whose steps are all done, and the state moved on to the next epoch.
   *  `first` is the batch it started at (not 0 for a resumed epoch), at time t0. */
  private closeEpoch(epoch: number, batches: number, lr: number, rows: number, first: number, t0: number): EpochRecord {
    const o = this.options;
    const st = this.state;
    const seconds = (performance.now() - t0) / 1000;
    const total = st.epochSums;
    const record: EpochRecord = {
      epoch,
      trainLoss: total.lossSum / total.weightSum,
      trainAccuracy: total.correct / total.counted,
      lr,
      samplesPerSec: (rows - first * o.batchSize) / seconds,
      seconds,
      steps: batches,
      skippedSteps: st.epochSkipped,
      nonfiniteSteps: st.epochNonfinite,
    };
    st.epoch = epoch;
    st.batch = 0;
    st.epochSums = emptySums();
    st.epochSkipped = 0;
    st.epochNonfinite = 0;
    if (o.schedule !== null && o.scheduleInterval === 'epoch') st.schedulerSteps++;
    return record;
  }

  /**
   * One run of `steps` steps from the state's batch: each committed step is recorded in the training
   * state and reported to onStep as it comes. Returns the last step's lr, the error that ends fit() (a
   * non-finite step, a throw in onStep), and whether the run stopped before its end without one.
   */
  private async runSteps(
    data: SharedDataset, epoch: number, batches: number, steps: number, fit: FitOptions, rowName: RowName,
  ): Promise<{ lr: number; error: unknown; stopped: boolean }> {
    const o = this.options;
    const st = this.state;
    const batch0 = st.batch;
    const scheduler0 = st.schedulerSteps;
    const perStep = o.schedule !== null && o.scheduleInterval === 'step';
    const hyper = (j: number): { lr: number; momentum: number } => this.hyper(perStep ? scheduler0 + j : scheduler0);
    let error: unknown = null;
    let lr = o.lr;
    this.inRun = steps > 1;
    let executed: number;
    try {
      executed = await this.core.run({
        data, batch0, steps, batchSize: o.batchSize, hyper, maxNorm: o.clipGradNorm, normType: o.clipNormType,
        stopOnNonfinite: o.onNonfinite === 'stop' || (o.clipGradNorm !== null && o.errorIfNonfinite),
      }, (j, { sums, decision, timing }) => {
        const b = batch0 + j;
        const place: StepPlace = { step: st.step + 1, epoch, batch: b + 1, batches };
        lr = hyper(j).lr;
        if (decision.outcome === 'nonfinite') {
          const start = b * o.batchSize;
          const end = Math.min(start + o.batchSize, data.rows);
          try {
            if (o.clipGradNorm !== null && o.errorIfNonfinite) checkNormFinite(decision.gradNorm, o.clipNormType);
            if (o.onNonfinite === 'stop') error ??= nonfiniteError(data, rowName, place, sums, decision.gradNorm, o.lr, this.core.nonfiniteShards(start, end));
          } catch (err) {
            error ??= err;
          }
          // The run ends on this step: it is neither applied nor counted.
          if (o.onNonfinite === 'stop' || error !== null) return;
          st.epochNonfinite++;
        }
        if (decision.outcome !== 'update') st.epochSkipped++;
        st.step++;
        st.batch = b + 1;
        if (perStep) st.schedulerSteps++;
        if (decision.outcome !== 'nonfinite') addSums(st.epochSums, sums);
        this.board?.scalars(st.step, [[TAGS.loss, sums.lossSum / sums.weightSum], [TAGS.lr, lr], [TAGS.gradNorm, decision.gradNorm]]);
        if (error !== null || fit.onStep === undefined) return;
        try {
          fit.onStep({
            epoch, batch: b + 1, batches, step: st.step, loss: sums.lossSum / sums.weightSum, rows: sums.rows, lr,
            gradNorm: decision.gradNorm,
            ...(decision.outcome === 'update' ? {} : { skipped: true }),
            timing: stepTiming(timing),
          });
        } catch (err) {
          // The workers may be a few steps on: they stop after the one they are on, which is recorded.
          error = err;
          this.core.requestStop();
        }
      });
    } catch (err) {
      const place: StepPlace = { step: st.step + 1, epoch, batch: st.batch + 1, batches };
      throw err instanceof ShardFailure ? shardFailure(err, data, rowName, place, o.shardRetries, o.workerTimeout) : err;
    } finally {
      this.inRun = false;
    }
    return { lr, error, stopped: error === null && executed < steps };
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
        await this.forwardAll(d);
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
        await this.forwardAll(d);
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
    const progress = { hasMomentumBuffer: core.hasMomentumBuffer, adamStep: core.adamStep };
    const tensors: Record<string, Float32Array> = {};
    if (core.hasMomentumBuffer) tensors[MOMENTUM_TENSOR] = new Float32Array(core.momentumBuffer);
    if (core.adamStep > 0) {
      [core.momentumBuffer, ...core.moments].forEach((buffer, i) => (tensors[ADAM_TENSORS[i]] = new Float32Array(buffer)));
    }
    await saveCheckpoint(path, this.config, new Float32Array(this.core.params), {
      ...metadata,
      [OPTIONS_KEY]: metadataJson(appliedOptions(this.options)),
      [STATE_KEY]: stateJson(this.state, progress),
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
    this.core.hasMomentumBuffer = saved.hasMomentumBuffer;
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
    this.core.adamStep = saved.adamStep;
    this.state = saved.state;
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

  /** Forward passes over every row in order, batch by batch; returns the summed stats. */
  private async forwardAll(data: SharedDataset): Promise<BatchSums> {
    const chunk = this.core.slots * this.core.maxShardRows;
    const total = emptySums();
    for (let start = 0; start < data.rows; start += chunk) {
      addSums(total, await this.core.forward(data, start, Math.min(start + chunk, data.rows)));
    }
    return total;
  }

  private async evaluateShared(data: SharedDataset): Promise<Evaluation> {
    const sums = await this.forwardAll(data);
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
