// A step's timing as the Trainer reports it (StepTiming), from what the workers recorded of it in the
// ring (BatchTiming).

import type { BatchTiming } from './coordinator.js';
import type { StepTiming } from './types.js';

export function stepTiming(t: BatchTiming): StepTiming {
  const stepMs = t.stepMs;
  return {
    stepMs,
    computeMs: t.computeMaxMs,
    computeTotalMs: t.computeSumMs,
    barrierMs: t.computeMaxMs - t.computeSumMs / t.tasks,
    waitMs: t.waitMs,
    dispatchMs: stepMs - t.computeMaxMs - t.reduceMs - t.updateMs,
    reduceMs: t.reduceMs,
    updateMs: t.updateMs,
    tasks: t.tasks,
  };
}
