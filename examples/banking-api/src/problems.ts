import { REJECTION_CODES, type RejectionCode } from '@ledgerkit/ledger-core';

/**
 * Error answers as RFC 9457 problem documents (`application/problem+json`). Every problem has a
 * stable `type` (`/problems/<code>`, documented at that address on the API itself) and a stable
 * `code`; clients switch on either, never on `title` or `detail`. Each ledger rejection code has
 * its own type, so a partner sees `insufficient_funds`, not a generic 422.
 */

/** Content type of every error answer. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Problems the HTTP layer raises itself (as opposed to the ledger's rejection codes). */
export const API_PROBLEMS = {
  invalid_request: { status: 400, title: 'The request does not match the API schema' },
  malformed_json: { status: 400, title: 'The request body is not valid JSON' },
  idempotency_key_missing: { status: 400, title: 'POST requests need an Idempotency-Key header' },
  unauthorized: { status: 401, title: 'A valid bearer token is required' },
  insufficient_scope: { status: 403, title: 'The token lacks the scope this operation needs' },
  not_found: { status: 404, title: 'No such resource' },
  method_not_allowed: { status: 405, title: 'The resource does not take this method' },
  request_timeout: { status: 408, title: 'The request was not received in time' },
  idempotency_request_in_progress: { status: 409, title: 'A request with this Idempotency-Key is still being processed' },
  payload_too_large: { status: 413, title: 'The request body is larger than the API accepts' },
  unsupported_media_type: { status: 415, title: 'Request bodies must be application/json' },
  idempotency_key_reused: { status: 422, title: 'The Idempotency-Key was already used with a different request' },
  result_too_large: { status: 422, title: 'The result is larger than one answer may be' },
  rate_limited: { status: 429, title: 'Too many requests from this client' },
  request_headers_too_large: { status: 431, title: 'The request headers are larger than the API accepts' },
  expectation_failed: { status: 417, title: 'The request\'s Expect header asks for something the API does not do' },
  internal: { status: 500, title: 'The server failed to handle the request' },
  overloaded: { status: 503, title: 'The service is overloaded; retry shortly' },
  unavailable: { status: 503, title: 'A dependency of the service is unavailable; retry shortly' },
  not_ready: { status: 503, title: 'The service is not ready to take requests' },
} as const satisfies Record<string, { status: number; title: string }>;

/** A code of {@link API_PROBLEMS}. */
export type ApiProblemCode = keyof typeof API_PROBLEMS;

/** Every problem code: the API's own and every ledger rejection code. */
export type ProblemCode = ApiProblemCode | RejectionCode;

const NOT_FOUND_REJECTIONS: ReadonlySet<RejectionCode> = new Set(['account_not_found', 'pending_not_found', 'transfer_not_found']);
const CONFLICT_REJECTIONS: ReadonlySet<RejectionCode> = new Set([
  'account_exists',
  'account_frozen',
  'account_closed',
  'account_not_frozen',
  'account_not_empty',
  'pending_already_resolved',
  'transfer_already_reversed',
]);

/**
 * The HTTP status of a ledger rejection: 404 when the command names something that does not
 * exist, 409 when it conflicts with the current state of an account, a hold or an earlier use of
 * the same id, 422 for every other rule (insufficient funds, unbalanced postings, ...). A code
 * added to the library later answers 422 until it is placed here.
 */
export function rejectionStatus(code: RejectionCode): number {
  if (NOT_FOUND_REJECTIONS.has(code)) return 404;
  if (CONFLICT_REJECTIONS.has(code) || code.startsWith('exists_with_different_')) return 409;
  return 422;
}

/** One problem found in a request: where, and what is wrong. */
export interface ProblemIssue {
  readonly path: string;
  readonly message: string;
}

/** The body of every error answer. */
export interface ProblemDocument {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: ProblemCode;
  readonly detail?: string;
  readonly instance?: string;
  readonly requestId?: string;
  readonly errors?: readonly ProblemIssue[];
  readonly retryAfterSeconds?: number;
}

/** The documentation of one problem type, served at its `type` address. */
export interface ProblemTypeDescription {
  readonly type: string;
  readonly code: ProblemCode;
  readonly status: number;
  readonly title: string;
}

/** The `type` URI of a problem code: a path on this API, where its description is served. */
export function problemType(code: ProblemCode): string {
  return `/problems/${code}`;
}

/** Every problem type the API can answer with, for the `/problems` pages and the OpenAPI document. */
export function problemCatalogue(): ProblemTypeDescription[] {
  const own = (Object.entries(API_PROBLEMS) as [ApiProblemCode, { status: number; title: string }][]).map(([code, problem]) => ({
    type: problemType(code),
    code,
    status: problem.status,
    title: problem.title,
  }));
  const rejections = (Object.entries(REJECTION_CODES) as [RejectionCode, string][]).map(([code, title]) => ({
    type: problemType(code),
    code,
    status: rejectionStatus(code),
    title,
  }));
  return [...own, ...rejections];
}

/** Whether `code` is a ledger rejection code. */
export function isRejectionCode(code: string): code is RejectionCode {
  return Object.hasOwn(REJECTION_CODES, code);
}

/** Thrown by handlers and hooks to answer with a problem document. */
export class ProblemError extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  readonly title: string;
  readonly errors: readonly ProblemIssue[] | undefined;
  /** Sent as `Retry-After` (seconds) for 429 and 503. */
  readonly retryAfterSeconds: number | undefined;
  /** Extra response headers, such as `WWW-Authenticate`. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: ProblemCode,
    detail?: string,
    options: { errors?: readonly ProblemIssue[]; retryAfterSeconds?: number; headers?: Record<string, string>; status?: number } = {},
  ) {
    super(detail ?? titleOf(code));
    this.name = 'ProblemError';
    this.code = code;
    this.status = options.status ?? statusOf(code);
    this.title = titleOf(code);
    this.errors = options.errors;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.headers = options.headers ?? {};
  }

  /** The problem document for this error. */
  toDocument(requestId: string, instance: string): ProblemDocument {
    return {
      type: problemType(this.code),
      title: this.title,
      status: this.status,
      code: this.code,
      detail: this.message,
      instance,
      requestId,
      ...(this.errors === undefined ? {} : { errors: this.errors }),
      ...(this.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: this.retryAfterSeconds }),
    };
  }
}

function statusOf(code: ProblemCode): number {
  return isRejectionCode(code) ? rejectionStatus(code) : API_PROBLEMS[code].status;
}

function titleOf(code: ProblemCode): string {
  return isRejectionCode(code) ? REJECTION_CODES[code] : API_PROBLEMS[code].title;
}
