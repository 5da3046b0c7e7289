// Checks scheduleAt against the learning rates (and OneCycle momenta) torch.optim.lr_scheduler put in force
// before each optimizer.step(), recorded by scripts/reference/make_schedule_fixtures.py into
// test/fixtures/torch-schedules.json; against the documented formulas by hand; that it is a pure function
// of t; and that validateSchedule refuses what torch refuses, with messages naming the field.

import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { scheduleAt, scheduleLength, validateSchedule } from '../src/shared/schedule.js';
import type { ScheduleSpec } from '../src/shared/schedule.js';

interface ScheduleCase {
  name: string;
  spec: ScheduleSpec;
  baseLr: number;
  /** SGD's own momentum, which OneCycle with cycleMomentum overrides */
  sgdMomentum: number;
  /** param_groups[0]['lr'] and ['momentum'] before each optimizer.step() */
  lr: number[];
  momentum: number[];
  /** torch raised on the scheduler.step() after optimizer step `afterSteps` */
  error?: { afterSteps: number; type: string; message: string };
}

interface RejectCase {
  name: string;
  spec: ScheduleSpec;
  why: string;
  torchError: string | null;
}

const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/torch-schedules.json', import.meta.url), 'utf8'),
) as { torch: string; schedules: ScheduleCase[]; rejects: RejectCase[]; sequentialQuirks: ScheduleCase[] };

// torch steps most schedules recursively (lr *= factor); the closed form differs by float64 rounding only.
const REL = 1e-6;
const ABS = 1e-15;

/** Compares got(t) with want[t] for every t; fails with the worst step. */
function expectSequence(got: (t: number) => number, want: number[], what: string): void {
  let worst = -Infinity;
  let where = '';
  want.forEach((w, t) => {
    const g = got(t);
    const excess = Math.abs(g - w) - (ABS + REL * Math.abs(w));
    if (!(excess <= worst)) { worst = excess; where = `t=${t}: gradpool ${g} vs torch ${w}`; }
  });
  expect(worst, `${what}: worst at ${where}`).toBeLessThanOrEqual(0);
}

const cycles = (s: ScheduleSpec): boolean => s.name === 'onecycle' && s.cycleMomentum !== false;

describe(`schedules against torch ${fixture.torch}`, () => {
  const cases = fixture.schedules.map((c) => [c.name, c] as const);

  it.each(cases)('%s: the lr before every optimizer step matches torch', (_n, c) => {
    validateSchedule(c.spec);
    expectSequence((t) => scheduleAt(c.spec, c.baseLr, t).lr, c.lr, 'lr');
  });

  it.each(cases)('%s: the momentum matches torch (set only by a momentum-cycling OneCycle)', (_n, c) => {
    if (cycles(c.spec)) {
      expectSequence((t) => scheduleAt(c.spec, c.baseLr, t).momentum ?? NaN, c.momentum, 'momentum');
    } else {
      c.lr.forEach((_lr, t) => expect(scheduleAt(c.spec, c.baseLr, t).momentum).toBeUndefined());
      expect(c.momentum.every((m) => m === c.sgdMomentum)).toBe(true);
    }
  });

  const failing = fixture.schedules.filter((c) => c.error !== undefined).map((c) => [c.name, c] as const);
  it.each(failing)('%s: throws where torch does, with its message', (_n, c) => {
    const e = c.error!;
    expect(scheduleLength(c.spec)).toBe(e.afterSteps - 1);
    expect(() => scheduleAt(c.spec, c.baseLr, e.afterSteps - 1)).not.toThrow();
    expect(() => scheduleAt(c.spec, c.baseLr, e.afterSteps)).toThrow(RangeError);
    expect(() => scheduleAt(c.spec, c.baseLr, e.afterSteps)).toThrow(e.message);
  });

  it.each(fixture.rejects.map((c) => [c.name, c] as const))('%s: torch fails on it and validateSchedule refuses it', (_n, c) => {
    expect(c.torchError, c.why).not.toBeNull();
    expect(() => validateSchedule(c.spec)).toThrow();
  });

  it.each(fixture.sequentialQuirks.map((c) => [c.name, c] as const))(
    '%s: torch runs it off its sub-schedules\' formulas, and validateSchedule refuses it', (_n, c) => {
      expect(() => validateSchedule(c.spec)).toThrow(RangeError);
    });
});

