/**
 * The OpenAPI 3.1 document, generated from the routes' zod schemas with zod's own JSON Schema
 * conversion (draft 2020-12, which OpenAPI 3.1 uses as its schema dialect). Named schemas become
 * `components.schemas`; request shapes are rendered as clients send them (`io: 'input'`),
 * answers as the server produces them (`io: 'output'`).
 */
import { z } from 'zod';
import { problemCatalogue } from './problems.js';
import type { Route } from './route.js';
import { idempotencyKeySchema, ledgerHeaderSchema, requestComponents, responseComponents } from './schemas.js';

type JsonSchema = Record<string, unknown>;
type Registry = typeof requestComponents;

const COMPONENT_PREFIX = '#/components/schemas/';

/** Information for the document's `info` and `servers`. */
export interface OpenApiInfo {
  readonly title: string;
  readonly version: string;
  readonly description: string;
  readonly serverUrl?: string;
}

/** Limits of the server the document describes. */
export interface OpenApiLimits {
  /** Largest request body taken, in bytes (`bodyLimitBytes`): stated in every 413 answer's description. */
  readonly bodyLimitBytes: number;
}

/** Builds the document for `routes`. Pure: call once at start-up and serve the result. */
export function buildOpenApiDocument(routes: readonly Route[], info: OpenApiInfo, limits: OpenApiLimits): Record<string, unknown> {
  const schemas: Record<string, JsonSchema> = {
    ...componentSchemas(requestComponents, 'input'),
    ...componentSchemas(responseComponents, 'output'),
  };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const operations = (paths[route.path] ??= {});
    operations[route.method.toLowerCase()] = operationOf(route, limits);
  }
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: { title: info.title, version: info.version, description: info.description },
    ...(info.serverUrl === undefined ? {} : { servers: [{ url: info.serverUrl }] }),
    tags: [...new Set(routes.map((route) => route.tag))].map((name) => ({ name })),
    paths,
    components: {
      schemas,
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'OAuth 2.0 access token (RFC 9068 JWT) with `iss`, `aud`, `exp`, `sub`, `tenant_id` and a space-separated `scope` of accounts:read, accounts:write, transfers:write, audit:read. `sub` and `client_id` (optional; the client, `sub` when absent; when present a non-empty string) are at most 256 characters: a longer one, or a `client_id` that is not a non-empty string, answers 401 `invalid_token`.',
        },
      },
      parameters: {
        LedgerId: { name: 'Ledger-Id', in: 'header', required: false, schema: render(ledgerHeaderSchema, 'input'), description: 'The ledger (book) within your tenant; default `main`.' },
        IdempotencyKey: {
          name: 'Idempotency-Key',
          in: 'header',
          required: true,
          schema: render(idempotencyKeySchema, 'input'),
          description: 'Required on every POST. A retry with the same key and body returns the original answer (with `Idempotent-Replayed: true`); the same key with a different body answers 422.',
        },
      },
      headers: {
        RetryAfter: { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 1 } },
        IdempotentReplayed: {
          description: 'Sent (`true`) when this is the stored answer of an earlier request with the same Idempotency-Key and body: nothing ran again.',
          schema: { type: 'string', const: 'true' },
        },
        WwwAuthenticate: {
          description: 'The bearer challenge (RFC 6750): `Bearer` without a token, `Bearer error="invalid_request"` or `error="invalid_token"` for a bad one, `Bearer error="insufficient_scope", scope="…"` for a missing scope.',
          schema: { type: 'string' },
        },
        AcceptEncoding: {
          description: 'Sent (`identity`) when the body had a content coding such as gzip: send it unencoded (RFC 9110, section 12.5.3).',
          schema: { type: 'string', const: 'identity' },
        },
      },
    },
    'x-problem-types': problemCatalogue(),
  };
}

function operationOf(route: Route, limits: OpenApiLimits): Record<string, unknown> {
  const parameters: unknown[] = [...parametersOf(route.params, 'path'), ...parametersOf(route.query, 'query')];
  if (route.scope !== null) parameters.push({ $ref: '#/components/parameters/LedgerId' });
  if (route.method === 'POST') parameters.push({ $ref: '#/components/parameters/IdempotencyKey' });
  const responses: Record<string, unknown> = {};
  for (const [status, response] of Object.entries(route.responses)) {
    const headers: Record<string, unknown> = Object.fromEntries(Object.entries(response.headers ?? {}).map(([name, description]) => [name, { description, schema: { type: 'string' } }]));
    // Every answer a POST handler gives is stored under its Idempotency-Key and may come back as a replay.
    if (route.method === 'POST') headers['Idempotent-Replayed'] = { $ref: '#/components/headers/IdempotentReplayed' };
    responses[status] = {
      description: response.description,
      content: { 'application/json': { schema: schemaRef(response.schema, responseComponents, 'output') } },
      ...(Object.keys(headers).length === 0 ? {} : { headers }),
    };
  }
  for (const status of problemStatuses(route)) {
    const headers = problemHeadersOf(route, status);
    responses[String(status)] = {
      description: status === 413 ? `The body is larger than ${limits.bodyLimitBytes} bytes, the most this server takes (payload_too_large).` : (PROBLEM_DESCRIPTIONS[status] ?? 'Problem'),
      content: { 'application/problem+json': { schema: { $ref: `${COMPONENT_PREFIX}Problem` } } },
      ...(Object.keys(headers).length === 0 ? {} : { headers }),
    };
  }
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.description === undefined ? {} : { description: route.description }),
    tags: [route.tag],
    parameters,
    ...(route.body === undefined
      ? {}
      : { requestBody: { required: route.bodyOptional !== true, content: { 'application/json': { schema: schemaRef(route.body, requestComponents, 'input') } } } }),
    responses,
    security: route.scope === null ? [] : [{ bearerAuth: [route.scope] }],
  };
}

