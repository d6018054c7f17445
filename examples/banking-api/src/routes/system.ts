import { problemCatalogue } from '../problems.js';
import { definePublicRoute, ok, type Route } from '../route.js';
import { healthSchema, openApiDocumentSchema, problemParamsSchema, problemTypeListSchema, problemTypeSchema } from '../schemas.js';
import type { Services } from '../services.js';
import { ProblemError } from '../problems.js';

/** A document served as it is: the object (for response validation) and its JSON text, made once. */
export interface ServedDocument {
  readonly document: Record<string, unknown>;
  readonly json: string;
}

/** Health, the OpenAPI document and the problem-type pages: public, never rate limited. */
export function systemRoutes(services: Services, openApi: () => ServedDocument, isShuttingDown: () => boolean): Route[] {
  const catalogue = problemCatalogue();
  return [
    definePublicRoute({
      method: 'GET',
      path: '/health/live',
      operationId: 'live',
      summary: 'Liveness: the process answers',
      tag: 'system',
      responses: { 200: { description: 'Alive.', schema: healthSchema } },
      problems: [],
      async handle() {
        return ok({ status: 'ok' });
      },
    }),
    definePublicRoute({
      method: 'GET',
      path: '/health/ready',
      operationId: 'ready',
      summary: 'Readiness: the database answers and the ledger writers are healthy',
      tag: 'system',
      responses: { 200: { description: 'Ready.', schema: healthSchema }, 503: { description: 'Not ready: the failing checks say `unreachable` (database), `not ready` or `shutting down`; the reason is in the server log.', schema: healthSchema } },
      problems: [],
      async handle() {
        const checks = await services.readiness();
        if (isShuttingDown()) checks['shutdown'] = { ok: false, detail: 'shutting down' };
        const ready = Object.values(checks).every((check) => check.ok);
        return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not_ready', checks } };
      },
    }),
    definePublicRoute({
      method: 'GET',
      path: '/openapi.json',
      operationId: 'openApi',
      summary: 'This API\'s OpenAPI 3.1 document',
      tag: 'system',
      responses: { 200: { description: 'The document.', schema: openApiDocumentSchema } },
      problems: [],
      async handle() {
        const { document, json } = openApi();
        return { status: 200, body: document, bodyJson: json };
      },
    }),
    definePublicRoute({
      method: 'GET',
      path: '/problems',
      operationId: 'listProblemTypes',
      summary: 'Every problem type the API answers with',
      tag: 'system',
      responses: { 200: { description: 'The catalogue.', schema: problemTypeListSchema } },
      problems: [],
      async handle() {
        return ok({ problems: catalogue });
      },
    }),
    definePublicRoute({
      method: 'GET',
      path: '/problems/{code}',
      operationId: 'getProblemType',
      summary: 'What a problem type means (its `type` URI points here)',
      tag: 'system',
      params: problemParamsSchema,
      responses: { 200: { description: 'The problem type.', schema: problemTypeSchema } },
      problems: [404],
      async handle({ params }) {
        const found = catalogue.find((entry) => entry.code === params.code);
        if (found === undefined) throw new ProblemError('not_found', 'no such problem type');
        return ok(found);
      },
    }),
  ];
}
