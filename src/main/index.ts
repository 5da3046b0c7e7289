// gradpool's public API: the Trainer with its option and result types, the data loaders (bundled
// MNIST, IDX, CSV) and their preparation, class weights and reports, and the checkpoint functions.

export {
  Trainer, type FitOptions, type StepInfo, type EpochRecord, type Evaluation,
} from './trainer.js';
export type { TrainerOptions, LossOptions, ScheduleOptions, Reduction } from './options.js';
export type { Dataset, Features } from './data.js';
export { DataError } from './errors.js';
export type { ModelConfig, Activation, LossName } from '../shared/model.js';
export type { ScheduleSpec } from '../shared/schedule.js';
export { scheduleAt } from '../shared/schedule.js';
export { loadMnist, type MnistSplit } from './mnist.js';
export {
  loadCsv, loadIdx, decodeIdx, fitNormalization, applyNormalization, splitValidation,
  type CsvOptions, type LoadedData, type NormalizeMode, type Normalization,
} from './loaders/index.js';
export { balancedClassWeights, classReport, reportText, type ClassMetrics, type ClassReport } from './report.js';
export { CheckpointError, loadCheckpoint, saveCheckpoint, type Checkpoint } from './checkpoint.js';
