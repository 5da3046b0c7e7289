// TensorBoard event files: CRC-32C against published check values; the files fit() writes read back by an
// independent reader in Python (its own bitwise CRC-32C and mask, the Event protos declared there with
// python3-protobuf's descriptor_pb2), scalar for scalar against what onStep and the history report; a
// resumed run writing a new file that continues at the next step; bad options refused before training.

import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { trainers } from './helpers.js';
import { FileError, OptionTypeError, Trainer, type EpochRecord, type StepInfo, type TrainerOptions } from '../src/main/index.js';
import { crc32c, maskedCrc32c } from '../src/main/tensorboard/crc32c.js';
import { Rng } from '../src/shared/rng.js';

const bytes = (values: number[]): Uint8Array => new Uint8Array(values);

describe('CRC-32C', () => {
  it.each([
    ['"123456789" (the check value)', new TextEncoder().encode('123456789'), 0xe3069283],
    ['32 bytes of zeros (RFC 3720 B.4)', new Uint8Array(32), 0x8a9136aa],
    ['32 bytes of 0xff (RFC 3720 B.4)', new Uint8Array(32).fill(0xff), 0x62a8ab43],
    ['32 incrementing bytes (RFC 3720 B.4)', bytes(Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e],
    ['32 decrementing bytes (RFC 3720 B.4)', bytes(Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c],
    ['an iSCSI read command PDU (RFC 3720 B.4)', bytes([
      0x01, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x14, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0x14, 0, 0, 0, 0x18,
      0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0,
    ]), 0xd9963a56],
    ['no bytes', new Uint8Array(0), 0],
  ])('of %s is the published value', (_n, data, want) => {
    expect(crc32c(data).toString(16)).toBe(want.toString(16));
  });

  it("is masked as TFRecord's crc32c::Mask: rotate right 15, add 0xa282ead8", () => {
    // The check value worked by hand: 0xE3069283 rotated right by 15 is 0x2507C60D; plus 0xA282EAD8 is
    // 0x1C78AB0E5, 0xC78AB0E5 in 32 bits.
    expect(maskedCrc32c(new TextEncoder().encode('123456789')).toString(16)).toBe('c78ab0e5');
  });
});

/** Reads event files as TensorBoard would, independently: its own CRC-32C (bitwise) and mask, and the
 *  Event protos declared from tensorboard's event.proto and summary.proto field numbers. Prints JSON:
 *  per file, its events. Exits 1 naming the record whose CRC is wrong. */
const READER = String.raw`
import json, struct, sys
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    return c ^ 0xFFFFFFFF

def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

F = descriptor_pb2.FieldDescriptorProto
fdp = descriptor_pb2.FileDescriptorProto(name="event.proto", package="tensorboard", syntax="proto2")
def message(name, fields, parent=None):
    m = (parent.nested_type if parent else fdp.message_type).add(name=name)
    for fname, num, ftype, label, tname in fields:
        f = m.field.add(name=fname, number=num, type=ftype, label=label or F.LABEL_OPTIONAL)
        if tname: f.type_name = tname
    return m
message("Event", [("wall_time", 1, F.TYPE_DOUBLE, 0, None), ("step", 2, F.TYPE_INT64, 0, None),
                  ("file_version", 3, F.TYPE_STRING, 0, None), ("summary", 5, F.TYPE_MESSAGE, 0, ".tensorboard.Summary"),
                  ("session_log", 7, F.TYPE_MESSAGE, 0, ".tensorboard.SessionLog")])
s = message("Summary", [("value", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".tensorboard.Summary.Value")])
message("Value", [("tag", 1, F.TYPE_STRING, 0, None), ("simple_value", 2, F.TYPE_FLOAT, 0, None)], s)
message("SessionLog", [("status", 1, F.TYPE_INT32, 0, None)])
pool = descriptor_pool.DescriptorPool()
pool.Add(fdp)
desc = pool.FindMessageTypeByName("tensorboard.Event")
Event = message_factory.GetMessageClass(desc) if hasattr(message_factory, "GetMessageClass") else message_factory.MessageFactory(pool).GetPrototype(desc)

out = []
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    events, at = [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (lcrc,) = struct.unpack("<I", data[at + 8:at + 12])
        if lcrc != masked(header): sys.exit(f"{path}: record {len(events)}: length CRC {lcrc:#x} != {masked(header):#x}")
        body = data[at + 12:at + 12 + length]
        (dcrc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        if dcrc != masked(body): sys.exit(f"{path}: record {len(events)}: data CRC {dcrc:#x} != {masked(body):#x}")
        at += 16 + length
        e = Event.FromString(body)
        events.append({"wall_time": e.wall_time, "step": e.step,
                       "file_version": e.file_version if e.HasField("file_version") else None,
                       "session_log": e.session_log.status if e.HasField("session_log") else None,
                       "scalars": [[v.tag, v.simple_value] for v in e.summary.value]})
    out.append({"path": path, "events": events})
print(json.dumps(out))
`;

interface ReadEvent { wall_time: number; step: number; file_version: string | null; session_log: number | null; scalars: [string, number][] }

function readEvents(paths: string[]): { path: string; events: ReadEvent[] }[] {
  const r = spawnSync('/usr/bin/python3', ['-c', READER, ...paths], { encoding: 'utf8', maxBuffer: 1 << 26 });
  expect(r.stderr + (r.error?.message ?? ''), 'the Python reader').toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as { path: string; events: ReadEvent[] }[];
}

/** Every (tag, step) -> value of the events, failing on a tag written twice at one step. */
function scalarMap(events: ReadEvent[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const e of events) {
    for (const [tag, v] of e.scalars) {
      const key = `${tag}@${e.step}`;
      expect(m.has(key), `${key} written twice`).toBe(false);
      m.set(key, v);
    }
  }
  return m;
}

function blobs(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 4);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    for (let d = 0; d < 4; d++) x[i * 4 + d] = (d === y[i] ? 1 : 0) + (rng.uniform(2) - 1) * 0.8;
  }
  return { x, y };
}

