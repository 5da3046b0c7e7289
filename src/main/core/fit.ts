// fit()'s epoch loop and the training state it moves on: epochs of runs of steps on the pool, each
// committed step recorded in the state (state.ts) and reported (onStep, TensorBoard), each epoch closed
// into its record, validated, stepped on by ReduceLROnPlateau and watched by early stopping. The Trainer
// (trainer.ts) validates fit()'s options and data, and hands them here as a FitPlan.

import type { Coordinator } from './coordinator.js';
import type { SharedDataset } from '../data/data.js';
import type { EarlyStopping } from '../reporting/early-stopping.js';
import { epochText, type RunClock } from '../reporting/epoch-text.js';
import { DataError, GradpoolError, ShardFailure } from '../errors.js';
import type { ResolvedOptions } from '../options/options.js';
import { epochOrder } from './order.js';
import { freshState, type TrainingState } from './state.js';
import { nonfiniteError, shardFailure, type RowName, type StepPlace } from './step-failures.js';
import { TENSORBOARD_TAGS as TAGS, type EventFile } from '../tensorboard/writer.js';
import type { EpochRecord, FitOptions, Monitor } from '../options/types.js';
import { checkNormFinite } from '../../shared/clip.js';
import { filledPlateau, plateauStart, plateauStep } from '../../shared/plateau.js';
import type { StepRecord } from '../../shared/ring.js';
import { scheduleAt } from '../../shared/schedule.js';
import { addSums, emptySums, nonfiniteEnds, nonfiniteRule } from '../../shared/step.js';

/** How long the epoch loop may run steps without giving the event loop a turn. */
const EVENT_LOOP_TURN_MS = 10;

/** One fit() call, its options validated and its data shared. */
export interface FitPlan {
  data: SharedDataset;
  val: SharedDataset | undefined;
  epochs: number;
  fit: FitOptions;
  /** Steps per run of the workers: stepsPerExecution, or RING_STEPS for 'auto'. */
  perRun: number;
  rowName: RowName;
  early: EarlyStopping | null;
  /** The TensorBoard event file the fit() writes, if any. */
  board: EventFile | null;
  /** Where the per-epoch lines go (verbose), or null: silent. */
  log: ((text: string) => void) | null;
  /** The run's clock, for the lines' elapsed time and ETA. */
  clock: RunClock;
}

/** The epoch under way: its number, its batch count, and the batch it started at (not 0 for a resumed
 *  epoch), at time t0, over `rows` rows of training data. */
interface EpochSpan {
  epoch: number;
  batches: number;
  first: number;
  t0: number;
  rows: number;
}

/** What one run of steps ended with: the last step's lr, the error that ends fit() (a non-finite step,
 *  a throw in onStep), and whether the run stopped before its end without one. */
interface RunEnd {
  lr: number;
  error: unknown;
  stopped: boolean;
}

/** The training state and the epoch loop that moves it on, over the Trainer's pool. */
export class Training {
  /** Epochs and steps done, the schedule's position, where an interrupted epoch stopped. */
  state: TrainingState = freshState();
  /** True while a run of several steps is under way: the parameters are then in motion. */
  inRun = false;

  constructor(private readonly core: Coordinator, private readonly options: Readonly<ResolvedOptions>) {}

  /** The learning rate and SGD's momentum (Adam's betas[0]) at scheduler step t: a OneCycle schedule
   *  cycles either, as OneCycleLR does (use_beta1 when the optimizer has betas). */
  hyper(t: number): { lr: number; momentum: number } {
    const o = this.options;
    const momentum = o.optimizer === 'sgd' ? o.momentum : o.betas[0];
    if (o.schedule === null) return { lr: o.lr, momentum };
    if (o.schedule.name === 'plateau') return { lr: this.state.plateau?.lr ?? o.lr, momentum };
    const at = scheduleAt(o.schedule, o.lr, t);
    return { lr: at.lr, momentum: at.momentum ?? momentum };
  }

  /** The metric a 'plateau' schedule steps on, or null under any other schedule. */
  plateauMonitor(): Monitor | null {
    const s = this.options.schedule;
    return s?.name === 'plateau' ? filledPlateau(s).monitor : null;
  }

