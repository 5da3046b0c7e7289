// The step record both sides of the thread boundary share (src/shared/ring.ts), against layouts written
// out by hand from contract.ts's protocol: where each field of a ring row sits, the outcome codes both
// ways, the step-committed rule, the progress a command is posted with, and the size of a worker's
// shard scratch (the coordinator's memory check) against the arrays createScratch really makes.

import { describe, expect, it } from 'vitest';
import { controlFields, RING_STEPS } from '../src/shared/contract.js';
import { heapArrays, heapScratchBytes, type ModelConfig } from '../src/shared/model.js';
import {
  commitStep, kRingReduceMs, kRingUpdateMs, kRingWaitMs, kRingWorkerStartMs, mapRing, OUTCOME_CODES, outcomeOfCode, postedProgress,
  postProgress, readStepRow, ringBytes, startRun, writeShare, writeStepRow, type StepOutcome, type StepProgress,
} from '../src/shared/ring.js';
import type { BatchSums, StepDecision } from '../src/shared/step.js';
import { createScratch } from '../src/worker/shard.js';

/** A ring for 2 workers: rows of 12 step fields then 4 per worker, 20 float64s. */
function ring2(): ReturnType<typeof mapRing> {
  return mapRing(new SharedArrayBuffer(ringBytes(2)), 2);
}

const SUMS: BatchSums = { lossSum: 1.5, weightSum: 2.5, correct: 3, counted: 4, rows: 5 };

describe('a ring row', () => {
  it('is 12 step fields and 4 per worker, for RING_STEPS + 1 rows', () => {
    expect(ringBytes(2)).toBe((RING_STEPS + 1) * 20 * 8);
    expect(ringBytes(3)).toBe((RING_STEPS + 1) * 24 * 8);
    expect(ring2().row).toBe(20);
  });

  it("holds worker 0's sums, decision and compute times at the indices the protocol gives them", () => {
    const r = ring2();
    writeStepRow(r, 3, SUMS, { outcome: 'no-targets', gradNorm: 6.5, coef: 0.25 }, { maxMs: 7, sumMs: 8, tasks: 2 });
    // Row 3 starts at 60: lossSum, weightSum, correct, counted, rows, gradNorm, outcome, compute max, sum,
    // tasks, (the run's start, row 0 only), coef.
    expect(Array.from(r.f64.subarray(60, 72))).toEqual([1.5, 2.5, 3, 4, 5, 6.5, 1, 7, 8, 2, 0, 0.25]);
    expect(r.f64.findIndex((v, i) => v !== 0 && (i < 60 || i >= 72))).toBe(-1);
  });

  it("holds each worker's share at 12 + 4w: reduce, update, start, wait", () => {
    const r = ring2();
    [kRingReduceMs, kRingUpdateMs, kRingWorkerStartMs, kRingWaitMs].forEach((field, k) => {
      writeShare(r, 3, 1, field, 10 + k);
      writeShare(r, 3, 0, field, 20 + k);
    });
    expect(Array.from(r.f64.subarray(72, 80))).toEqual([20, 21, 22, 23, 10, 11, 12, 13]);
    expect(r.f64.findIndex((v, i) => v !== 0 && (i < 72 || i >= 80))).toBe(-1);
  });

  it("is cleared for a run: the post's time in row 0, no worker's start in rows 1 .. steps", () => {
    const r = ring2();
    startRun(r, 2, 1000);
    expect(r.f64[10]).toBe(1000);
    const nan = Array.from(r.f64.keys()).filter((i) => Number.isNaN(r.f64[i]));
    expect(nan).toEqual([34, 38, 54, 58]);
  });

  it('reads back as the step record, its timing worked out from the row by hand', () => {
    const r = ring2();
    // Step 1 (row 20): the sums and decision, compute max 5 and sum 8 over 2 tasks.
    r.f64.set([1, 2, 3, 4, 5, 0.5, 2, 5, 8, 2, 0, 0.75], 20);
    // Workers 0 and 1: reduce 1 and 2, update 3 and 0.5, started at 100 and 101, waited 4 and 6.
    r.f64.set([1, 3, 100, 4, 2, 0.5, 101, 6], 32);
    // Step 2's starts: worker 0 was stood in for (NaN), worker 1 began at 112.
    r.f64[54] = NaN;
    r.f64[58] = 112;
    const got = readStepRow(r, 1);
    expect(got.sums).toEqual({ lossSum: 1, weightSum: 2, correct: 3, counted: 4, rows: 5 });
    expect(got.decision).toEqual({ outcome: 'nonfinite', gradNorm: 0.5, coef: 0.75 });
    // stepMs 112 - 100; reduce and update worker 0's (1 + 3 against 2 + 0.5); wait their mean; barrier
    // 5 - 8 / 2; dispatch 12 - 5 - 1 - 3.
    expect(got.timing).toEqual({
      stepMs: 12, computeMs: 5, computeTotalMs: 8, barrierMs: 1, waitMs: 5, dispatchMs: 3, reduceMs: 1, updateMs: 3, tasks: 2,
    });
  });

  it("takes the reduction and the update from one worker, so that no part of the step is negative", () => {
    // Without clipping, reduce and update are one phase: worker 0 reduces 4 and updates 1, worker 1
    // reduces 1 and updates 4; the phase lasts 5, and the step 5 + 5 (compute and the phase, nothing
    // else). The slowest reduce and the slowest update together (8) would leave dispatch at -3.
    const r = ring2();
    r.f64.set([1, 2, 3, 4, 5, 0.5, 0, 5, 10, 2, 0, 1], 20);
    r.f64.set([4, 1, 100, 0, 1, 4, 100, 0], 32);
    r.f64[54] = 110; // step 2's starts
    r.f64[58] = 110;
    const t = readStepRow(r, 1).timing;
    expect([t.stepMs, t.computeMs, t.reduceMs, t.updateMs, t.dispatchMs]).toEqual([10, 5, 4, 1, 0]);
  });

  it("times a run's first step from the post, not from the workers' row-0 starts", () => {
    const r = ring2();
    r.f64[10] = 50; // the post
    r.f64[14] = 40; // the workers' start fields of row 0, which are not read for step 0
    r.f64[18] = 40;
    r.f64[34] = 61; // step 1's starts, workers 0 and 1
    r.f64[38] = 60;
    expect(readStepRow(r, 0).timing.stepMs).toBe(10);
  });
});