const { make, keep } = trainers();
const train = blobs(50, 1);
const validation = blobs(30, 2);
const options: TrainerOptions = {
  layers: [4, 8, 3], lr: 0.2, momentum: 0.9, batchSize: 16, workers: 1, seed: 1, schedule: { name: 'step', stepSize: 1, gamma: 0.5 },
};
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'gradpool-tb-'));
  dirs.push(d);
  return d;
}

/** What the event files must hold of a run: per step loss and lr (float32), per epoch at its last step. */
function expected(steps: StepInfo[], records: EpochRecord[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of steps) {
    m.set(`train/loss@${s.step}`, Math.fround(s.loss));
    m.set(`train/lr@${s.step}`, Math.fround(s.lr));
  }
  let step = 0;
  for (const r of records) {
    step += r.steps;
    m.set(`epoch/train_loss@${step}`, Math.fround(r.trainLoss));
    m.set(`epoch/train_accuracy@${step}`, Math.fround(r.trainAccuracy));
    m.set(`epoch/val_loss@${step}`, Math.fround(r.valLoss as number));
    m.set(`epoch/val_accuracy@${step}`, Math.fround(r.valAccuracy as number));
    m.set(`epoch/lr@${step}`, Math.fround(r.lr));
  }
  return m;
}

/** got without the grad-norm entries, which are checked on their own. */
function withoutNorms(got: Map<string, number>): Map<string, number> {
  return new Map([...got].filter(([k]) => !k.startsWith('train/grad_norm@')));
}

