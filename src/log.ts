/**
 * The one structured logger (pino, JSON lines on stderr). Every element gets a child logger
 * named after it; sessions add `room` and `session` fields.
 * Level from SYNCTALK_LOG_LEVEL (default 'info'; the CLI lowers it to 'warn' unless --verbose).
 */
import { destination, pino, type Logger } from 'pino';

export type { Logger };

export const rootLogger: Logger = pino(
  { name: 'synctalk-live', level: process.env.SYNCTALK_LOG_LEVEL ?? 'info' },
  destination(2),
);
