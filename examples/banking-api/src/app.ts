/**
 * The fastify application: hooks for authentication, rate limiting, scopes and audit; one
 * handler wrapper that validates every input with the route's zod schemas and runs POSTs under
 * their `Idempotency-Key`; problem documents for every error. It holds no state of its own:
 * everything stateful is passed in (see `server.ts` for the wiring).
 */
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { AuditSink } from './audit.js';
import { requireScope, type Principal, type TokenVerifier } from './auth.js';
import type { ApiSettings } from './config.js';
import { problemFromError, validationProblem } from './error-mapping.js';
import { requestFingerprint, type IdempotencyStore, type KeyRef, type StoredResponse } from './idempotency.js';
import { safeErrorFields } from './logger.js';
import { UNMATCHED_ROUTE, type RequestMetrics } from './metrics.js';
import { buildOpenApiDocument, type OpenApiInfo } from './openapi.js';
import { PROBLEM_CONTENT_TYPE, ProblemError } from './problems.js';
import { rateLimitAddress, type RateDecision, type RateLimiter } from './rate-limiter.js';
import { fastifyPath, type Answer, type RequestContext, type Route } from './route.js';
import { accountRoutes } from './routes/accounts.js';
import { auditRoutes } from './routes/audit.js';
import { systemRoutes, type ServedDocument } from './routes/system.js';
import { transferRoutes } from './routes/transfers.js';
import { idempotencyKeySchema, ledgerHeaderSchema, noQuerySchema } from './schemas.js';
import type { Services } from './services.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified caller of a protected route; `null` on public routes and before authentication. */
    principal: Principal | null;
    /** The problem code the request was answered with, for the log and the audit. */
    problemCode: string | null;
    /** Whether the answer was an idempotent replay. */
    replayed: boolean;
    /** The ledger the request addressed. */
    ledgerId: string | null;
    /** The body as it passed its schema (`undefined` before or without that), for the audit's resource id. */
    parsedBody: unknown;
    /** Whether the request's audit event is queued (at most one per request). */
    audited: boolean;
  }
  interface FastifyContextConfig {
    /** The route declaration behind a fastify route. */
    apiRoute?: Route;
  }
}

/** What {@link buildApp} wires together. */
export interface AppDependencies {
  readonly settings: ApiSettings;
  readonly services: Services;
  readonly verifier: TokenVerifier;
  /** `undefined` when rate limiting is off. */
  readonly rateLimiter: RateLimiter | undefined;
  readonly idempotency: IdempotencyStore;
  readonly audit: AuditSink;
  readonly logger: Logger;
  readonly openApi: OpenApiInfo;
  /** Counts every answer by route pattern (served on the metrics port). */
  readonly metrics: RequestMetrics;
}

/** The application and what shutdown needs of it. */
export interface BankingApp {
  readonly app: FastifyInstance;
  readonly routes: readonly Route[];
  /** The OpenAPI document served at `/openapi.json`. */
  readonly openApiDocument: Record<string, unknown>;
  /** Makes `/health/ready` answer 503 from now on (the first step of a graceful shutdown). */
  markShuttingDown(): void;
}

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** The router's bound on one path parameter: above the longest valid id, so that zod judges ids. */
const PATH_PARAM_LENGTH_MAX = 256;

