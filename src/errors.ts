/**
 * Errors meant for the user: one line that names the thing (file, JSON path, bundle) and the problem.
 * The CLI and the workers print `message` alone, never a stack trace, for these. The message stays one line
 * whatever a file or spec put into it: control characters (a newline in a file name or a JSON key) are escaped.
 */
export class InputError extends Error {
  override readonly name = 'InputError';
  /** `subject` is the file, path or element at fault; `problem` says what is wrong with it. */
  constructor(
    readonly subject: string,
    readonly problem: string,
  ) {
    super(oneLine(`${subject}: ${problem}`));
  }
}

/** `text` with C0/C1 control characters, DEL and the Unicode line separators escaped (`\n` -> `\x0a`). */
export const oneLine = (text: string): string =>
  text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });

/** `text` in printable ASCII: anything else (bytes of a corrupt file quoted in a message) as `\u{...}`. */
export const ascii = (text: string): string => text.replace(/[^\x20-\x7e]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);

/** A pipeline spec or a pipeline's element chain that cannot work (unknown element, bad parameter, caps mismatch). */
export class PipelineSpecError extends InputError {}

/** A model bundle that is missing, corrupt, or of the wrong shape. */
export class ModelError extends InputError {}

export const isInputError = (e: unknown): e is InputError => e instanceof InputError;
