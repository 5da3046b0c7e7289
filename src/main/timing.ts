// A step's timing as the Trainer reports it (StepTiming), from the coordinator's clocks (BatchTiming)
// and the step's wall time on the Trainer's own clock.

import type { BatchTiming } from './coordinator.js';
import type { StepTiming } from './types.js';

export function stepTiming(t: BatchTiming, stepMs: number): StepTiming {
  return {
    stepMs,
    computeMs: t.computeMaxMs,
    computeTotalMs: t.computeSumMs,
    barrierMs: t.computeMaxMs - t.computeSumMs / t.tasks,
    dispatchMs: stepMs - t.computeMaxMs - t.reduceMs - t.updateMs,
    reduceMs: t.reduceMs,
    updateMs: t.updateMs,
    tasks: t.tasks,
  };
}
