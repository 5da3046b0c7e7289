// gradpool's public API: the Trainer with its option and result types, the errors it throws, the data
// loaders (bundled MNIST, IDX, CSV) and their preparation, class weights and reports, checkpoints, and the
// worker-count tuner. The CLI (src/cli) uses only what this file exports. Nothing inside src/main imports
// this file, so it cannot close a cycle.

export {
  Trainer, type FitOptions, type StepInfo, type StepTiming, type EpochRecord, type Evaluation, type EarlyStoppingOptions, type Monitor,
} from './trainer.js';
export { predictedClass } from './trainer.js';
export { OPTIMIZERS, TRAINER_DEFAULTS, type OptimizerName, type AdamOnlyOptions, type TrainerOptions, type ScheduleOptions, type Reduction, type ResolvedOptions } from './options/options.js';
export type { LossOptions } from './options/loss-options.js';
export { BestMetric, EARLY_STOPPING_DEFAULTS } from './reporting/early-stopping.js';
export { duration, epochText, MIN_RATE_SECONDS, RunClock, type EpochTextOptions } from './reporting/epoch-text.js';
export { curvesSvg, epochsFromMetrics } from './reporting/curves.js';
export type { Dataset, Features } from './data/data.js';
export {
  CheckpointError, DataError, FileError, GradpoolError, isOptionError, NonfiniteError, OptionRangeError, OptionTypeError, ShardFailure,
  WorkerTimeout,
} from './errors.js';
export { ACTIVATIONS, defaultLoss, isSoftmaxLoss, LOSSES, type ModelConfig, type Activation, type LossName } from '../shared/model.js';
export type { ScheduleSpec } from '../shared/schedule.js';
export { scheduleAt } from '../shared/schedule.js';
export { PLATEAU_DEFAULTS, plateauStart, plateauStep, type PlateauSchedule, type PlateauState } from '../shared/plateau.js';
export { loadMnist, type MnistSplit } from './loaders/mnist.js';
export type { LoadedData } from './loaders/loaded.js';
export { decodeIdx, encodeIdx, loadIdx } from './loaders/idx.js';
export { loadCsv, type CsvOptions } from './loaders/csv.js';
export {
  applyNormalization, fitNormalization, splitValidation, type Normalization, type NormalizeMode,
} from './loaders/prepare.js';
export { fitPreprocessing, loadPreprocessing, parsePreprocessing, type Preprocessing, type ResolvedPreprocessing } from './data/preprocessing.js';
export { balancedClassWeights, classReport, reportText, type ClassMetrics, type ClassReport } from './reporting/report.js';
export { loadCheckpoint, saveCheckpoint } from './checkpoint/file.js';
export { openAtomicFile, writeFileAtomic, type AtomicFile } from './system/atomic-file.js';
export { fileKind } from './system/regular-file.js';
export { pytorchScript, savePytorchScript, type PytorchExport, type TrainingFiles } from './export/pytorch.js';
export {
  encodeOnnx, ONNX_DEFAULT_OPSET, ONNX_INPUT, ONNX_IR_VERSIONS, ONNX_LOGITS, ONNX_MAX_OPSET, ONNX_MIN_OPSET, ONNX_PROBABILITIES, resolveOpsetVersion, saveOnnx,
  type ExportedModel, type OnnxExportOptions,
} from './export/onnx.js';
export type { Checkpoint } from './checkpoint/safetensors.js';
export type { ImportedWeights, WeightsMatch } from './checkpoint/weights.js';
export { metadataJson, OPTIONS_KEY, parseMetadataJson, PREPROCESSING_KEY, RUN_KEY } from './checkpoint/metadata.js';
export { cpuLimit, type CpuLimit } from './system/cpus.js';
export { measure, type Measurement, type MeasureOptions, type MakeTrainer } from './tune/measure.js';
export {
  chooseWorkers, readTuneFile, recommend, saveTuneEntry, syntheticData, TUNE_FILE, type TuneEntry, type WorkersChoice,
} from './tune/choose.js';
export { scaling, scalingSvg } from './tune/scaling.js';
