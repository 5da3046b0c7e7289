// The few TensorBoard protos a scalar log needs (tensorboard/compat/proto/event.proto and summary.proto,
// field numbers as there), defined for protobufjs' reflection rather than compiled: Event with a
// file_version, a Summary of simple_value scalars, or a SessionLog START that tells TensorBoard a resumed
// run's steps replace any later ones an earlier file holds.

import protobuf from 'protobufjs/light.js';

const root = protobuf.Root.fromJSON({
  nested: {
    tensorboard: {
      nested: {
        Event: {
          fields: {
            wallTime: { type: 'double', id: 1 },
            step: { type: 'int64', id: 2 },
            fileVersion: { type: 'string', id: 3 },
            summary: { type: 'Summary', id: 5 },
            sessionLog: { type: 'SessionLog', id: 7 },
          },
        },
        Summary: {
          fields: { value: { rule: 'repeated', type: 'Value', id: 1 } },
          nested: { Value: { fields: { tag: { type: 'string', id: 1 }, simpleValue: { type: 'float', id: 2 } } } },
        },
        SessionLog: {
          fields: { status: { type: 'SessionStatus', id: 1 } },
          nested: { SessionStatus: { values: { STATUS_UNSPECIFIED: 0, START: 1, STOP: 2, CHECKPOINT: 3 } } },
        },
      },
    },
  },
});
const Event = root.lookupType('tensorboard.Event');

/** What TensorBoard expects as the first event of every file. */
export const FILE_VERSION = 'brain.Event:2';

export function fileVersionEvent(wallTime: number, step: number): Uint8Array {
  return Event.encode(Event.fromObject({ wallTime, step, fileVersion: FILE_VERSION })).finish();
}

/** SessionLog START at `step`: TensorBoard drops the events of earlier files at this step and after. */
export function sessionStartEvent(wallTime: number, step: number): Uint8Array {
  return Event.encode(Event.fromObject({ wallTime, step, sessionLog: { status: 'START' } })).finish();
}

/** Scalars (stored as float32, as TensorBoard's simple_value) at one step. */
export function scalarsEvent(wallTime: number, step: number, values: readonly (readonly [string, number])[]): Uint8Array {
  return Event.encode(Event.fromObject({
    wallTime, step, summary: { value: values.map(([tag, simpleValue]) => ({ tag, simpleValue })) },
  })).finish();
}