/** Builds the fastify instance with every route; `listen` is the caller's. */
export function buildApp(deps: AppDependencies): BankingApp {
  const { settings, services, verifier, rateLimiter, idempotency, audit, metrics } = deps;
  let shuttingDown = false;
  // The document and its text, made once: `/openapi.json` is public (no token, no rate limit), and
  // serialising its ~115 KB took about half a millisecond of CPU per request.
  let openApi: ServedDocument = { document: {}, json: '{}' };
  const routes: Route[] = [
    ...accountRoutes(services),
    ...transferRoutes(services),
    ...auditRoutes(services),
    ...systemRoutes(services, () => openApi, () => shuttingDown),
  ];
  const openApiDocument = buildOpenApiDocument(routes, deps.openApi, { bodyLimitBytes: settings.bodyLimitBytes });
  openApi = { document: openApiDocument, json: JSON.stringify(openApiDocument) };

  const app = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast keeps the instance type the default one.
    loggerInstance: deps.logger as FastifyBaseLogger,
    // One line per request, written by the onResponse hook below, instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: settings.bodyLimitBytes,
    // `request.ip` is the client's only behind a proxy that is trusted (see ApiSettings.trustedProxies).
    ...(settings.trustedProxies.length === 0 ? {} : { trustProxy: [...settings.trustedProxies] }),
    genReqId: () => randomUUID(),
    // Requests that reach a closing server get our own 503 problem (onRequest below), not fastify's.
    return503OnClosing: false,
    // Reject duplicate or malformed framing early; keep-alive for clients that batch calls.
    keepAliveTimeout: 10_000,
    // Bounds the time to receive a request (fastify's default is none). Node uses the larger of
    // headersTimeout (60 s by default) and requestTimeout as the bound, so both are set, and checks
    // it every connectionsCheckingInterval (30 s by default): a tenth of it keeps the bound close.
    requestTimeout: settings.requestTimeoutMs,
    // A request without Host is refused by the onRequest hook below, as a problem document (Node
    // would answer it with an empty 400 of its own).
    http: { headersTimeout: settings.requestTimeoutMs, connectionsCheckingInterval: Math.floor(settings.requestTimeoutMs / 10), requireHostHeader: false },
    // Above the longest id (128): a longer path parameter reaches its zod schema and answers a
    // 400 problem, instead of the router refusing ids the API accepts (its default is 100).
    routerOptions: { maxParamLength: PATH_PARAM_LENGTH_MAX },
    // The router's own errors (a path that is not valid percent-encoding, a parameter beyond
    // maxParamLength) answer problem documents too, not fastify's JSON.
    frameworkErrors: (error, request, reply) => {
      reply.header('cache-control', 'no-store');
      reply.header('x-request-id', request.id);
      sendProblem(request, reply, new ProblemError('invalid_request', error.code === 'FST_ERR_BAD_URL' ? 'the path is not valid percent-encoding' : 'a path parameter is too long'));
    },
    // Requests node's HTTP parser refuses before fastify sees them (headers too large, broken
    // framing, a client too slow to send its headers) answer problem documents too.
    clientErrorHandler: (error, socket) => {
      if ((error as NodeJS.ErrnoException).code === 'ECONNRESET' || socket.destroyed) return;
      const code = (error as NodeJS.ErrnoException).code;
      const problem =
        code === 'HPE_HEADER_OVERFLOW'
          ? new ProblemError('request_headers_too_large')
          : code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? new ProblemError('request_timeout')
            : new ProblemError('invalid_request', 'the request is not valid HTTP/1.1');
      if (socket.writable) {
        const body = JSON.stringify(problem.toDocument(randomUUID(), ''));
        socket.write(
          `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? 'Error'}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}; charset=utf-8\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        );
      }
      socket.destroy(error);
    },
  });
  // Bodies are JSON only: text/plain and anything else answer 415.
  app.removeContentTypeParser('text/plain');
  // An empty JSON body (Content-Length: 0) is no body, as when the content type is left out:
  // fastify's own parser refuses it (FST_ERR_CTP_EMPTY_JSON_BODY) before the route could count it
  // as `{}`. Every other body goes to that parser as before (same body limit, same secure-json-parse
  // refusal of `__proto__` and `constructor.prototype` keys per the instance's settings): one
  // length check more per request. JSON is UTF-8 (RFC 8259): a body declared in another charset
  // answers 415 and bytes that are not UTF-8 400, instead of being decoded into replacement
  // characters that the ledger would keep for ever in metadata and references.
  const parseJson = app.getDefaultJsonParser(app.initialConfig.onProtoPoisoning ?? 'error', app.initialConfig.onConstructorPoisoning ?? 'error');
  app.addContentTypeParser<Buffer>('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    if (!declaresUtf8(request.headers['content-type'])) done(new ProblemError('unsupported_media_type', 'JSON bodies must be UTF-8'), undefined);
    else if (body.length === 0) done(null, undefined);
    else if (!isUtf8(body)) done(new ProblemError('malformed_json', 'the body is not valid UTF-8'), undefined);
    else parseJson(request, body.toString('utf8'), done);
  });
  // Bodies are read as sent: a content coding (gzip, br, ...) answers 415 naming it, with
  // `Accept-Encoding: identity` (RFC 9110, sections 15.5.16 and 12.5.3), before the body is read,
  // instead of a 400 for bytes that are not JSON. `identity` is no coding and passes.
  app.addHook('preParsing', (request, _reply, payload, done) => {
    const codings = contentCodings(request.headers['content-encoding']);
    if (codings.length === 0 || request.routeOptions.config.apiRoute?.body === undefined || !hasBody(request)) {
      done(null, payload);
      return;
    }
    const named = codings.filter((coding) => CONTENT_CODING.test(coding)).slice(0, 4);
    const detail = `the body has the content coding ${named.length === 0 ? 'given' : named.join(', ')}, which this API does not decode: send it unencoded (identity)`;
    done(new ProblemError('unsupported_media_type', detail, { headers: { 'accept-encoding': 'identity' } }), payload);
  });
  app.decorateRequest('principal', null);
  app.decorateRequest('problemCode', null);
  app.decorateRequest('replayed', false);
  app.decorateRequest('ledgerId', null);
  app.decorateRequest('parsedBody', undefined);
  app.decorateRequest('audited', false);

  /** Refuses a request whose rate limiter bucket is empty: 429 with `Retry-After`. */
  function refuseWhenLimited(decision: RateDecision): void {
    if (!decision.allowed) throw new ProblemError('rate_limited', `more than ${settings.rateLimitPerSecond} requests per second`, { retryAfterSeconds: decision.retryAfterSeconds });
  }

  /** Admits a protected request of a verified token: rate limit, scope, tenant. Throws a problem. */
  function admit(request: FastifyRequest, route: Route & { scope: NonNullable<Route['scope']> }, principal: Principal): void {
    // Limited per client (a bad token was charged to its address before it was verified).
    // NUL separates the parts: tenant ids may contain ':' and neither id may contain a NUL, so no
    // two (tenant, client) pairs share a bucket.
    if (rateLimiter !== undefined) refuseWhenLimited(rateLimiter.take(`client\u0000${principal.tenantId}\u0000${principal.clientId}`));
    request.principal = principal;
    requireScope(principal, route.scope);
    services.ledgers.ensureTenant(principal.tenantId);
  }

  // Callback-style hooks: a token already verified is admitted without a promise or a turn of
  // the microtask queue, which is most requests.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('cache-control', 'no-store');
    reply.header('x-request-id', request.id);
    // HTTP/1.1 requires Host (RFC 9112, section 3.2); Node's own check is off so that this answer
    // is a problem document.
    if (request.headers.host === undefined && request.raw.httpVersionMajor === 1 && request.raw.httpVersionMinor >= 1) {
      reply.header('connection', 'close');
      done(new ProblemError('invalid_request', 'an HTTP/1.1 request must carry a Host header'));
      return;
    }
    const route = request.routeOptions.config.apiRoute;
    if (route === undefined || route.scope === null) {
      done();
      return;
    }
    const protectedRoute = route as Route & { scope: NonNullable<Route['scope']> };
    let address: string | undefined;
    try {
      if (shuttingDown) {
        reply.header('connection', 'close');
        throw new ProblemError('unavailable', 'the server is shutting down', { retryAfterSeconds: 1 });
      }
      const cached = verifier.cached(request.headers.authorization);
      if (cached !== undefined) {
        admit(request, protectedRoute, cached);
        done();
        return;
      }
      // A token not verified (lately) is charged to its address before its signature is checked,
      // and given back if it verifies: charged only once it failed, every forged token that
      // arrived in the same turn of the event loop (pipelined on one connection, say) would find
      // the bucket still full and cost a signature check. So an address that used up its bucket
      // is refused at the cost of a map lookup, and a check in flight holds one of its tokens.
      // (A token verified within the token cache's time, from any address, is admitted above.)
      if (rateLimiter !== undefined) {
        address = addressKey(request);
        refuseWhenLimited(rateLimiter.take(address));
      }
    } catch (error) {
      done(error as Error);
      return;
    }
    verifier
      .authenticate(request.headers.authorization)
      .then((principal) => {
        // A good token does not count against its address: only bad ones use up its bucket.
        if (address !== undefined) rateLimiter?.refund(address);
        admit(request, protectedRoute, principal);
      })
      .then(() => done(), (error: unknown) => done(error as Error));
  });

  // Requests in flight when shutdown begins are answered with `Connection: close`, so their
  // keep-alive sockets end with them instead of holding the server open until they time out.
  // The audit event is queued here, when the answer is final, rather than once it is sent
  // (onResponse): a client that hung up while its transfer ran gets no 'finish' of its response,
  // and the money it moved went unaudited.
  app.addHook('onSend', (request, reply, payload, done) => {
    if (shuttingDown) reply.header('connection', 'close');
    const route = request.routeOptions.config.apiRoute;
    const principal = request.principal;
    if (route?.audit !== undefined && principal !== null && !request.audited) {
      request.audited = true;
      const status = reply.statusCode;
      audit.record({
        occurredAt: new Date(),
        requestId: request.id,
        tenantId: principal.tenantId,
        // Pseudonymous where they come from `sub` (see Principal.clientLabel): the trail is append-only.
        clientId: principal.clientLabel,
        subject: principal.subjectLabel,
        action: route.audit.action,
        ledgerId: request.ledgerId ?? ledgerOf(request, settings.defaultLedgerId),
        ...auditIdsOf(route, request.params, request.parsedBody),
        status,
        outcome: status < 400 ? 'success' : status < 500 ? 'rejected' : 'error',
        problemCode: request.problemCode,
        replayed: request.replayed,
      });
    }
    done(null, payload);
  });

  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.config.apiRoute;
    const principal = request.principal;
    const status = reply.statusCode;
    metrics.observe(request.method, route?.path ?? UNMATCHED_ROUTE, status, reply.elapsedTime / 1_000);
    request.log.info(
      {
        route: route?.path ?? null,
        method: request.method,
        status,
        ms: Math.round(reply.elapsedTime * 100) / 100,
        tenant: principal?.tenantId,
        // Never a `sub` in clear: the `client_id` claim, else a pseudonym of `sub`.
        client: principal?.clientLabel,
        problem: request.problemCode ?? undefined,
        replayed: request.replayed || undefined,
      },
      'request',
    );
    done();
  });

  app.setErrorHandler((error, request, reply) => {
    const problem = clientAborted(error, request)
      ? new ProblemError('invalid_request', 'the request body ended early: the client closed the connection')
      : problemFromError(error);
    // Class, codes and SQLSTATE only (with the request id of the request's logger): never the
    // error's words, which can name the data a database statement refused.
    if (problem.status >= 500) request.log.error({ error: safeErrorFields(error), route: request.routeOptions.config.apiRoute?.path }, 'request failed');
    sendProblem(request, reply, problem);
  });
  // A path the API serves, asked with another method: 405 with the methods it takes (RFC 9110).
  const routePatterns = routes.map((route) => ({ method: route.method, pattern: pathPattern(route.path) }));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const methods = new Set<string>(routePatterns.filter((route) => route.pattern.test(path)).map((route) => route.method));
    if (methods.has('GET')) methods.add('HEAD');
    if (methods.size > 0) {
      const allow = [...methods].sort().join(', ');
      sendProblem(request, reply, new ProblemError('method_not_allowed', `${path} takes ${allow}, not ${request.method}`, { headers: { allow } }));
      return;
    }
    sendProblem(request, reply, new ProblemError('not_found', `no route ${request.method} ${path}`));
  });

  for (const route of routes) {
    app.route({
      method: route.method,
      url: fastifyPath(route.path),
      config: { apiRoute: route },
      handler: (request, reply) => handleRequest(route, request, reply),
    });
  }

  async function handleRequest(route: Route, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const params = parse(route.params, request.params, 'path');
    if (route.scope === null) {
      sendAnswer(route, reply, await route.handle({ params, query: undefined, body: undefined, context: undefined as never }));
      return;
    }
    const principal = request.principal as Principal;
    // A route without a query schema takes no query: any key is refused, not ignored.
    if (route.query === undefined) parse(noQuerySchema, request.query, 'query');
    const query = parse(route.query, request.query, 'query');
    const ledgerId = parseHeader(ledgerHeaderSchema, request, 'ledger-id') ?? settings.defaultLedgerId;
    request.ledgerId = ledgerId;
    let rawBody = request.body;
    if (rawBody === undefined) {
      if (route.bodyOptional === true) rawBody = {};
      // A content type with no body is an empty JSON body (any other type answered 415): still
      // the 400 it was before the parser let it through, where the route needs a body.
      else if (route.body !== undefined && request.headers['content-type'] !== undefined) throw new ProblemError('malformed_json', 'the body is empty');
    }
    const body = route.body === undefined ? undefined : parse(route.bodyFor?.(rawBody) ?? route.body, rawBody, 'body');
    request.parsedBody = body;
    const context: RequestContext = { requestId: request.id, principal, tenantId: principal.tenantId, ledgerId };
    if (route.method === 'GET') {
      sendAnswer(route, reply, await route.handle({ params, query, body, context }));
      return;
    }

    const keyHeader = request.headers['idempotency-key'];
    if (keyHeader === undefined) throw new ProblemError('idempotency_key_missing');
    const ref: KeyRef = {
      tenantId: principal.tenantId,
      clientId: principal.clientId,
      key: parseHeader(idempotencyKeySchema, request, 'idempotency-key'),
      fingerprint: requestFingerprint({ method: route.method, route: route.path, params, ledgerId, body: rawBody }),
    };
    const claim = await idempotency.claim(ref);
    if (claim.kind === 'mismatch') throw new ProblemError('idempotency_key_reused');
    if (claim.kind === 'in_progress') throw new ProblemError('idempotency_request_in_progress', undefined, { retryAfterSeconds: 1 });
    if (claim.kind === 'replay') {
      request.replayed = true;
      reply.header('idempotent-replayed', 'true');
      sendStored(request, reply, claim.response);
      return;
    }

    let response: StoredResponse;
    try {
      response = await claimedAnswer(route, request, { params, query, body, context: { ...context, idempotencyKey: ref.key, idempotencyNonce: claim.nonce } });
    } catch (error) {
      // The server failed, in the handler or in its answer (one that fails its schema with
      // `validateResponses`, possibly after the ledger acted): give the key back, so a retry runs
      // the request again (the ledger itself answers a retried transfer or account id with its
      // original outcome, and a lifecycle command by the key's nonce, which the release keeps)
      // instead of being told "in progress" until the lease runs out.
      await idempotency.finish(ref, undefined).catch((finishError: unknown) => request.log.warn({ error: safeErrorFields(finishError) }, 'idempotency key not released'));
      throw error;
    }
    // The answer is sent without waiting for it to be stored (a retry in this process is answered
    // from memory meanwhile; it is written with synchronous_commit off either way), unless too
    // many answers are waiting already. It is sent even if it cannot be stored: the key then stays
    // claimed until its lease runs out, and a retry after that runs again (answered by the
    // ledger's own idempotency).
    const stored = idempotency.finish(ref, response).catch((error: unknown) => request.log.warn({ error: safeErrorFields(error) }, 'idempotent answer not stored'));
    if (idempotency.isBehind()) await stored;
    sendStored(request, reply, response);
  }

  /** Sends an answer as {@link claimedAnswer} made it (or as it was stored), its problem code kept for the log and the audit. */
  function sendStored(request: FastifyRequest, reply: FastifyReply, response: StoredResponse): void {
    const problemCode = response.headers['x-problem-code'];
    if (problemCode !== undefined) request.problemCode = problemCode;
    for (const [name, value] of Object.entries(response.headers)) if (name !== 'x-problem-code') reply.header(name, value);
    reply.code(response.status).send(response.body);
  }

  /**
   * The answer of a POST that holds its `Idempotency-Key`, as it is sent and stored: the handler's,
   * checked against its schema, or the 4xx problem it threw. Throws on a server failure (5xx).
   */
  async function claimedAnswer(route: Route, request: FastifyRequest, input: Parameters<Route['handle']>[0]): Promise<StoredResponse> {
    let answer: Answer;
    let contentType = JSON_CONTENT_TYPE;
    let problemCode: string | undefined;
    try {
      answer = await route.handle(input);
    } catch (error) {
      const problem = problemFromError(error);
      if (problem.status >= 500) throw error;
      answer = { status: problem.status, body: problem.toDocument(request.id, request.url), headers: problemHeaders(problem) };
      contentType = PROBLEM_CONTENT_TYPE;
      problemCode = problem.code;
    }
    checkAnswer(route, answer, problemCode !== undefined);
    const headers: Record<string, string> = { ...answer.headers, 'content-type': contentType, ...(problemCode === undefined ? {} : { 'x-problem-code': problemCode }) };
    return { status: answer.status, headers, body: answer.bodyJson ?? JSON.stringify(answer.body) };
  }

  function sendAnswer(route: Route, reply: FastifyReply, answer: Answer): void {
    checkAnswer(route, answer, false);
    for (const [name, value] of Object.entries(answer.headers ?? {})) reply.header(name, value);
    reply.code(answer.status).type(JSON_CONTENT_TYPE).send(answer.bodyJson ?? JSON.stringify(answer.body));
  }

  /** With `validateResponses`, an answer that does not match its declared schema is a bug: 500. */
  function checkAnswer(route: Route, answer: Answer, isProblem: boolean): void {
    if (!settings.validateResponses || isProblem) return;
    const spec = route.responses[answer.status];
    if (spec === undefined) throw new Error(`${route.operationId} answered ${answer.status}, which it does not declare`);
    const result = spec.schema.safeParse(answer.body);
    if (!result.success) throw new Error(`${route.operationId} answered ${answer.status} with a body that does not match its schema: ${result.error.message}`);
  }

  // An Expect header other than 100-continue: Node answers 417 itself, with no body, unless someone
  // listens; the answer is a problem document like every other refusal.
  app.server.on('checkExpectation', (_request: unknown, response: ServerResponse) => {
    const problem = new ProblemError('expectation_failed', 'the API answers Expect: 100-continue only');
    const id = randomUUID();
    const body = JSON.stringify(problem.toDocument(id, ''));
    response.writeHead(problem.status, {
      'content-type': `${PROBLEM_CONTENT_TYPE}; charset=utf-8`,
      'cache-control': 'no-store',
      'x-request-id': id,
      connection: 'close',
      'content-length': Buffer.byteLength(body),
    });
    response.end(body);
  });

  function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: ProblemError): void {
    request.problemCode = problem.code;
    for (const [name, value] of Object.entries(problemHeaders(problem))) reply.header(name, value);
    reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem.toDocument(request.id, request.url)));
  }

  return {
    app,
    routes,
    openApiDocument,
    markShuttingDown: () => {
      shuttingDown = true;
    },
  };
}

function parse<S extends z.ZodType>(schema: S | undefined, value: unknown, where: 'path' | 'query' | 'body'): z.output<S> {
  if (schema === undefined) return undefined as z.output<S>;
  const result = schema.safeParse(value);
  if (!result.success) throw validationProblem(where, result.error);
  return result.data;
}

/** The value of the request header `name` (lower case) checked by `schema`; a bad one is a 400 naming it. */
function parseHeader<S extends z.ZodType>(schema: S, request: FastifyRequest, name: string): z.output<S> {
  const result = schema.safeParse(request.headers[name]);
  if (!result.success) throw validationProblem('header', result.error, name);
  return result.data;
}

/** Whether a Content-Type names no charset, or UTF-8 (in any case, quoted or not). */
function declaresUtf8(contentType: string | undefined): boolean {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(contentType ?? '')?.[1];
  return charset === undefined || charset.toLowerCase() === 'utf-8';
}

/** A content coding's name (RFC 9110 token), bounded so that a detail never echoes much of a header. */
const CONTENT_CODING = /^[a-z0-9!#$%&'*+.^_`|~-]{1,32}$/;

/** The codings a `Content-Encoding` value lists, lower case, without `identity` (which is none). */
function contentCodings(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity');
}

/** Whether a request has a body to read, by fastify's own rule (a length above 0, or chunked). */
/** A route path's concrete paths (`/accounts/{accountId}` matches `/accounts/alice`), its other characters literal. */
function pathPattern(path: string): RegExp {
  const literal = path.split(/\{[^}]+\}/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${literal.join('[^/]+')}$`);
}

/**
 * Whether `error` is the client closing its connection before the body was read whole: its doing,
 * not the server's (the socket's `ECONNRESET` would otherwise read as a database gone).
 */
function clientAborted(error: unknown, request: FastifyRequest): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ECONNRESET' && (request.raw.readableAborted || request.raw.destroyed);
}

/**
 * The rate limiter's bucket of requests from this address without a valid token: an IPv6
 * client's is its /64 network's (see {@link rateLimitAddress}).
 */
function addressKey(request: FastifyRequest): string {
  return `ip\u0000${rateLimitAddress(request.ip)}`;
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function problemHeaders(problem: ProblemError): Record<string, string> {
  return { ...problem.headers, ...(problem.retryAfterSeconds === undefined ? {} : { 'retry-after': String(problem.retryAfterSeconds) }) };
}

/**
 * The ids an audit event names (see `RouteSpec.audit`): only from path parameters and a body that
 * passed their schemas (`body` is the parsed one, `undefined` when it did not get that far). A raw
 * value may hold anything a request can (a NUL, say), which PostgreSQL refuses in jsonb, and an
 * audit batch holding it would fail and be retried for ever, stopping every tenant's trail.
 */
function auditIdsOf(route: Route, params: unknown, body: unknown): { resourceId: string | null; targetId: string | null; memberIds: readonly string[] | null } {
  const none = { resourceId: null, targetId: null, memberIds: null };
  const audit = route.audit;
  if (audit === undefined) return none;
  try {
    const parsed = route.params === undefined ? { success: true as const, data: undefined } : route.params.safeParse(params);
    if (!parsed.success) return none;
    return {
      resourceId: audit.resourceId(parsed.data as never, body as never),
      targetId: audit.targetId?.(parsed.data as never) ?? null,
      memberIds: audit.memberIds?.(body as never) ?? null,
    };
  } catch {
    return none;
  }
}

/**
 * The ledger a request addressed, for an audit event of a request refused before its handler read
 * it (a bad path, query or scope): the `Ledger-Id` header's, the default without one, `null` for a
 * header that is not a valid id (which is not stored: see {@link auditIdsOf}).
 */
function ledgerOf(request: FastifyRequest, defaultLedgerId: string): string | null {
  const parsed = ledgerHeaderSchema.safeParse(request.headers['ledger-id']);
  return parsed.success ? (parsed.data ?? defaultLedgerId) : null;
}
