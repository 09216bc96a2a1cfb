/**
 * isOpenHere: whether this process holds a file descriptor open on `path` (Linux, via /proc/self/fd).
 * For tests that check a source or sink closes its file. `path` must be absolute and free of symlinks.
 */
import { readdirSync, readlinkSync } from 'node:fs';

export const isOpenHere = (path: string): boolean =>
  readdirSync('/proc/self/fd').some((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  });