describe('scheduleAt by the documented formulas', () => {
  const near = (got: number, want: number): void => expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-15 + 1e-12 * Math.abs(want));

  it('StepLR holds for stepSize steps, then multiplies by gamma', () => {
    const s: ScheduleSpec = { name: 'step', stepSize: 3 };
    near(scheduleAt(s, 0.1, 0).lr, 0.1);
    near(scheduleAt(s, 0.1, 2).lr, 0.1);
    near(scheduleAt(s, 0.1, 3).lr, 0.01);
    near(scheduleAt(s, 0.1, 6).lr, 0.001);
  });
  it('MultiStepLR multiplies by gamma once per milestone reached', () => {
    const s: ScheduleSpec = { name: 'multistep', milestones: [2, 5, 9], gamma: 0.5 };
    near(scheduleAt(s, 0.8, 1).lr, 0.8);
    near(scheduleAt(s, 0.8, 2).lr, 0.4);
    near(scheduleAt(s, 0.8, 8).lr, 0.2);
    near(scheduleAt(s, 0.8, 9).lr, 0.1);
  });
  it('ExponentialLR multiplies by gamma every step', () => {
    near(scheduleAt({ name: 'exponential', gamma: 0.9 }, 0.1, 2).lr, 0.081);
  });
  it('CosineAnnealingLR is baseLr at 0, the midpoint at tMax / 2, etaMin at tMax, and baseLr again at 2 tMax', () => {
    const s: ScheduleSpec = { name: 'cosine', tMax: 10, etaMin: 0.01 };
    near(scheduleAt(s, 0.1, 0).lr, 0.1);
    near(scheduleAt(s, 0.1, 5).lr, 0.055);
    near(scheduleAt(s, 0.1, 10).lr, 0.01);
    near(scheduleAt(s, 0.1, 20).lr, 0.1);
  });
  it('LinearLR goes from startFactor to endFactor over totalIters, then stays', () => {
    const s: ScheduleSpec = { name: 'linear' };
    near(scheduleAt(s, 0.3, 0).lr, 0.1);
    near(scheduleAt(s, 0.3, 2).lr, 0.3 * (1 / 3 + (2 / 3) * 2 / 5));
    near(scheduleAt(s, 0.3, 5).lr, 0.3);
    near(scheduleAt(s, 0.3, 500).lr, 0.3);
  });
  it('OneCycleLR starts at maxLr / 25, peaks at step pctStart * totalSteps - 1 and ends at maxLr / 25 / 1e4', () => {
    const s: ScheduleSpec = { name: 'onecycle', maxLr: 1, totalSteps: 20 };
    const at = (t: number) => scheduleAt(s, 123, t);
    near(at(0).lr, 0.04);
    near(at(0).momentum!, 0.95);
    near(at(5).lr, 1);
    near(at(5).momentum!, 0.85);
    near(at(19).lr, 0.04 / 1e4);
    near(at(19).momentum!, 0.95);
  });
  it('OneCycleLR ignores baseLr', () => {
    const s: ScheduleSpec = { name: 'onecycle', maxLr: 1, totalSteps: 20 };
    expect(scheduleAt(s, 0.1, 7)).toEqual(scheduleAt(s, 10, 7));
  });
  it('SequentialLR restarts the next schedule at baseLr on its milestone, the warm-up never reaching its end', () => {
    const s: ScheduleSpec = {
      name: 'sequential', milestones: [3],
      schedulers: [{ name: 'linear', startFactor: 0.1, totalIters: 3 }, { name: 'cosine', tMax: 7 }],
    };
    near(scheduleAt(s, 0.1, 2).lr, 0.07);
    near(scheduleAt(s, 0.1, 3).lr, 0.1);
    near(scheduleAt(s, 0.1, 10).lr, 0);
  });
  it('scheduleLength is null for all but OneCycle', () => {
    expect(scheduleLength({ name: 'cosine', tMax: 5 })).toBeNull();
    expect(scheduleLength({ name: 'sequential', milestones: [2], schedulers: [{ name: 'linear' }, { name: 'step', stepSize: 2 }] })).toBeNull();
    expect(scheduleLength({ name: 'onecycle', maxLr: 1, totalSteps: 30 })).toBe(30);
  });
});

