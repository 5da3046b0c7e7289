// Fault injection for the fault-tolerance tests: GRADPOOL_FAULTS, read by each worker at start-up, is a
// JSON list of faults, each made to happen at a point of the step protocol. Unset (always, outside the
// tests) it costs one null check per shard.
//
//   [{ "kind": "throw" | "exit" | "oom" | "hang",
//      "phase": "start" | "compute" | "computed" | "reduce" | "update" | "updated",
//                          // while the thread starts (before it is any worker: generation, worker and
//                          // shard do not apply), before a shard, after its slot is written, before
//                          // the reduction, before the update, after the worker's share of the next
//                          // parameters is written
//      "generation"?: g,   // the step's sequence number: steps (and forward commands) carried out in
//                          // the pool's life, from 1, a failed attempt using one up
//      "worker"?: w,       // the worker index
//      "shard"?: s }]      // the shard being computed (compute and computed phases only)
//
// A fault fires wherever every key it gives matches: with a generation, once (a re-run is a new
// number); without one, at every match (a shard that always fails).

export type FaultKind = 'throw' | 'exit' | 'oom' | 'hang';
export type FaultPhase = 'start' | 'compute' | 'computed' | 'reduce' | 'update' | 'updated';

export interface Fault {
  kind: FaultKind;
  phase: FaultPhase;
  generation?: number;
  worker?: number;
  shard?: number;
}

const KINDS: readonly FaultKind[] = ['throw', 'exit', 'oom', 'hang'];
const PHASES: readonly FaultPhase[] = ['start', 'compute', 'computed', 'reduce', 'update', 'updated'];

/** The injector for GRADPOOL_FAULTS's value, or null when it is unset or empty. */
export function parseFaults(text: string | undefined): ((g: number, worker: number, phase: FaultPhase, shard: number) => void) | null {
  if (text === undefined || text === '') return null;
  const list = JSON.parse(text) as Fault[];
  if (!Array.isArray(list) || !list.every((f) => KINDS.includes(f.kind) && PHASES.includes(f.phase))) {
    throw new TypeError(`GRADPOOL_FAULTS must be a JSON list of { kind: ${KINDS.join('|')}, phase: ${PHASES.join('|')}, ... }; got ${text}`);
  }
  return (g, worker, phase, shard) => {
    for (const f of list) {
      if (f.phase !== phase || (f.generation !== undefined && f.generation !== g)) continue;
      if ((f.worker !== undefined && f.worker !== worker) || (f.shard !== undefined && f.shard !== shard)) continue;
      inject(f, phase === 'start' ? `injected ${f.kind} fault while a worker thread starts`
        : `injected ${f.kind} fault in the ${phase} phase of step ${g} on worker ${worker}${shard >= 0 ? `, shard ${shard}` : ''}`);
    }
  };
}

function inject(f: Fault, what: string): void {
  switch (f.kind) {
    case 'throw':
      throw new Error(what);
    case 'exit':
      process.exit(7); // in a worker thread, ends the thread
      break;
    case 'oom': {
      // Grows the heap until V8 stops the thread (piscina's resourceLimits make that quick).
      const hoard: number[][] = [];
      for (;;) hoard.push(new Array<number>(1 << 20).fill(hoard.length));
    }
    case 'hang':
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // forever
  }
}
