// A standard output or error that the reader has closed (`gradpool ... | head -1`: EPIPE) is not a
// failure of the command: what training prints is informational, so it goes on to its end and saves;
// predict and evaluate, whose output it is, stop quietly with exit 0, as Unix tools do.

/** True for the errors of writing to a stream whose reader has gone. */
export function isClosedOutput(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
}

/** True once `stream` can no longer be written (its reader has gone, and a write has found it out). */
export function outputClosed(stream: NodeJS.WritableStream): boolean {
  return (stream as Partial<NodeJS.WriteStream>).destroyed === true;
}

/**
 * Makes a closed stdout or stderr silent for the rest of the process: without a listener, the stream's
 * 'error' event would end the process with a stack trace. Any other error is thrown as before.
 */
export function ignoreClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err) => {
      if (!isClosedOutput(err)) throw err;
    });
  }
}
