/**
 * Errors meant for the user: one line that names the thing (file, JSON path, bundle) and the problem.
 * The CLI and the workers print `message` alone, never a stack trace, for these.
 */
export class InputError extends Error {
  override readonly name = 'InputError';
  /** `subject` is the file, path or element at fault; `problem` says what is wrong with it. */
  constructor(
    readonly subject: string,
    readonly problem: string,
  ) {
    super(`${subject}: ${problem}`);
  }
}

/** A pipeline spec or a pipeline's element chain that cannot work (unknown element, bad parameter, caps mismatch). */
export class PipelineSpecError extends InputError {}

/** A model bundle that is missing, corrupt, or of the wrong shape. */
export class ModelError extends InputError {}

export const isInputError = (e: unknown): e is InputError => e instanceof InputError;
