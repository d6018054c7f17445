import { ResultTooLargeError } from '@ledgerkit/projections';
import { ProblemError } from '../problems.js';
import { defineRoute, ok, type Route } from '../route.js';
import { asOfQuerySchema, trialBalanceSchema } from '../schemas.js';
import type { Services } from '../services.js';

/** Auditor endpoints (scope `audit:read`). */
export function auditRoutes(services: Services): Route[] {
  return [
    defineRoute({
      method: 'GET',
      path: '/trial-balance',
      operationId: 'getTrialBalance',
      summary: 'Trial balance, now or as of a time',
      description:
        'Every account\'s net posted balance in the debit or credit column, with per-currency totals that must be equal (`balanced`). Now: from the balances kept inside every append; with `asOf`: as of that business (`effective`, default) or recorded time.',
      tag: 'audit',
      scope: 'audit:read',
      query: asOfQuerySchema,
      responses: { 200: { description: 'The trial balance.', schema: trialBalanceSchema } },
      problems: [422],
      audit: { action: 'trial_balance.read', resourceId: () => null },
      async handle({ query, context }) {
        const timeBasis = query.asOf === undefined ? null : (query.timeBasis ?? 'effective');
        const asOf = query.asOf === undefined ? null : new Date(query.asOf).toISOString();
        const point = asOf === null ? undefined : timeBasis === 'recorded' ? { recordedAt: asOf } : { effectiveAt: asOf };
        const linesMax = services.settings.trialBalanceLinesMax;
        // The read models stop one row past the limit: a large ledger is never loaded to be refused.
        const trial = await services.models.trialBalance(context.tenantId, context.ledgerId, point, { linesMax }).catch((error: unknown) => {
          throw error instanceof ResultTooLargeError ? new ProblemError('result_too_large', `the trial balance has more than ${linesMax} lines`) : error;
        });
        return ok({ ledgerId: context.ledgerId, asOf, timeBasis, lines: trial.lines, totals: trial.totals });
      },
    }),
  ];
}
