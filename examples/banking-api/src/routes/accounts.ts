import { createHash } from 'node:crypto';
import { InvalidInputError, LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX, type Balance, type CommandContext, type Ledger } from '@ledgerkit/ledger-core';
import type { DirectoryAccount } from '../account-directory.js';
import { acceptedOrThrow } from '../error-mapping.js';
import { ProblemError, type ProblemIssue } from '../problems.js';
import { defineRoute, ok, type RequestContext, type Route } from '../route.js';
import {
  accountPageSchema,
  accountParamsSchema,
  accountSchema,
  asOfQuerySchema,
  balanceSchema,
  emptyBodySchema,
  freezeAccountBodySchema,
  listAccountsQuerySchema,
  openAccountBodySchema,
  statementQuerySchema,
  statementSchema,
} from '../schemas.js';
import type { Services } from '../services.js';

/** The statement read's options, by the query parameter each comes from. */
const STATEMENT_QUERY_NAMES: Readonly<Record<string, string>> = { from: 'from', to: 'to', limit: 'limit', afterVersion: 'after' };

/**
 * A read model's refusal of an option the route took from the query string, as the 400 a query
 * the schema refuses answers (`query.<name>`, not the `body.<path>` the general mapping gives an
 * `InvalidInputError`); `names` maps each option to its query parameter. Any other error, or an
 * issue of an option not from the query, passes through as it is.
 */
function queryInputProblem(error: unknown, names: Readonly<Record<string, string>>): unknown {
  if (!(error instanceof InvalidInputError)) return error;
  const errors: ProblemIssue[] = [];
  for (const issue of error.issues) {
    const [option, ...rest] = issue.path;
    const name = typeof option === 'string' && Object.hasOwn(names, option) ? names[option] : undefined;
    if (name === undefined || rest.length > 0) return error;
    errors.push({ path: `query.${name}`, message: issue.message });
  }
  return new ProblemError('invalid_request', `invalid query: ${errors[0]?.message ?? 'invalid'}`, { errors });
}

/**
 * The context recorded in the envelope of every event a request causes: its id and the client
 * (as logs and audit events name it: never a `sub` in clear, the event log being permanent).
 */
export function commandContext(context: RequestContext): CommandContext {
  return { correlationId: context.requestId, metadata: { 'api.client': context.principal.clientLabel } };
}

/**
 * The account after a command: the directory is kept inside the append, so it is current. If it
 * lacks the account all the same (its projection runner rebuilding it, say), the ledger has acted
 * but the answer cannot be made: a 503, which gives the `Idempotency-Key` back, so that the retry
 * gets the account (a 404 would be stored and replayed for the key's whole life).
 */
async function accountAfterWrite(services: Services, context: RequestContext, accountId: string): Promise<DirectoryAccount> {
  const account = await services.directory.get(context.tenantId, context.ledgerId, accountId);
  if (account === undefined) {
    throw new ProblemError('unavailable', 'the account is not in the directory yet; retry shortly with the same Idempotency-Key', { retryAfterSeconds: 1 });
  }
  return account;
}

async function existingAccount(services: Services, context: RequestContext, accountId: string): Promise<Balance> {
  const balance = await services.models.balance(context.tenantId, context.ledgerId, accountId);
  if (balance === undefined) throw new ProblemError('not_found', 'no such account');
  return balance;
}

function balanceBody(ledgerId: string, balance: Balance, asOf: string | null, timeBasis: 'effective' | 'recorded' | null) {
  return {
    ledgerId,
    accountId: balance.accountId,
    currency: balance.currency,
    type: balance.type,
    normalSide: balance.normalSide,
    status: balance.status,
    posted: balance.posted,
    pending: balance.pending,
    available: balance.available,
    debitsPosted: balance.debitsPosted,
    creditsPosted: balance.creditsPosted,
    debitsPending: balance.debitsPending,
    creditsPending: balance.creditsPending,
    asOf,
    timeBasis,
  };
}

/**
 * The ledger's `commandId` of a freeze, unfreeze or close: `key:` and the SHA-256 (hex) of the
 * tenant, the client id, the request's `Idempotency-Key` and the nonce of its claim, so that a
 * retry of the request (same key, same claim nonce) is answered by the ledger as a duplicate of
 * the change it repeats, even once the key's stored answer is gone (the first attempt ended in a
 * 5xx after the ledger acted, which releases the key and keeps its nonce, or the answer was lost
 * with the last moments of the key store), while the same key sent again after it expired is a
 * new command (a new nonce), not a duplicate the ledger still remembers. Hashed rather than the
 * key itself: a key may hold characters an id may not, and be longer than one (255 against 128),
 * and keys are per client, so two clients' equal keys must name different commands. Always
 * 68 characters of the id alphabet.
 */
