/**
 * Turns anything a request can throw into a {@link ProblemError}: the HTTP layer's own
 * problems pass through, fastify's body parsing errors become 400/413/415, ledger-core's typed
 * errors map by their stable `code`, and everything else is a 500 whose details stay in the log.
 */
import { InvalidAmountError, InvalidInputError, LedgerError, type CommandResult } from '@ledgerkit/ledger-core';
import { z } from 'zod';
import { ProblemError, type ProblemIssue } from './problems.js';

const FASTIFY_PROBLEMS: Readonly<Record<string, () => ProblemError>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () => new ProblemError('payload_too_large'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => new ProblemError('unsupported_media_type'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new ProblemError('malformed_json', 'the body is empty'),
  FST_ERR_CTP_INVALID_JSON_BODY: () => new ProblemError('malformed_json'),
};

/** SQLSTATE classes and socket errors of a database that cannot be reached. */
const UNAVAILABLE_CODES = /^(08|57P0|53300|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE)/;
/** SQLSTATE of a statement the server cancelled (its `statement_timeout`, or an operator's cancel). */
const QUERY_CANCELED = '57014';

/** The problem an error answers with; `internal` (500) for anything not known to be safe to describe. */
export function problemFromError(error: unknown): ProblemError {
  if (error instanceof ProblemError) return error;
  if (error instanceof InvalidAmountError) {
    return new ProblemError('invalid_request', error.message, { errors: [{ path: pathOf(['body', ...error.path]), message: error.message }] });
  }
  if (error instanceof InvalidInputError) {
    return new ProblemError('invalid_request', error.message, {
      errors: error.issues.map((issue) => ({ path: pathOf(['body', ...issue.path]), message: issue.message })),
    });
  }
  if (error instanceof LedgerError) {
    switch (error.code) {
      case 'unknown_currency':
      case 'limit_exceeded':
        return new ProblemError('invalid_request', error.message);
      case 'overloaded':
        return new ProblemError('overloaded', 'the ledger writer is at capacity', { retryAfterSeconds: 1 });
      case 'writer_closed':
        return new ProblemError('unavailable', 'the ledger writer is shutting down', { retryAfterSeconds: 1 });
      case 'writer_failed':
      case 'store_unavailable':
        // Not retriable: the store refused the append for a reason a retry meets again (read
        // models at another schema version, say), which is the server's fault, not the caller's.
        if (!error.retriable) return new ProblemError('internal');
        return new ProblemError('unavailable', 'the ledger could not be written; retry with the same Idempotency-Key', { retryAfterSeconds: 1 });
      default:
        return new ProblemError('internal');
    }
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') {
      const fastifyProblem = FASTIFY_PROBLEMS[code];
      if (fastifyProblem !== undefined) return fastifyProblem();
      if (UNAVAILABLE_CODES.test(code)) return new ProblemError('unavailable', 'the database is unavailable', { retryAfterSeconds: 1 });
      // The server's doing, not the caller's mistake nor a bug: 503, retriable once load falls.
      if (code === QUERY_CANCELED) return new ProblemError('unavailable', 'the database cancelled the query: it ran past the time the server allows one', { retryAfterSeconds: 1 });
    }
    const statusCode = (error as { statusCode?: unknown }).statusCode;
    if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
      return new ProblemError('invalid_request', 'the request could not be read', { status: statusCode });
    }
  }
  return new ProblemError('internal');
}

/** Throws the rejection of a command result as a problem; returns the accepted result. */
export function acceptedOrThrow(result: CommandResult): Extract<CommandResult, { ok: true }> {
  if (result.ok) return result;
  throw new ProblemError(result.code, result.message);
}

/**
 * A zod failure as a 400 problem listing each issue with its location (`body.postings.1.amount`,
 * `query.limit`, `header.idempotency-key`). A header's schema checks one value, so its issues
 * carry no path of their own: `header` names it (lower case, as HTTP/2 writes header names).
 */
export function validationProblem(where: 'path' | 'query' | 'body' | 'header', error: z.ZodError, header?: string): ProblemError {
  const prefix = header === undefined ? [where] : [where, header];
  const errors: ProblemIssue[] = error.issues.slice(0, 20).map((issue) => ({ path: pathOf([...prefix, ...issue.path.map(segment)]), message: issue.message }));
  const subject = where === 'path' ? 'path parameter' : header === undefined ? where : `header ${header}`;
  return new ProblemError('invalid_request', `invalid ${subject}: ${errors[0]?.message ?? 'invalid'}`, { errors });
}

function segment(part: PropertyKey): string | number {
  return typeof part === 'number' ? part : String(part);
}

function pathOf(parts: readonly (string | number)[]): string {
  return parts.join('.');
}
