/**
 * StderrTail: keeps the end of a child process's stderr, to quote its last line in an error.
 * Bounded to `limit` characters (default 4096), strategy **slide**: older text is dropped.
 */
export class StderrTail {
  private text = '';

  constructor(readonly limit = 4096) {}

  push(chunk: Buffer | string): void {
    this.text = (this.text + chunk.toString()).slice(-this.limit);
  }

  /** The last non-empty line, or `fallback` when nothing was written. */
  lastLine(fallback: string): string {
    return lastLine(this.text, fallback);
  }
}

/** The last non-empty line of `text` (trimmed), or `fallback`. */
export const lastLine = (text: string, fallback: string): string =>
  text
    .split(/\r?\n|\r/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .at(-1) ?? fallback;
