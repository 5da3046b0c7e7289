// Where predict's text goes, piece by piece so that its memory does not grow with the rows: a file,
// written beside its target and put in place whole at the end (never half-written), or a stream
// (standard output), each piece waited for when the stream's buffer is full (backpressure).

import { openAtomicFile } from '../main/index.js';

export interface OutputSink {
  /** Resolves once `text` is taken (a full stream buffer waits for its reader). */
  write(text: string): Promise<void>;
  /** Puts the file in place (a stream: nothing). */
  end(): Promise<void>;
  /** After a failure: the file's target is left as it was (a stream: nothing). */
  discard(): Promise<void>;
}

/** The file at `path`, written atomically. */
export async function fileSink(path: string): Promise<OutputSink> {
  const file = await openAtomicFile(path);
  return { write: (text) => file.write(text), end: () => file.commit(), discard: () => file.discard() };
}

/** A stream: a write the stream buffers resolves at once; one that fills its buffer, when it is flushed.
 *  A stream whose reader has gone rejects with its error (EPIPE, ERR_STREAM_DESTROYED). */
export function streamSink(stream: NodeJS.WritableStream): OutputSink {
  return {
    write: (text) => new Promise<void>((resolve, reject) => {
      const buffered = stream.write(text, (err) => (err ? reject(err) : resolve()));
      if (buffered) resolve();
    }),
    end: async () => {},
    discard: async () => {},
  };
}