const PROBLEM_DESCRIPTIONS: Readonly<Record<number, string>> = {
  400: 'The request does not match the schema (invalid_request, malformed_json, idempotency_key_missing).',
  401: 'No valid bearer token (unauthorized).',
  403: 'The token lacks the scope (insufficient_scope).',
  404: 'Not found, or not yours: another tenant\'s resources answer 404 too.',
  408: 'The request was not received whole in time (request_timeout); the connection is closed.',
  409: 'Conflicts with the current state, or a request with this Idempotency-Key is still running (idempotency_request_in_progress: retry after Retry-After seconds).',
  413: 'The body is too large (payload_too_large).',
  415: 'The body is not UTF-8 application/json, or has a content coding such as gzip (unsupported_media_type).',
  417: 'The Expect header asks for something other than 100-continue (expectation_failed); the connection is closed.',
  422: 'A ledger rule refused it (its code names which), or the Idempotency-Key was used for another request.',
  429: 'Rate limited (rate_limited): wait Retry-After seconds.',
  431: 'The request headers are too large (request_headers_too_large); the connection is closed.',
  500: 'Internal error (internal).',
  503: 'Overloaded or a dependency is down: retry after Retry-After seconds.',
};

/** Problem answers of a POST handler (below 500) are stored under the Idempotency-Key and replayed like its successes. */
const REPLAYED_PROBLEM_STATUSES: ReadonlySet<number> = new Set([400, 404, 409, 422]);

function problemHeadersOf(route: Route, status: number): Record<string, unknown> {
  const headers: Record<string, unknown> = {};
  // A 409 of a POST may be idempotency_request_in_progress, which says when to retry.
  if (status === 429 || status === 503 || (status === 409 && route.method === 'POST')) headers['Retry-After'] = { $ref: '#/components/headers/RetryAfter' };
  if (status === 401 || status === 403) headers['WWW-Authenticate'] = { $ref: '#/components/headers/WwwAuthenticate' };
  if (status === 415) headers['Accept-Encoding'] = { $ref: '#/components/headers/AcceptEncoding' };
  if (route.method === 'POST' && REPLAYED_PROBLEM_STATUSES.has(status)) headers['Idempotent-Replayed'] = { $ref: '#/components/headers/IdempotentReplayed' };
  return headers;
}

function problemStatuses(route: Route): number[] {
  // Node's HTTP parser answers these for any request, before a route is known.
  const statuses = new Set<number>([...route.problems, 408, 417, 431]);
  // A path or query parameter that fails its schema answers 400, on public routes too.
  if (route.params !== undefined || route.query !== undefined) statuses.add(400);
  if (route.scope !== null) [400, 401, 403, 429, 500, 503].forEach((status) => statuses.add(status));
  if (route.method === 'POST') [400, 409, 413, 415, 422].forEach((status) => statuses.add(status));
  return [...statuses].sort((a, b) => a - b);
}

function parametersOf(schema: z.ZodType | undefined, where: 'path' | 'query'): unknown[] {
  if (schema === undefined) return [];
  const rendered = render(schema, 'input');
  const properties = (rendered['properties'] ?? {}) as Record<string, JsonSchema>;
  const required = new Set((rendered['required'] ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return { name, in: where, required: where === 'path' || required.has(name), schema: rest, ...(description === undefined ? {} : { description }) };
  });
}

function schemaRef(schema: z.ZodType, registry: Registry, io: 'input' | 'output'): JsonSchema {
  const id = registry.get(schema)?.id;
  return id === undefined ? render(schema, io, registry) : { $ref: `${COMPONENT_PREFIX}${id}` };
}

/** One schema, with named sub-schemas as references into `components.schemas`. */
function render(schema: z.ZodType, io: 'input' | 'output', registry: Registry = requestComponents): JsonSchema {
  const rendered = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
    metadata: registry,
    // The registry of component ids stands in for the global one, where `.meta()` keeps
    // descriptions and examples: they are added back here, or parameters would lose theirs.
    override: ({ zodSchema, jsonSchema }) => {
      const { id: _id, ...meta } = z.globalRegistry.get(zodSchema) ?? {};
      Object.assign(jsonSchema, meta);
    },
  }) as JsonSchema;
  delete rendered['$schema'];
  delete rendered['$defs'];
  return rewriteRefs(rendered) as JsonSchema;
}

function componentSchemas(registry: Registry, io: 'input' | 'output'): Record<string, JsonSchema> {
  const { schemas } = z.toJSONSchema(registry, { target: 'draft-2020-12', io, unrepresentable: 'any', uri: (id) => `${COMPONENT_PREFIX}${id}` });
  const result: Record<string, JsonSchema> = {};
  for (const [id, schema] of Object.entries(schemas)) {
    const { $schema: _dialect, $id: _id, ...rest } = schema as JsonSchema;
    result[id] = rest;
  }
  return result;
}

/** `#/$defs/X` (zod's local definitions) → `#/components/schemas/X` (the same schemas, registered). */
function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (value === null || typeof value !== 'object') return value;
  const result: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    result[key] = key === '$ref' && typeof inner === 'string' && inner.startsWith('#/$defs/') ? `${COMPONENT_PREFIX}${inner.slice('#/$defs/'.length)}` : rewriteRefs(inner);
  }
  return result;
}
