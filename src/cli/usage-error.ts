// The CLI's own error: a flag problem found after parsing (a missing file flag, flags that do not go
// together). The CLI prints it as one line and exits 2, as it does the library's option and data errors.

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
