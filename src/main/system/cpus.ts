// How many CPUs this process may use: os.availableParallelism() (the CPUs it is allowed to run on),
// lowered to a container's CPU quota when there is one (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us),
// which Node does not account for. The default worker count and the tuner's range come from here.

import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export interface CpuLimit {
  cpus: number;
  /** Where the number came from, for the tuner's report. */
  source: string;
}

/** Reads a file's text, or null when it is missing or unreadable. */
export type ReadText = (path: string) => string | null;

/** Reads a file's text, or null; the default ReadText (memory.ts reads the cgroup's memory limit with it). */
export const readText: ReadText = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

/** The CPU limit for this process; `read` and `parallelism` are replaceable for tests. */
export function cpuLimit(read: ReadText = readText, parallelism: number = availableParallelism()): CpuLimit {
  const quota = cgroupQuota(read);
  if (quota !== null && Math.ceil(quota.cpus) < parallelism) {
    return { cpus: Math.max(1, Math.ceil(quota.cpus)), source: `${quota.source}: a quota of ${quota.cpus.toFixed(2)} CPUs (of ${parallelism} available)` };
  }
  return { cpus: parallelism, source: `os.availableParallelism() = ${parallelism}${quota === null ? ', no cgroup CPU quota' : ''}` };
}

/** The quota of the cgroup this process is in, in CPUs, or null when unlimited or unknown. */
function cgroupQuota(read: ReadText): { cpus: number; source: string } | null {
  const membership = read('/proc/self/cgroup');
  if (membership === null) return null;
  for (const line of membership.trim().split('\n')) {
    const [, controllers, path] = line.split(':');
    if (controllers === '' && path !== undefined) {
      // cgroup v2: "0::/path"; cpu.max is "<quota> <period>" or "max <period>"
      const text = read(`/sys/fs/cgroup${path === '/' ? '' : path}/cpu.max`);
      const [q, p] = text?.trim().split(/\s+/) ?? [];
      if (q !== undefined && q !== 'max' && Number(p) > 0) return { cpus: Number(q) / Number(p), source: 'cgroup v2 cpu.max' };
    } else if (controllers?.split(',').includes('cpu') && path !== undefined) {
      // cgroup v1: quota -1 means none
      for (const dir of ['cpu', 'cpu,cpuacct']) {
        const base = `/sys/fs/cgroup/${dir}${path === '/' ? '' : path}`;
        const q = Number(read(`${base}/cpu.cfs_quota_us`)?.trim());
        const p = Number(read(`${base}/cpu.cfs_period_us`)?.trim());
        if (q > 0 && p > 0) return { cpus: q / p, source: 'cgroup v1 cpu.cfs_quota_us' };
      }
    }
  }
  return null;
}