describe('TensorBoard event files from fit()', () => {
  it('hold a file_version first, then per step and per epoch the scalars fit() reported, each CRC right', async () => {
    const dir = await tempDir();
    const steps: StepInfo[] = [];
    const records = await make({ ...options, clipGradNorm: 1e6 }).fit(train, { epochs: 3, validation, tensorboard: join(dir, 'run'), onStep: (s) => void steps.push(s) });
    const files = await readdir(join(dir, 'run'));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^events\.out\.tfevents\.\d{10}\.[^/]+$/);
    const [file] = readEvents([join(dir, 'run', files[0])]);
    expect(file.events[0]).toMatchObject({ file_version: 'brain.Event:2', step: 0, scalars: [] });
    expect(Math.abs(file.events[0].wall_time - Date.now() / 1000)).toBeLessThan(600);
    const got = scalarMap(file.events.slice(1));
    expect(withoutNorms(got)).toEqual(expected(steps, records));
    // With clipping on, onStep reports the norm: the same, as float32, at every step.
    for (const s of steps) expect(got.get(`train/grad_norm@${s.step}`)).toBe(Math.fround(s.gradNorm as number));
    expect(new Set(steps.map((s) => s.lr)).size, 'the lr changes over the run').toBe(3);
  });

  it("a resumed run writes a new file that starts at the next step, and the two files hold the uninterrupted run's points once each", async () => {
    const dir = await tempDir();
    const board = join(dir, 'run');
    const steps: StepInfo[] = [];
    const whole = await make(options).fit(train, { epochs: 4, validation, onStep: (s) => void steps.push(s) });

    const first = make(options);
    await first.fit(train, { epochs: 2, validation, tensorboard: board });
    await first.save(join(dir, 'ckpt.safetensors'));
    const resumed = keep(await Trainer.load(join(dir, 'ckpt.safetensors')));
    await resumed.fit(train, { epochs: 2, validation, tensorboard: board });

    const files = (await readdir(board)).sort();
    expect(files).toHaveLength(2);
    const read = readEvents(files.map((f) => join(board, f)));
    const [a, b] = read.map((f) => f.events);
    const at = first.progress.step; // 8 steps: 4 per epoch
    expect(b[0]).toMatchObject({ file_version: 'brain.Event:2', step: at + 1 });
    expect(b[1]).toMatchObject({ session_log: 1, step: at + 1 }); // START: TensorBoard drops later points of earlier files
    expect(Math.min(...b.slice(2).map((e) => e.step))).toBe(at + 1);
    expect(Math.max(...a.map((e) => e.step))).toBe(at);
    const got = scalarMap([...a, ...b]); // fails on any (tag, step) written twice
    expect(withoutNorms(got)).toEqual(expected(steps, whole));
  });

  it('flushes every epoch: the file holds each finished epoch while fit() goes on', async () => {
    const dir = await tempDir();
    const seen: number[] = [];
    await make(options).fit(train, {
      epochs: 3, validation, tensorboard: dir,
      onEpoch: async (r) => {
        // The flush of epoch e is under way when onEpoch runs; by the next epoch's end it is written.
        await new Promise((resolve) => setTimeout(resolve, 50));
        const [f] = readEvents([join(dir, (await readdir(dir))[0])]);
        seen.push(f.events.filter((e) => e.scalars.some(([t]) => t === 'epoch/train_loss')).length);
        expect(r.epoch).toBe(seen.length);
      },
    });
    expect(seen).toEqual([1, 2, 3]);
  });

  it('a fit() stopped by its signal writes the steps it took', async () => {
    const dir = await tempDir();
    const abort = new AbortController();
    const t = make(options);
    await expect(t.fit(train, {
      epochs: 3, tensorboard: dir, stepsPerExecution: 1, onStep: (s) => { if (s.step === 6) abort.abort(new Error('stop')); }, signal: abort.signal,
    })).rejects.toThrow('stop');
    const [f] = readEvents([join(dir, (await readdir(dir))[0])]);
    const losses = f.events.filter((e) => e.scalars.some(([tag]) => tag === 'train/loss')).map((e) => e.step);
    expect(losses).toEqual(Array.from({ length: t.progress.step }, (_, i) => i + 1));
  });

  it('refuses a tensorboard option that is not a path, and a directory it cannot make, before any step', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'file'), 'not a directory');
    const t = make(options);
    await expect(t.fit(train, { tensorboard: 5 as unknown as string })).rejects.toThrow(OptionTypeError);
    await expect(t.fit(train, { tensorboard: 5 as unknown as string })).rejects.toThrow(/fit options\.tensorboard must be a directory path; got 5/);
    const err = await t.fit(train, { tensorboard: join(dir, 'file', 'run') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileError);
    expect((err as Error).message).toContain(join(dir, 'file', 'run'));
    expect(t.progress.step).toBe(0);
  });
});