  /** The epochs of one fit(): returns their records. */
  async epochs(plan: FitPlan): Promise<EpochRecord[]> {
    const o = this.options;
    const batches = Math.ceil(plan.data.rows / o.batchSize);
    const history: EpochRecord[] = [];
    const st = this.state;
    if (st.batch >= batches) {
      throw new DataError(
        `this Trainer stopped after batch ${st.batch} of an epoch, but the training data has only ${batches} batches of ${o.batchSize}`,
        'resume with the same training data',
      );
    }
    const best: { params: Float32Array | null } = { params: null }; // the best epoch's, for restoreBestWeights
    await this.payPlateauStep(plan.val);
    const lastEpoch = st.epoch + plan.epochs;
    for (let e = 0; e < plan.epochs; e++) {
      const epoch = st.epoch + 1;
      epochOrder(plan.data.order, o.shuffle ? o.seed : null, epoch);
      const span: EpochSpan = { epoch, batches, first: st.batch, t0: performance.now(), rows: plan.data.rows };
      const record = this.closeEpoch(span, await this.epochSteps(plan, span));
      await this.afterEpoch(plan, record, best);
      plan.log?.(epochText(record, { epochs: lastEpoch, valName: 'validation', ...plan.clock.epoch() }));
      const answer = await plan.fit.onEpoch?.(record);
      if (answer === false && record.stopReason === undefined) record.stopReason = `stopped by onEpoch after epoch ${record.epoch}`;
      history.push(record);
      if (record.stopReason !== undefined) break;
    }
    return history;
  }

  /** The epoch's steps, run after run, from the state's batch to its last; returns the last step's lr. */
  private async epochSteps(plan: FitPlan, span: EpochSpan): Promise<number> {
    const { fit, perRun } = plan;
    const st = this.state;
    let lr = this.options.lr;
    let turn = performance.now();
    while (st.batch < span.batches) {
      // Short runs that end quickly never leave the microtask queue: every few milliseconds the event
      // loop gets a turn, so that signals, timers and abort() reach this loop.
      if (performance.now() - turn > EVENT_LOOP_TURN_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        turn = performance.now();
      }
      if (fit.signal?.aborted) throw fit.signal.reason;
      const run = await this.runSteps(plan, span, Math.min(perRun, span.batches - st.batch));
      lr = run.lr;
      if (run.error !== null || run.stopped) {
        // The workers may have reached the epoch's end before they stopped: then it is complete.
        if (st.batch === span.batches) this.owePlateauStep(this.closeEpoch(span, lr));
        throw run.error ?? (fit.signal?.aborted ? fit.signal.reason : new GradpoolError('the run of steps stopped early for no known reason'));
      }
    }
    return lr;
  }

  /** After an epoch's steps: its validation, ReduceLROnPlateau's step, its TensorBoard scalars, and
   *  early stopping (which may restore the best epoch's parameters). */
  private async afterEpoch(plan: FitPlan, record: EpochRecord, best: { params: Float32Array | null }): Promise<void> {
    if (plan.val !== undefined) {
      // Loss and accuracy only: the per-class report is evaluate()'s.
      // A stop during the validation pass (a worker that hangs there is stopped) ends fit() as a stop.
      const sums = await this.core.forwardAll(plan.val).catch((err: unknown) => {
        throw plan.fit.signal?.aborted ? plan.fit.signal.reason : err;
      });
      record.valLoss = sums.lossSum / sums.weightSum;
      record.valAccuracy = sums.correct / sums.counted;
    }
    // scheduler.step(metric) after the epoch's validation, as PyTorch's loop does; the next epoch's
    // steps use its rate, and a save() from onEpoch records its state.
    const monitored = this.plateauMonitor();
    if (monitored !== null) this.stepPlateau(record[monitored]);
    if (plan.board !== null) {
      plan.board.scalars(this.state.step, [
        [TAGS.epochTrainLoss, record.trainLoss], [TAGS.epochTrainAccuracy, record.trainAccuracy],
        [TAGS.epochValLoss, record.valLoss], [TAGS.epochValAccuracy, record.valAccuracy], [TAGS.epochLr, record.lr],
      ]);
      await plan.board.flush();
    }
    const early = plan.early;
    if (early !== null) {
      const { improved, stop } = early.update(record);
      if (improved && early.restoreBestWeights) best.params = this.core.params.slice();
      if (stop !== null) {
        if (best.params !== null) this.core.params.set(best.params);
        record.stopReason = stop;
      }
    }
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
    const sums = await this.core.forwardAll(val);
    this.stepPlateau(m === 'valLoss' ? sums.lossSum / sums.weightSum : sums.correct / sums.counted);
  }

  /** The record of the epoch whose steps are all done, and the state moved on to the next epoch. */
  private closeEpoch(span: EpochSpan, lr: number): EpochRecord {
    const o = this.options;
    const st = this.state;
    const seconds = (performance.now() - span.t0) / 1000;
    const total = st.epochSums;
    const record: EpochRecord = {
      epoch: span.epoch,
      trainLoss: total.lossSum / total.weightSum,
      trainAccuracy: total.correct / total.counted,
      lr,
      samplesPerSec: (span.rows - span.first * o.batchSize) / seconds,
      seconds,
      steps: span.batches,
      skippedSteps: st.epochSkipped,
      nonfiniteSteps: st.epochNonfinite,
    };
    st.epoch = span.epoch;
    st.batch = 0;
    st.epochSums = emptySums();
    st.epochSkipped = 0;
    st.epochNonfinite = 0;
    if (o.schedule !== null && o.scheduleInterval === 'epoch') st.schedulerSteps++;
    return record;
  }

