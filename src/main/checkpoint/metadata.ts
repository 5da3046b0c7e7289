// What a gradpool checkpoint records in its safetensors __metadata__ (string to string), each key named
// once: the format and its version, the model config, the data and header checksums, the Trainer's
// options and training state, the model's preprocessing, the training script's run; the extra tensor for
// SGD's momentum; and the JSON codec those values are written with.

export const FORMAT_KEY = 'format';
export const FORMAT = 'gradpool';
export const VERSION_KEY = 'gradpool.version';
export const VERSION = '1';
/** The model config as JSON: {"layers":[...],"activation":...,"loss":...}. */
export const CONFIG_KEY = 'config';
/** The hex SHA-256 of the data section (every byte after the header). */
export const CHECKSUM_KEY = 'gradpool.sha256';
/** The hex SHA-256 of the header as parsed: every __metadata__ entry but this one, and every tensor's
 *  name, dtype, shape and offsets (checkpoint/safetensors.ts headerDigest). Files without it load. */
export const HEADER_CHECKSUM_KEY = 'gradpool.header-sha256';
/** Keys the writer sets itself: a caller's extra metadata may not. */
export const RESERVED_KEYS: readonly string[] = [FORMAT_KEY, VERSION_KEY, CONFIG_KEY, CHECKSUM_KEY, HEADER_CHECKSUM_KEY];
/** The Trainer's resolved options (metadataJson). */
export const OPTIONS_KEY = 'gradpool.options';
/** The training state for resuming (src/main/core/state.ts). */
export const STATE_KEY = 'gradpool.state';
/** The model's input pipeline (src/main/data/preprocessing.ts): normalisation, column and class names. */
export const PREPROCESSING_KEY = 'gradpool.preprocessing';
/** The training data's fingerprint (src/main/data/fingerprint.ts), so that a resume on other data is caught. */
export const DATA_KEY = 'gradpool.data';
/** The training script's flags, for --resume. */
export const RUN_KEY = 'gradpool.run';
/** The tensor holding SGD's momentum buffer, once it has started. */
export const MOMENTUM_TENSOR = 'optimizer.momentum_buffer';
/** The tensors holding Adam's state once it has taken a step, under torch's state names: the first and
 *  second moments and, with AMSGrad, the second's running maximum. */
export const ADAM_TENSORS = ['optimizer.exp_avg', 'optimizer.exp_avg_sq', 'optimizer.max_exp_avg_sq'] as const;

/**
 * A value as a metadata string (safetensors metadata is string to string): JSON, with Infinity (a norm
 * type, say) written as the string "Infinity", which JSON has no number for. parseMetadataJson undoes it.
 */
export function metadataJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) => (v === Infinity ? 'Infinity' : v));
}

export function parseMetadataJson(text: string): unknown {
  return JSON.parse(text, (_, v: unknown) => (v === 'Infinity' ? Infinity : v));
}