describe('scheduleAt is a pure function of t', () => {
  const specs: ScheduleSpec[] = fixture.schedules.map((c) => c.spec);

  it('gives the same values in any order and interleaved with other schedules, as a resumed run needs', () => {
    const N = 12;
    const forward = specs.map((s) => Array.from({ length: N }, (_, t) => scheduleAt(s, 0.1, Math.min(t, scheduleLength(s) ?? t))));
    for (let t = N - 1; t >= 0; t--) {
      specs.forEach((s, i) => {
        expect(scheduleAt(s, 0.1, Math.min(t, scheduleLength(s) ?? t))).toEqual(forward[i][t]);
      });
    }
  });
  it('leaves the spec unchanged', () => {
    const s: ScheduleSpec = { name: 'onecycle', maxLr: 1, totalSteps: 10, threePhase: true };
    const copy = structuredClone(s);
    scheduleAt(s, 0.1, 4);
    validateSchedule(s);
    expect(s).toEqual(copy);
  });
  it('rejects a negative or fractional t', () => {
    const s: ScheduleSpec = { name: 'exponential', gamma: 0.9 };
    expect(() => scheduleAt(s, 0.1, -1)).toThrow('t must be a scheduler step count, an integer >= 0; got -1');
    expect(() => scheduleAt(s, 0.1, 1.5)).toThrow(RangeError);
  });
});

