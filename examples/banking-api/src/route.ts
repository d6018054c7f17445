/**
 * How an endpoint is declared: its method and path, the zod schemas of its path, query, body and
 * every answer, the scope it needs, what it audits, and a handler that receives parsed input.
 * The HTTP layer validates with these schemas and the OpenAPI document is generated from them.
 */
import type { z } from 'zod';
import type { Principal, Scope } from './auth.js';

/** What a handler knows about the request besides its parsed input. */
export interface RequestContext {
  readonly requestId: string;
  /** The verified caller; tenant and scopes come from here only. */
  readonly principal: Principal;
  readonly tenantId: string;
  /** From the `Ledger-Id` header, or the process default. */
  readonly ledgerId: string;
  /**
   * The request's `Idempotency-Key` as the client sent it (a POST's; `undefined` for a GET). Keys
   * are the client's own: combine it with the tenant and the client id before it names anything.
   */
  readonly idempotencyKey?: string;
  /**
   * The nonce of this request's claim of its key (see `ClaimResult`): the same for a retry of the
   * same request, new for a new request with the key (after it expired, say); `null` for a claim
   * made before nonces existed; `undefined` for a GET.
   */
  readonly idempotencyNonce?: string | null;
}

/** A handler's answer: status, JSON body and extra headers. */
export interface Answer {
  readonly status: number;
  readonly body: unknown;
  /** `body` already serialised, sent as it is (a large document that never changes is not serialised per request). */
  readonly bodyJson?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One documented answer of an endpoint. */
export interface ResponseSpec {
  readonly description: string;
  readonly schema: z.ZodType;
  /** Response headers, name → description. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** The parsed input of a handler. */
export interface HandlerInput<P, Q, B> {
  readonly params: P;
  readonly query: Q;
  readonly body: B;
  readonly context: RequestContext;
}

/** An endpoint; see the module comment. */
export interface RouteSpec<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  readonly method: 'GET' | 'POST';
  /** OpenAPI-style path, e.g. `/accounts/{accountId}`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: string;
  /** Scope the token must hold; `null` for a public endpoint (no token, no rate limit, no audit). */
  readonly scope: Scope | null;
  readonly params?: P;
  readonly query?: Q;
  readonly body?: B;
  /** A missing body counts as `{}` (for commands whose every field is optional). */
  readonly bodyOptional?: boolean;
  /** Picks the member of a union body to validate with, for errors about the shape the client meant. */
  readonly bodyFor?: (raw: unknown) => z.ZodType;
  /** Success answers by status. */
  readonly responses: Readonly<Record<number, ResponseSpec>>;
  /** Problem statuses the endpoint can answer besides the ones every endpoint of its kind has. */
  readonly problems: readonly number[];
  /**
   * The audit action; the id of the account or transfer the request reads, changes or creates
   * (`resourceId`: from the path, or from the body, which is `undefined` when the request was
   * refused before its body passed the schema); and for a request that creates a transfer acting
   * on another one (a hold's post or void, a reversal), that other one's id (`targetId`); for a
   * request that creates several (a linked group), their ids in the body's order (`memberIds`).
   */
  readonly audit?: {
    readonly action: string;
    readonly resourceId: (params: z.output<P>, body: z.output<B> | undefined) => string | null;
    readonly targetId?: (params: z.output<P>) => string | null;
    readonly memberIds?: (body: z.output<B> | undefined) => readonly string[] | null;
  };
  handle(input: HandlerInput<z.output<P>, z.output<Q>, z.output<B>>): Promise<Answer>;
}

/** A route with its types erased, as the HTTP layer holds it. */
export type Route = RouteSpec<z.ZodType, z.ZodType, z.ZodType>;

/** Declares a route with typed handler input. */
export function defineRoute<P extends z.ZodType = z.ZodUndefined, Q extends z.ZodType = z.ZodUndefined, B extends z.ZodType = z.ZodUndefined>(
  spec: RouteSpec<P, Q, B>,
): Route {
  return spec as unknown as Route;
}

/** A public endpoint (health, documents): no token, no rate limit, no audit, no `Ledger-Id`. */
export interface PublicRouteSpec<P extends z.ZodType> {
  readonly method: 'GET';
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: string;
  readonly params?: P;
  readonly responses: Readonly<Record<number, ResponseSpec>>;
  readonly problems: readonly number[];
  handle(input: { readonly params: z.output<P> }): Promise<Answer>;
}

/** Declares a public route. */
export function definePublicRoute<P extends z.ZodType = z.ZodUndefined>(spec: PublicRouteSpec<P>): Route {
  const { handle, ...rest } = spec;
  return { ...rest, scope: null, handle: ({ params }) => handle({ params: params as z.output<P> }) } as Route;
}

/** `{ status: 200, body }`. */
export function ok(body: unknown, headers?: Record<string, string>): Answer {
  return headers === undefined ? { status: 200, body } : { status: 200, body, headers };
}

/** The fastify path of an OpenAPI path: `/accounts/{accountId}` → `/accounts/:accountId`. */
export function fastifyPath(path: string): string {
  return path.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1');
}