export function lifecycleCommandIdOf(tenantId: string, clientId: string, idempotencyKey: string, nonce: string | null = null): string {
  // Each part but the last after its length: no two triples hash the same text, whatever a client id holds.
  const hash = createHash('sha256').update(`${tenantId.length}:${tenantId}${clientId.length}:${clientId}`);
  // The claim's nonce: a new request with the key (after it expired) is a new command; without
  // one (a key claimed before nonces) the id is as it always was.
  hash.update(nonce === null ? idempotencyKey : `${idempotencyKey.length}:${idempotencyKey}${nonce}`);
  return `key:${hash.digest('hex')}`;
}

type AccountCommand = (ledger: Ledger, input: unknown, context: CommandContext) => ReturnType<Ledger['freezeAccount']>;

function accountCommandRoute(services: Services, action: 'freeze' | 'unfreeze' | 'close', run: AccountCommand, summary: string, withReason: boolean): Route {
  const body = withReason ? freezeAccountBodySchema : emptyBodySchema;
  return defineRoute({
    method: 'POST',
    path: `/accounts/{accountId}/${action}`,
    operationId: `${action}Account`,
    summary,
    description: `${LIFECYCLE_DESCRIPTIONS[action]} A retry with the same \`Idempotency-Key\` answers with the original outcome, also after a 5xx that left it unknown whether the change was made: 200 with the account, never a 409 for the change the first attempt made (the ledger remembers the last ${LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX} such changes of each account).`,
    tag: 'accounts',
    scope: 'accounts:write',
    params: accountParamsSchema,
    body,
    bodyOptional: true,
    responses: { 200: { description: 'The account after the change.', schema: accountSchema } },
    problems: [404, 409],
    audit: { action: `account.${action}`, resourceId: (params) => params.accountId },
    async handle({ params, body: input, context }) {
      // Every POST holds its key (app.ts refuses one without); the fallback keeps the command as it was.
      const key = context.idempotencyKey;
      const commandId = key === undefined ? {} : { commandId: lifecycleCommandIdOf(context.tenantId, context.principal.clientId, key, context.idempotencyNonce ?? null) };
      const command = { ...input, accountId: params.accountId, ...commandId };
      const result = await services.ledgers.use(context.tenantId, context.ledgerId, (ledger) => run(ledger, command, commandContext(context)));
      acceptedOrThrow(result);
      return ok(await accountAfterWrite(services, context, params.accountId));
    },
  });
}

/** What each lifecycle route does, before what its retries answer. */
const LIFECYCLE_DESCRIPTIONS = {
  freeze: 'Freezes an open account: no transfer, hold or hold post touches it until it is unfrozen (holds on it can still be voided or expire). A frozen account answers 409 `account_frozen`, a closed one 409 `account_closed`.',
  unfreeze: 'Unfreezes a frozen account. An account that is not frozen answers 409 `account_not_frozen`, a closed one 409 `account_closed`.',
  close: 'Closes an account for good; only at zero balance with nothing held (else 409 `account_not_empty`). A closed account answers 409 `account_closed`.',
} as const;