describe('validateSchedule', () => {
  const bad = (spec: unknown, where?: string): (() => void) => () => validateSchedule(spec as ScheduleSpec, where);

  it('accepts every fixture schedule and the defaults', () => {
    for (const c of fixture.schedules) expect(bad(c.spec)).not.toThrow();
    expect(bad({ name: 'linear' })).not.toThrow();
    expect(bad({ name: 'onecycle', maxLr: 0.1, totalSteps: 100 })).not.toThrow();
  });
  it('names an unknown schedule', () => {
    expect(bad({ name: 'warmup' })).toThrow(TypeError);
    expect(bad({ name: 'warmup' })).toThrow(
      "options.schedule.name must be one of 'step', 'multistep', 'exponential', 'cosine', 'linear', 'onecycle', 'sequential', 'plateau'; got 'warmup'");
    expect(bad(null)).toThrow('options.schedule must be an object with a name; got null');
    // objects as JSON, strings (inside arrays too) in PyTorch's single quotes
    expect(bad({ name: 'sequential', schedulers: { name: 'step' }, milestones: [2] })).toThrow(
      'options.schedule.schedulers must be an array of schedules; got {"name":"step"}');
    expect(bad({ name: 'multistep', milestones: ['2'] })).toThrow("options.schedule.milestones must be an array of integers; got ['2']");
  });
  it('names the field under the where it is given', () => {
    expect(bad({ name: 'step', stepSize: 0 }, 'opts.lrSchedule')).toThrow('opts.lrSchedule.stepSize must be a positive integer; got 0');
  });
  it('requires an integer stepSize, tMax and totalIters', () => {
    expect(bad({ name: 'step', stepSize: 2.5 })).toThrow('options.schedule.stepSize must be a positive integer; got 2.5');
    expect(bad({ name: 'step' })).toThrow('options.schedule.stepSize must be a finite number; got undefined');
    expect(bad({ name: 'cosine', tMax: 0 })).toThrow('options.schedule.tMax must be a positive integer; got 0');
    expect(bad({ name: 'linear', totalIters: 0 })).toThrow('options.schedule.totalIters must be a positive integer; got 0');
  });
  it('requires ExponentialLR\'s gamma and a gamma >= 0', () => {
    expect(bad({ name: 'exponential' })).toThrow(TypeError);
    expect(bad({ name: 'exponential' })).toThrow('options.schedule.gamma must be a finite number; got undefined');
    expect(bad({ name: 'step', stepSize: 2, gamma: -0.5 })).toThrow('options.schedule.gamma must be >= 0; got -0.5');
  });
  it('requires MultiStepLR milestones to be integers >= 0, in any order, repeats allowed', () => {
    expect(bad({ name: 'multistep', milestones: [5, 2, 2] })).not.toThrow();
    expect(bad({ name: 'multistep', milestones: [2, -1] })).toThrow('options.schedule.milestones must be integers >= 0; got [2, -1]');
    expect(bad({ name: 'multistep', milestones: [1.5] })).toThrow('options.schedule.milestones must be an array of integers; got [1.5]');
  });
  it('requires LinearLR startFactor in (0, 1] and endFactor in [0, 1]', () => {
    expect(bad({ name: 'linear', startFactor: 0 })).toThrow(RangeError);
    expect(bad({ name: 'linear', startFactor: 0 })).toThrow(
      "options.schedule.startFactor must be > 0 and <= 1 (LinearLR's starting multiplicative factor); got 0 " +
      '(torch accepts 0, then divides by zero on the first step)');
    expect(bad({ name: 'linear', endFactor: 1.5 })).toThrow(
      "options.schedule.endFactor must be >= 0 and <= 1 (LinearLR's ending multiplicative factor); got 1.5");
  });
  it('requires OneCycleLR\'s maxLr and totalSteps', () => {
    expect(bad({ name: 'onecycle', maxLr: 1 })).toThrow('options.schedule.totalSteps must be a finite number; got undefined');
    expect(bad({ name: 'onecycle', maxLr: 1, totalSteps: -3 })).toThrow('options.schedule.totalSteps must be a positive integer; got -3');
    expect(bad({ name: 'onecycle', totalSteps: 10 })).toThrow('options.schedule.maxLr must be a finite number; got undefined');
  });
  it('checks OneCycleLR\'s pctStart, annealStrategy, factors and flags', () => {
    const oc = { name: 'onecycle', maxLr: 1, totalSteps: 10 };
    expect(bad({ ...oc, pctStart: 1.5 })).toThrow('options.schedule.pctStart must be between 0 and 1; got 1.5');
    expect(bad({ ...oc, annealStrategy: 'exp' })).toThrow("options.schedule.annealStrategy must be 'cos' or 'linear'; got 'exp'");
    expect(bad({ ...oc, divFactor: 0 })).toThrow('options.schedule.divFactor must be > 0; got 0');
    expect(bad({ ...oc, threePhase: 'yes' })).toThrow("options.schedule.threePhase must be a boolean; got 'yes'");
    expect(bad({ ...oc, baseMomentum: -0.1 })).toThrow('options.schedule.baseMomentum must be >= 0; got -0.1');
  });
  it('refuses a OneCycleLR phase of zero steps, on which torch divides by zero', () => {
    expect(bad({ name: 'onecycle', maxLr: 1, totalSteps: 10, pctStart: 0.1 })).toThrow(expect.objectContaining({
      message: 'options.schedule.pctStart 0.1 with totalSteps 10 gives OneCycleLR a first phase of zero steps, which torch ' +
        'divides by (ZeroDivisionError at construction)\nhint: change pctStart or totalSteps',
      hint: 'change pctStart or totalSteps',
    }));
    expect(bad({ name: 'onecycle', maxLr: 1, totalSteps: 5, pctStart: 1 })).toThrow(
      'gives OneCycleLR a last phase of zero steps, which torch divides by (ZeroDivisionError on the last scheduler.step())');
  });
  it('requires one milestone fewer than schedulers in SequentialLR', () => {
    const s = { name: 'sequential', milestones: [2, 4], schedulers: [{ name: 'linear' }, { name: 'exponential', gamma: 0.9 }] };
    expect(bad(s)).toThrow(
      'options.schedule.milestones must have one entry fewer than options.schedule.schedulers, as SequentialLR requires; ' +
      'got 2 milestones for 2 schedulers');
    expect(bad({ name: 'sequential', milestones: [], schedulers: [] })).toThrow('got 0 milestones for 0 schedulers');
  });
  it('requires SequentialLR milestones to be strictly increasing and >= 1', () => {
    const three = [{ name: 'linear' }, { name: 'exponential', gamma: 0.9 }, { name: 'step', stepSize: 2 }];
    const msg = 'options.schedule.milestones must be strictly increasing integers >= 1; got ';
    expect(bad({ name: 'sequential', milestones: [4, 2], schedulers: three })).toThrow(`${msg}[4, 2]`);
    expect(bad({ name: 'sequential', milestones: [2, 2], schedulers: three })).toThrow(`${msg}[2, 2]`);
    expect(bad({ name: 'sequential', milestones: [0, 2], schedulers: three })).toThrow(`${msg}[0, 2]`);
  });
  it('refuses a nested SequentialLR or a OneCycleLR inside SequentialLR', () => {
    const nested = { name: 'sequential', milestones: [3], schedulers: [{ name: 'linear' }, { name: 'sequential', milestones: [], schedulers: [{ name: 'linear' }] }] };
    expect(bad(nested)).toThrow("options.schedule.schedulers[1] cannot be 'sequential': torch 1.13's SequentialLR cannot be nested");
    const oc = { name: 'sequential', milestones: [3], schedulers: [{ name: 'linear' }, { name: 'onecycle', maxLr: 1, totalSteps: 5 }] };
    expect(bad(oc)).toThrow("options.schedule.schedulers[1] cannot be 'onecycle': OneCycleLR is not chainable");
  });
  it('names a sub-schedule\'s field by its position', () => {
    const s = { name: 'sequential', milestones: [3], schedulers: [{ name: 'linear' }, { name: 'cosine', tMax: 0 }] };
    expect(bad(s)).toThrow('options.schedule.schedulers[1].tMax must be a positive integer; got 0');
  });
});
