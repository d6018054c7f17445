/**
 * Structured logs with pino. Requests are logged once, when answered, with their route pattern
 * (`/accounts/{accountId}`, never the concrete path), status, duration, tenant and client ids;
 * never headers, bodies, query strings, IP addresses or tokens. The redaction list is a second
 * line of defence for anything that logs a request or its headers anyway.
 */
import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/** Paths pino replaces with `[redacted]` wherever they appear. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["idempotency-key"]',
  'headers.authorization',
  'headers.cookie',
  'authorization',
  'token',
];

/** Creates the API's logger; `destination` defaults to stdout. */
export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  const config: LoggerOptions = {
    level: options.level ?? 'info',
    base: { service: 'banking-api' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: {
      // Replaces fastify's request serializer, which would log the URL (ids, query) and the client's address.
      req: (request: { method?: string; routeOptions?: { url?: string } }) => ({ method: request.method, route: request.routeOptions?.url }),
      res: (reply: { statusCode?: number }) => ({ statusCode: reply.statusCode }),
      // Only what explains the error: driver errors carry their client (and its connection settings).
      err: (error: Error & { code?: unknown }) => ({ type: error.name, message: error.message, code: error.code, stack: error.stack }),
    },
  };
  return options.destination === undefined ? pino(config) : pino(config, options.destination);
}
