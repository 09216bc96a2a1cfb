/**
 * `GET /metrics` on the worker's health port: agents-js's own HTTP server (the one answering `/` and
 * `/worker` on ServerOptions.port) gets a route for the Prometheus text.
 *
 * ```
 * request /metrics  -> scrape() -> 200 text/plain; version=0.0.4 (or 500 and one line)
 * request /, /worker, anything else -> agents-js's handler, unchanged
 * ```
 *
 * agents-js 1.9 keeps that server private and its handler answers 404 to every other path, so the route is
 * put in front of it through Node's `http.server.request.start` diagnostics channel, published for each
 * request just before the server's 'request' listeners run: at the first request to a server listening on
 * `host`:`port` (any port when `port` is 0: a worker's main process has no other HTTP server), its
 * listeners are wrapped once, and `/metrics` is answered here. Other servers are left alone.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.ts';

const CHANNEL = 'http.server.request.start';

export interface MetricsRouteOptions {
  /** The health server's host and port (0: whichever port it got). */
  readonly host: string;
  readonly port: number;
  /** The Prometheus exposition and its content type. */
  readonly scrape: () => Promise<{ readonly contentType: string; readonly body: string }>;
  readonly log: Logger;
}

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** Adds `/metrics` to the health server; returns the function that stops adding it to servers not seen yet. */
export function serveMetricsRoute(options: MetricsRouteOptions): () => void {
  const wrapped = new WeakSet<Server>();
  const isHealthServer = (server: Server): boolean => {
    const address = server.address() as AddressInfo | string | null;
    if (address === null || typeof address === 'string') return false;
    return address.address === options.host && (options.port === 0 || address.port === options.port);
  };
  const answer = (res: ServerResponse): void => {
    options.scrape().then(
      ({ contentType, body }) => {
        res.writeHead(200, { 'Content-Type': contentType });
        res.end(body);
      },
      (e: unknown) => {
        options.log.error({ err: e }, 'metrics: scrape failed');
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`metrics: ${(e as Error).message}\n`);
      },
    );
  };
  const onRequest = (message: unknown): void => {
    const { server } = message as { server: Server };
    if (wrapped.has(server) || !isHealthServer(server)) return;
    wrapped.add(server);
    const listeners = server.listeners('request') as RequestListener[];
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.method === 'GET' && new URL(req.url ?? '/', 'http://h').pathname === '/metrics') return answer(res);
      for (const listener of listeners) listener.call(server, req, res);
    });
  };
  subscribe(CHANNEL, onRequest);
  return () => unsubscribe(CHANNEL, onRequest);
}
