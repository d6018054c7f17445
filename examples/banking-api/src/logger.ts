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

/**
 * What a server error's log line says of the error: only fields that hold no data. Never its
 * message, detail, hint or stack: a database error's words can name the rows it refused
 * (`Key (tenant_id, account_id)=(...)`), and the library's errors repeat their cause's words.
 */
export interface SafeErrorFields {
  /** The error's class (`WriterFailedError`, `DatabaseError`, `TypeError`), or `unknown` for a thrown non-error. */
  readonly type: string;
  /** Its own code, when it is a plain token: the library's (`writer_failed`), Node's (`ECONNRESET`), fastify's, a SQLSTATE. */
  readonly code?: string;
  /** The SQLSTATE of the first PostgreSQL error in its `cause` chain (itself included), e.g. `23505`. */
  readonly sqlState?: string;
  /** The classes of its causes, outermost first, at most {@link CAUSE_DEPTH_MAX}. */
  readonly causes?: readonly string[];
}

/** Most causes {@link safeErrorFields} follows (a cycle of causes ends here too). */
export const CAUSE_DEPTH_MAX = 4;

/** A class name or code that is a plain token (no spaces, quotes or punctuation that could carry a value), at most 64 characters. */
const TOKEN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** A SQLSTATE: five digits or upper-case letters (the store's own are `LK001` and up). */
const SQLSTATE = /^[0-9A-Z]{5}$/;

/** The fields of `error` safe to log, as {@link SafeErrorFields} describes them. */
export function safeErrorFields(error: unknown): SafeErrorFields {
  const code = codeOf(error);
  const chain = causeChain(error);
  const sqlState = chain.map(sqlStateOf).find((state) => state !== undefined);
  const causes = chain.slice(1).map(typeOf);
  return {
    type: typeOf(error),
    ...(code === undefined ? {} : { code }),
    ...(sqlState === undefined ? {} : { sqlState }),
    ...(causes.length === 0 ? {} : { causes }),
  };
}

/** `error` and its causes, outermost first, at most {@link CAUSE_DEPTH_MAX} causes. */
function causeChain(error: unknown): unknown[] {
  const chain = [error];
  let current = error;
  while (chain.length <= CAUSE_DEPTH_MAX && current instanceof Error && current.cause !== undefined) {
    current = current.cause;
    chain.push(current);
  }
  return chain;
}

function typeOf(error: unknown): string {
  if (!(error instanceof Error)) return 'unknown';
  const name = error.constructor.name;
  return TOKEN.test(name) ? name : TOKEN.test(error.name) ? error.name : 'Error';
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (TOKEN.test(code) || SQLSTATE.test(code)) ? code : undefined;
}

/** The SQLSTATE of a PostgreSQL error (`pg`'s `DatabaseError`: a five-character code and a severity). */
function sqlStateOf(error: unknown): string | undefined {
  const { code, severity } = (error ?? {}) as { code?: unknown; severity?: unknown };
  return typeof code === 'string' && SQLSTATE.test(code) && typeof severity === 'string' ? code : undefined;
}
