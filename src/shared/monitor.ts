// The per-epoch metrics that early stopping, --save-best and ReduceLROnPlateau watch, and which way each
// improves: losses downwards (torch's mode 'min'), accuracies upwards ('max'), as Keras' mode 'auto'.

export type Monitor = 'valLoss' | 'valAccuracy' | 'trainLoss' | 'trainAccuracy';

export const MONITORS: readonly Monitor[] = ['valLoss', 'valAccuracy', 'trainLoss', 'trainAccuracy'];

/** 'min' for a loss, 'max' for an accuracy. */
export function monitorMode(m: Monitor): 'min' | 'max' {
  return m.endsWith('Loss') ? 'min' : 'max';
}