  /**
   * One run of `steps` steps from the state's batch: each committed step is recorded in the training
   * state and reported to onStep as it comes.
   */
  private async runSteps(plan: FitPlan, span: EpochSpan, steps: number): Promise<RunEnd> {
    const o = this.options;
    const { data } = plan;
    const st = this.state;
    const batch0 = st.batch;
    const scheduler0 = st.schedulerSteps;
    const perStep = o.schedule !== null && o.scheduleInterval === 'step';
    const hyper = (j: number): { lr: number; momentum: number } => this.hyper(perStep ? scheduler0 + j : scheduler0);
    const end: RunEnd = { lr: o.lr, error: null, stopped: false };
    this.inRun = steps > 1;
    let executed: number;
    try {
      executed = await this.core.run({
        data, batch0, steps, batchSize: o.batchSize, hyper, maxNorm: o.clipGradNorm, normType: o.clipNormType,
        nonfiniteRule: nonfiniteRule(o),
      }, (j, record) => {
        end.lr = hyper(j).lr;
        this.recordStep(plan, { ...span, batch: batch0 + j, perStep }, record, end);
      });
    } catch (err) {
      const place: StepPlace = { step: st.step + 1, epoch: span.epoch, batch: st.batch + 1, batches: span.batches };
      throw err instanceof ShardFailure ? shardFailure(err, { data, rowName: plan.rowName, place }, o) : err;
    } finally {
      this.inRun = false;
    }
    end.stopped = end.error === null && executed < steps;
    return end;
  }

  /**
   * A committed step of the epoch (batch b, 0-based): a non-finite one ends fit() where nonfiniteRule says
   * (onNonfinite 'stop'; errorIfNonfinite under clipping, for a non-finite norm), else it is counted and
   * skipped; the step is
   * counted in the state, written to TensorBoard and told to onStep. A throw in onStep ends the run.
   */
  private recordStep(plan: FitPlan, at: EpochSpan & { batch: number; perStep: boolean }, record: StepRecord, end: RunEnd): void {
    const st = this.state;
    const { sums, decision, timing } = record;
    const b = at.batch;
    if (decision.outcome === 'nonfinite') {
      // The rule the workers ended the run by: fit() ends on this step, neither applied nor counted.
      if (nonfiniteEnds(nonfiniteRule(this.options), decision.gradNorm)) end.error ??= this.endingError(plan, at, record);
      if (end.error !== null) return;
      st.epochNonfinite++;
    }
    if (decision.outcome !== 'update') st.epochSkipped++;
    st.step++;
    st.batch = b + 1;
    if (at.perStep) st.schedulerSteps++;
    if (decision.outcome !== 'nonfinite') addSums(st.epochSums, sums);
    plan.board?.scalars(st.step, [[TAGS.loss, sums.lossSum / sums.weightSum], [TAGS.lr, end.lr], [TAGS.gradNorm, decision.gradNorm]]);
    const onStep = plan.fit.onStep;
    if (end.error !== null || onStep === undefined) return;
    try {
      onStep({
        epoch: at.epoch, batch: b + 1, batches: at.batches, step: st.step, loss: sums.lossSum / sums.weightSum, rows: sums.rows,
        lr: end.lr, gradNorm: decision.gradNorm,
        ...(decision.outcome === 'update' ? {} : { skipped: true }),
        timing,
      });
    } catch (err) {
      // The workers may be a few steps on: they stop after the one they are on, which is recorded.
      end.error = err;
      this.core.requestStop();
    }
  }

  /** The error a non-finite step that ends fit() (by nonfiniteRule) ends it with: clip_grad_norm_'s for a
   *  non-finite norm under errorIfNonfinite, else onNonfinite 'stop''s naming its shards and samples. */
  private endingError(plan: FitPlan, at: EpochSpan & { batch: number }, { sums, decision }: StepRecord): unknown {
    const o = this.options;
    const { data } = plan;
    const start = at.batch * o.batchSize;
    const end = Math.min(start + o.batchSize, data.rows);
    const place: StepPlace = { step: this.state.step + 1, epoch: at.epoch, batch: at.batch + 1, batches: at.batches };
    try {
      if (o.clipGradNorm !== null && o.errorIfNonfinite) checkNormFinite(decision.gradNorm, o.clipNormType);
      const badShards = this.core.nonfiniteShards(start, end);
      return nonfiniteError({ data, rowName: plan.rowName, place }, { sums, gradNorm: decision.gradNorm, lr: o.lr, badShards });
    } catch (err) {
      return err;
    }
  }
}
