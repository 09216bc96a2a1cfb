/**
 * checkOutputPath: whether a file may be written at `path` by renaming a finished temporary file onto it.
 *
 * Only a regular file or nothing is ever replaced: a directory, a FIFO, a socket or a device node at `path`
 * (followed through a symbolic link) is an InputError naming it, as is `path` being the same file (same device
 * and inode) as any of `inputs` (e.g. the CLI's --audio). Checked before anything is rendered and again just
 * before the rename, so nothing that appeared meanwhile is replaced either.
 */
import { statSync, type Stats } from 'node:fs';
import { InputError } from '../errors.ts';

/** What a non-regular file is, for the message. */
const kindOf = (s: Stats): string =>
  s.isDirectory()
    ? 'a directory'
    : s.isFIFO()
      ? 'a FIFO (named pipe)'
      : s.isSocket()
        ? 'a socket'
        : s.isCharacterDevice()
          ? 'a character device'
          : s.isBlockDevice()
            ? 'a block device'
            : 'not a regular file';

/** The file at `path`, following links, or null when there is none (an fs error other than ENOENT is an InputError). */
function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw new InputError(path, code === 'ENOTDIR' ? 'cannot be written: a folder on its path is a file (ENOTDIR)' : `cannot be written (${code ?? String(e)})`);
  }
}

/** Throws an InputError unless `path` is absent or a regular file other than every one of `inputs`. */
export function checkOutputPath(path: string, inputs: readonly string[] = []): void {
  const out = statOrNull(path);
  if (out === null) return;
  if (!out.isFile()) throw new InputError(path, `is ${kindOf(out)}, not a regular file; refusing to replace it (give a file path for the output)`);
  for (const input of inputs) {
    const s = statOrNull(input);
    if (s !== null && s.dev === out.dev && s.ino === out.ino) throw new InputError(path, `is the input file ${input}; refusing to overwrite it`);
  }
}
