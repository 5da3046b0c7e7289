// gradpool's public API: the Trainer, its option and result types, the dataset shape, the bundled
// MNIST digits, and the checkpoint functions.

export { Trainer, type FitOptions, type StepInfo, type EpochRecord, type Evaluation } from './trainer.js';
export type { TrainerOptions, Reduction } from './options.js';
export type { Dataset, Features } from './data.js';
export { DataError } from './errors.js';
export type { ModelConfig, Activation, LossName } from '../shared/model.js';
export { loadMnist, type MnistSplit } from './mnist.js';
export { CheckpointError, loadCheckpoint, saveCheckpoint, type Checkpoint } from './checkpoint.js';
