// The line printed per epoch: samples/s only for an epoch long enough for the rate to mean something.

import { describe, expect, it } from 'vitest';
import { epochText, MIN_RATE_SECONDS, type EpochRecord } from '../src/main/index.js';

const record = (seconds: number): EpochRecord => ({
  epoch: 2, trainLoss: 0.5, trainAccuracy: 0.75, lr: 0.05, samplesPerSec: 120 / seconds, seconds, steps: 8, skippedSteps: 0, nonfiniteSteps: 0,
});

describe('epochText', () => {
  it(`prints samples/s for an epoch of ${MIN_RATE_SECONDS} s or more`, () => {
    expect(MIN_RATE_SECONDS).toBe(0.1);
    expect(epochText(record(0.1), { epochs: 3 })).toBe('epoch 2/3: train loss 0.5000, train accuracy 75.00%, lr 0.05, 1200 samples/s, 0.10 s\n');
    expect(epochText(record(2.4), { epochs: 3 })).toBe('epoch 2/3: train loss 0.5000, train accuracy 75.00%, lr 0.05, 50 samples/s, 2.40 s\n');
  });

  it('leaves it out for a shorter epoch, whose rate is mostly fixed costs', () => {
    expect(epochText(record(0.0999), { epochs: 3 })).toBe('epoch 2/3: train loss 0.5000, train accuracy 75.00%, lr 0.05, 0.10 s\n');
    expect(epochText(record(0.004), { epochs: 3 })).toBe('epoch 2/3: train loss 0.5000, train accuracy 75.00%, lr 0.05, 0.00 s\n');
  });
});