describe('the outcome codes', () => {
  const CODES: [StepOutcome, number][] = [['update', 0], ['no-targets', 1], ['nonfinite', 2]];

  it('are 0, 1 and 2, one per outcome', () => {
    expect(OUTCOME_CODES).toEqual(Object.fromEntries(CODES));
  });

  it.each(CODES)("decode '%s' from %i, and a row written with it reads back the same", (outcome, code) => {
    expect(outcomeOfCode(code)).toBe(outcome);
    const r = ring2();
    const decision: StepDecision = { outcome, gradNorm: 2, coef: 1 };
    writeStepRow(r, 0, SUMS, decision, { maxMs: 1, sumMs: 1, tasks: 1 });
    expect(r.f64[6]).toBe(code);
    expect(readStepRow(r, 0)).toMatchObject({ sums: SUMS, decision });
  });

  it('refuse a code that is no outcome', () => {
    for (const code of [-1, 3, 0.5, NaN]) expect(() => outcomeOfCode(code)).toThrow(`ring: ${code} is not a step outcome code`);
  });
});

describe('the step-committed rule', () => {
  const at = (parity: 0 | 1, hasMomentumBuffer: boolean, adamStep: number): StepProgress => ({ parity, hasMomentumBuffer, adamStep });
  /** [what, before, outcome, momentum, adam, after], each worked out from torch's SGD and Adam. */
  const CASES: [string, StepProgress, StepOutcome, number, boolean, StepProgress][] = [
    ['an SGD update with momentum starts the buffer', at(0, false, 0), 'update', 0.9, false, at(1, true, 0)],
    ['an SGD update without momentum leaves it unstarted', at(1, false, 0), 'update', 0, false, at(0, false, 0)],
    ['a momentum that is 0 in float32 does not start it', at(0, false, 0), 'update', 1e-50, false, at(1, false, 0)],
    ['a step without momentum keeps a started buffer', at(0, true, 0), 'update', 0, false, at(1, true, 0)],
    ['an Adam update counts a step, whatever betas[0]', at(1, false, 4), 'update', 0, true, at(0, false, 5)],
    ['a step with no targets changes nothing', at(1, false, 4), 'no-targets', 0.9, true, at(1, false, 4)],
    ['a non-finite step changes nothing', at(0, false, 0), 'nonfinite', 0.9, false, at(0, false, 0)],
  ];
  it.each(CASES)('%s', (_what, before, outcome, momentum, adam, after) => {
    const p = { ...before };
    commitStep(p, outcome, momentum, adam);
    expect(p).toEqual(after);
  });

  it('starts each command from the progress posted in the control block (kCtlParity 9, kCtlHasMomentum 10, kCtlAdamStep 18)', () => {
    const control = new Int32Array(controlFields(2));
    postProgress(control, at(1, true, 7));
    expect([control[9], control[10], control[18]]).toEqual([1, 1, 7]);
    expect(control.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0)).toBe(3);
    expect(postedProgress(control)).toEqual(at(1, true, 7));
    postProgress(control, at(0, false, 0));
    expect(postedProgress(control)).toEqual(at(0, false, 0));
  });
});

describe("a worker's shard scratch in its own heap", () => {
  /** Bytes of the distinct arrays among `arrays` (a scratch's last a and da are its z and dz). */
  const bytesOf = (arrays: readonly ArrayBufferView[]): number => [...new Set(arrays)].reduce((n, a) => n + a.byteLength, 0);
  const arraysOf = (s: ReturnType<typeof createScratch>): ArrayBufferView[] =>
    [s.x, s.yIndex, s.yValue, ...s.z, ...s.a, ...s.dz, ...s.da, s.probs, s.losses];

  it('is targets as indices and values, probabilities and losses: maxRows, and maxRows x K each', () => {
    expect(heapArrays([3, 7, 4], 5)).toEqual({ yIndex: 5, yValue: 20, probs: 20, losses: 20 });
  });

  for (const layers of [[784, 128, 10], [5, 1], [3, 7, 9, 4]]) {
    const model: ModelConfig = { layers, activation: 'relu', loss: 'cross-entropy' };
    it(`is sized as createScratch allocates it, for layers ${layers.join('-')}`, () => {
      // The TypeScript kernels: every array in the heap.
      expect(heapScratchBytes(layers, 13, true)).toBe(bytesOf(arraysOf(createScratch(model, 13))));
      // The WebAssembly kernels: the kernels' arrays are elsewhere (their region), the rest in the heap.
      const elsewhere = new Set<ArrayBufferView>();
      const w = createScratch(model, 13, (n) => {
        const a = new Float32Array(n);
        elsewhere.add(a);
        return a;
      });
      expect(heapScratchBytes(layers, 13, false)).toBe(bytesOf(arraysOf(w).filter((a) => !elsewhere.has(a))));
    });
  }
});
