/**
 * startDevServer: runs a private livekit-server (v1.13.5, built by scripts/install-livekit-server.sh)
 * for tests and local demos, and stops it again.
 *
 * Nothing it does leaves this machine:
 * - signal (HTTP/WebSocket), RTC TCP and RTC UDP ports are free ports picked at start (below the
 *   ephemeral range; tried again with new ports if another process takes one before the server binds);
 *   the signal port listens on 127.0.0.1 only;
 * - `rtc.node_ip` is 127.0.0.1 and `use_external_ip` is off, so the server asks no STUN server for
 *   its address and advertises only loopback candidates (`ips.includes` 127.0.0.1/32);
 * - the server always hands clients a STUN server (Google's by default); here it is a closed UDP port
 *   on 127.0.0.1, so clients that fall back to the server's list (rtc-node with no ICE servers)
 *   send their STUN probes to loopback too; TURN is off.
 *
 * Keys are random per run. The server's log (level warn) is kept, last 200 lines, for error messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.ts';

export const LIVEKIT_SERVER_VERSION = 'v1.13.5';

export interface DevServer {
  /** ws:// URL of the signal endpoint. */
  readonly url: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  /** Ends the server (SIGTERM, then SIGKILL after 3 s) and removes its config. */
  stop(): Promise<void>;
}

export interface DevServerOptions {
  /** The server binary (default: $LIVEKIT_SERVER_BIN, else the install script's cache path). */
  readonly binary?: string;
  /** Milliseconds to wait for the server to accept connections (default 20000). */
  readonly startTimeoutMs?: number;
}

/** Where scripts/install-livekit-server.sh puts the binary. */
export function livekitServerBinary(): string {
  if (process.env.LIVEKIT_SERVER_BIN) return process.env.LIVEKIT_SERVER_BIN;
  const cache = process.env.LIVEKIT_SERVER_CACHE ?? join(homedir(), '.cache', 'synctalk-live', `livekit-server-${LIVEKIT_SERVER_VERSION}`);
  return join(cache, 'bin', 'server');
}

/**
 * Ports are drawn at random from 20000-32767, below Linux's ephemeral range (32768-60999): a port the
 * kernel handed out with listen(0) is free only until the next outgoing connection takes it, which on a
 * busy test machine happened between our check and the server's bind. Each candidate is checked on all
 * interfaces (livekit-server binds its RTC TCP and UDP ports on 0.0.0.0).
 */
const PORT_RANGE = { first: 20_000, last: 32_767 } as const;

const randomPort = (): number => PORT_RANGE.first + Math.floor(Math.random() * (PORT_RANGE.last - PORT_RANGE.first + 1));

const tcpPortFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, () => srv.close(() => resolve(true)));
  });

const udpPortFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const sock = createSocket('udp4');
    sock.once('error', () => resolve(false));
    sock.bind(port, () => sock.close(() => resolve(true)));
  });

async function pickPorts(): Promise<{ signal: number; rtcTcp: number; rtcUdp: number; stun: number }> {
  const taken = new Set<number>();
  const pick = async (free: (port: number) => Promise<boolean>): Promise<number> => {
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const port = randomPort();
      if (!taken.has(port) && (await free(port))) {
        taken.add(port);
        return port;
      }
    }
    throw new Error(`no free port in ${PORT_RANGE.first}-${PORT_RANGE.last} after 100 tries`);
  };
  return { signal: await pick(tcpPortFree), rtcTcp: await pick(tcpPortFree), rtcUdp: await pick(udpPortFree), stun: await pick(udpPortFree) };
}

/** The YAML config: a JSON document, which YAML reads as is. */
export function devServerConfig(ports: { signal: number; rtcTcp: number; rtcUdp: number; stun: number }, keys: Record<string, string>): string {
  return JSON.stringify(
    {
      port: ports.signal,
      bind_addresses: ['127.0.0.1'],
      rtc: {
        tcp_port: ports.rtcTcp,
        udp_port: ports.rtcUdp,
        use_external_ip: false,
        node_ip: '127.0.0.1',
        enable_loopback_candidate: true,
        ips: { includes: ['127.0.0.1/32'] },
        stun_servers: [`127.0.0.1:${ports.stun}`],
      },
      turn: { enabled: false },
      keys,
      logging: { level: 'warn', json: false },
    },
    null,
    2,
  );
}

/** Attempts when the server exits because another process took one of its ports in the meantime. */
const PORT_CLASH_ATTEMPTS = 3;

export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  const binary = options.binary ?? livekitServerBinary();
  if (!existsSync(binary)) {
    throw new InputError(binary, 'livekit-server binary not found; run scripts/install-livekit-server.sh (or set LIVEKIT_SERVER_BIN)');
  }
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await launch(binary, options.startTimeoutMs ?? 20_000);
    } catch (err) {
      if (!(err instanceof PortClash) || attempt === PORT_CLASH_ATTEMPTS) throw err;
    }
  }
}

class PortClash extends Error {}

async function launch(binary: string, startTimeoutMs: number): Promise<DevServer> {
  const ports = await pickPorts();
  const apiKey = `APIdev${randomBytes(6).toString('hex')}`;
  const apiSecret = randomBytes(32).toString('hex');
  const dir = await mkdtemp(join(tmpdir(), 'synctalk-livekit-'));
  const configPath = join(dir, 'livekit.yaml');
  await writeFile(configPath, devServerConfig(ports, { [apiKey]: apiSecret }), { mode: 0o600 });

  const child = spawn(binary, ['--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logTail: string[] = [];
  const keep = (data: Buffer): void => {
    logTail.push(...data.toString('utf8').split('\n').filter((l) => l.length > 0));
    logTail.splice(0, Math.max(0, logTail.length - 200));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const stop = async (): Promise<void> => {
    await kill(child, exited);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await waitUntilUp(`http://127.0.0.1:${ports.signal}/`, exited, startTimeoutMs);
  } catch (err) {
    await stop();
    const tail = logTail.slice(-20).join('\n');
    const message = `livekit-server did not start: ${(err as Error).message}${tail ? `\n${tail}` : ''}`;
    throw logTail.some((line) => line.includes('address already in use')) ? new PortClash(message) : new Error(message);
  }
  return { url: `ws://127.0.0.1:${ports.signal}`, apiKey, apiSecret, stop };
}

async function waitUntilUp(healthUrl: string, exited: Promise<number | null>, timeoutMs: number): Promise<void> {
  let gone: number | null | undefined;
  void exited.then((code) => (gone = code));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gone !== undefined) throw new Error(`exited with code ${gone}`);
    if (await answers(healthUrl)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not accepting connections after ${timeoutMs} ms`);
}

/** One GET without keep-alive (a kept-alive socket would hold up the server's graceful stop). */
const answers = (url: string): Promise<boolean> =>
  new Promise((resolve) => {
    const req = get(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });

async function kill(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}