/** Accounts: open, list, get, freeze, unfreeze, close, balance and statement. */
export function accountRoutes(services: Services): Route[] {
  return [
    defineRoute({
      method: 'POST',
      path: '/accounts',
      operationId: 'openAccount',
      summary: 'Open an account',
      description: 'Opens an account with a caller-chosen id. Opening the same id again with the same attributes answers 200 with the account; with different ones, 409 `account_exists`.',
      tag: 'accounts',
      scope: 'accounts:write',
      body: openAccountBodySchema,
      responses: {
        201: { description: 'Opened.', schema: accountSchema, headers: { Location: 'The account\'s address.' } },
        200: { description: 'Already open with the same attributes.', schema: accountSchema, headers: { Location: 'The account\'s address.' } },
      },
      problems: [409],
      audit: { action: 'account.open', resourceId: (_params, body) => body?.accountId ?? null },
      async handle({ body, context }) {
        // ledger-core opens an account in a currency its registry lacks; refuse it here (400).
        services.currencies.get(body.currency);
        const result = acceptedOrThrow(await services.ledgers.use(context.tenantId, context.ledgerId, (ledger) => ledger.openAccount(body, commandContext(context))));
        const account = await accountAfterWrite(services, context, body.accountId);
        return { status: result.duplicate ? 200 : 201, body: account, headers: { location: `/accounts/${encodeURIComponent(body.accountId)}` } };
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/accounts',
      operationId: 'listAccounts',
      summary: 'List accounts',
      description: 'Accounts of the ledger in id order, a page at a time: pass `nextCursor` as `after` for the next page.',
      tag: 'accounts',
      scope: 'accounts:read',
      query: listAccountsQuerySchema,
      responses: { 200: { description: 'A page of accounts.', schema: accountPageSchema } },
      problems: [],
      audit: { action: 'account.list', resourceId: () => null },
      async handle({ query, context }) {
        return ok(await services.directory.list(context.tenantId, context.ledgerId, query.after, query.limit ?? 100));
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/accounts/{accountId}',
      operationId: 'getAccount',
      summary: 'Get an account',
      tag: 'accounts',
      scope: 'accounts:read',
      params: accountParamsSchema,
      responses: { 200: { description: 'The account.', schema: accountSchema } },
      problems: [404],
      audit: { action: 'account.read', resourceId: (params) => params.accountId },
      async handle({ params, context }) {
        const account = await services.directory.get(context.tenantId, context.ledgerId, params.accountId);
        if (account === undefined) throw new ProblemError('not_found', 'no such account');
        return ok(account);
      },
    }),
    accountCommandRoute(services, 'freeze', (ledger, input, context) => ledger.freezeAccount(input, context), 'Freeze an account (no transfers in or out)', true),
    accountCommandRoute(services, 'unfreeze', (ledger, input, context) => ledger.unfreezeAccount(input, context), 'Unfreeze a frozen account', false),
    accountCommandRoute(services, 'close', (ledger, input, context) => ledger.closeAccount(input, context), 'Close an account with zero balance and nothing held', false),
    defineRoute({
      method: 'GET',
      path: '/accounts/{accountId}/balance',
      operationId: 'getBalance',
      summary: 'Get an account\'s balance, now or as of a time',
      description:
        'Posted, pending and available balance. Now: read-your-writes (kept inside every append). With `asOf`: as of that business (`effective`, default) or recorded time, from the history read model (which trails the log by its projection lag).',
      tag: 'accounts',
      scope: 'accounts:read',
      params: accountParamsSchema,
      query: asOfQuerySchema,
      responses: { 200: { description: 'The balance.', schema: balanceSchema } },
      problems: [404],
      audit: { action: 'balance.read', resourceId: (params) => params.accountId },
      async handle({ params, query, context }) {
        if (query.asOf === undefined) {
          const balance = await services.models.balance(context.tenantId, context.ledgerId, params.accountId);
          if (balance === undefined) throw new ProblemError('not_found', 'no such account');
          return ok(balanceBody(context.ledgerId, balance, null, null));
        }
        const timeBasis = query.timeBasis ?? 'effective';
        const asOf = new Date(query.asOf).toISOString();
        const point = timeBasis === 'recorded' ? { recordedAt: asOf } : { effectiveAt: asOf };
        const balance = await services.models.balanceAt(context.tenantId, context.ledgerId, params.accountId, point);
        if (balance === undefined) throw new ProblemError('not_found', 'no such account, or it was not open yet at that time');
        return ok(balanceBody(context.ledgerId, balance, asOf, timeBasis));
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/accounts/{accountId}/transactions',
      operationId: 'getStatement',
      summary: 'Get an account\'s statement',
      description:
        'Entries in ledger order with the running posted balance after each; `from`/`to` bound the recorded time. Keyset-paginated: pass `nextCursor` as `after`. A page never splits one event\'s entries, so it may hold one entry more than `limit`.',
      tag: 'accounts',
      scope: 'accounts:read',
      params: accountParamsSchema,
      query: statementQuerySchema,
      responses: { 200: { description: 'A page of the statement.', schema: statementSchema } },
      problems: [404],
      audit: { action: 'statement.read', resourceId: (params) => params.accountId },
      async handle({ params, query, context }) {
        const account = await existingAccount(services, context, params.accountId);
        const page = await services.models
          .statement(context.tenantId, context.ledgerId, params.accountId, {
            limit: query.limit ?? 100,
            ...(query.after === undefined ? {} : { afterVersion: Number(query.after) }),
            ...(query.from === undefined ? {} : { from: query.from }),
            ...(query.to === undefined ? {} : { to: query.to }),
          })
          .catch((error: unknown) => {
            throw queryInputProblem(error, STATEMENT_QUERY_NAMES);
          });
        return ok({
          ledgerId: context.ledgerId,
          accountId: params.accountId,
          currency: account.currency,
          entries: page.entries.map((entry) => ({
            ledgerVersion: entry.ledgerVersion,
            transferId: entry.transferId,
            eventType: entry.eventType,
            side: entry.side,
            bucket: entry.bucket,
            amount: entry.amount,
            balanceAfter: entry.balanceAfter,
            recordedAt: entry.recordedAt,
            effectiveAt: entry.effectiveAt,
          })),
          nextCursor: page.nextAfterVersion === null ? null : String(page.nextAfterVersion),
        });
      },
    }),
  ];
}
