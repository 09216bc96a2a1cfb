/**
 * Unix sockets that only this user's processes can reach (the model server, the metrics relay).
 *
 * - `privateSocketPath(prefix, name)`: `name` in a fresh folder of its own under the system's temporary folder
 *   (mode 0700, unguessable name); the folder is removed when the process exits.
 * - `listenPrivate(server, path, what)`: the socket's folder is created mode 0700 when missing; an existing one must
 *   be this user's and closed to group and others (an InputError naming `what` otherwise); a stale socket file
 *   (from a crashed process) is replaced; the socket is made mode 0600 once listening.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { InputError } from '../errors.ts';

export function privateSocketPath(prefix: string, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return join(dir, name);
}

function privateFolder(socket: string, what: string): void {
  const dir = dirname(socket);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const s = statSync(dir);
  const uid = process.getuid?.();
  if (!s.isDirectory() || (uid !== undefined && s.uid !== uid) || (s.mode & 0o077) !== 0) {
    throw new InputError(
      dir,
      `${what}'s socket folder must be private (a folder owned by this user, mode 0700); it is mode ${(s.mode & 0o777).toString(8)}, owner ${s.uid}`,
    );
  }
}

export async function listenPrivate(server: Server, path: string, what: string): Promise<void> {
  privateFolder(path, what);
  rmSync(path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
}
