// CPU time the hypervisor took from this virtual machine (the `steal` field of /proc/stat's first line),
// read around each timed window so that a figure says whether the machine was really the program's.
// Null where /proc/stat is missing or has no steal field (not Linux, or a kernel before 2.6.11).

import { readText, type ReadText } from '../system/cpus.js';

/** The machine's CPU time counters since boot, in clock ticks: all fields together, and steal. */
export interface CpuTicks {
  total: number;
  steal: number;
}

/** The first line of /proc/stat, summed over all CPUs; null where there is no steal field. */
export function cpuTicks(read: ReadText = readText): CpuTicks | null {
  const line = read('/proc/stat')?.split('\n', 1)[0];
  if (line === undefined || !line.startsWith('cpu ')) return null;
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is counted in user already.
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 8 || !f.every(Number.isFinite)) return null;
  return { total: f.reduce((a, b) => a + b, 0), steal: f[7] };
}

/** The percentage of CPU time stolen between two readings (null when either is null or no time passed). */
export function stealPercent(from: CpuTicks | null, to: CpuTicks | null): number | null {
  if (from === null || to === null || to.total <= from.total) return null;
  return (100 * (to.steal - from.steal)) / (to.total - from.total);
}

/** Runs `f` and returns its result with the steal over it. */
export function withSteal<T>(f: () => T): { value: T; stealPct: number | null } {
  const from = cpuTicks();
  const value = f();
  return { value, stealPct: stealPercent(from, cpuTicks()) };
}
