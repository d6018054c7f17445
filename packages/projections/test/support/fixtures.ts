import { CurrencyRegistry, Ledger, type EventStore, type GlobalEvent } from '@ledgerkit/ledger-core';
import { balancesProjection, historyProjection, ProjectionRunner, type Projection, type ReadModels } from '@ledgerkit/projections';
import type { ClientPool } from '@ledgerkit/tenant-rls';
import { expect } from 'vitest';

export { createSeenTable, seenProjection, seenVersions } from './seen.js';

export const currencies = new CurrencyRegistry();

/** Accounts of the small fixture ledgers. */
export const FIXTURE_ACCOUNTS = ['cash', 'alice', 'bob', 'carol'] as const;

/** Opens a ledger with the fixture accounts. */
export async function openFixtureLedger(store: EventStore, tenantId: string, ledgerId = 'eur', clock?: () => number): Promise<Ledger> {
  const ledger = await Ledger.open({ store, tenantId, ledgerId, currencies, snapshotEveryEvents: 0, ...(clock === undefined ? {} : { clock }) });
  await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
  for (const accountId of FIXTURE_ACCOUNTS.slice(1)) await ledger.openAccount({ accountId, currency: 'EUR', type: 'liability' });
  return ledger;
}

/** `count` transfers from cash to the customers in turn, ids `<prefix>-<n>`, awaited in groups so the writer batches them. */
export async function writeTransfers(ledger: Ledger, prefix: string, count: number, group = 1): Promise<void> {
  for (let start = 0; start < count; start += group) {
    const results = await Promise.all(
      Array.from({ length: Math.min(group, count - start) }, (_, offset) => {
        const n = start + offset;
        return ledger.transfer({
          transferId: `${prefix}-${n}`,
          debitAccountId: 'cash',
          creditAccountId: FIXTURE_ACCOUNTS[1 + (n % 3)] as string,
          amount: `${1 + (n % 97)}.${String(n % 100).padStart(2, '0')}`,
          currency: 'EUR',
        });
      }),
    );
    for (const result of results) expect(result).toMatchObject({ ok: true });
  }
}

/** Every balance of the ledger's accounts, from the balances read model, equals the ledger's own. */
export async function expectBalancesAgree(models: ReadModels, ledger: Ledger, tenantId: string, ledgerId = 'eur'): Promise<void> {
  for (const accountId of FIXTURE_ACCOUNTS) {
    expect(await models.balance(tenantId, ledgerId, accountId), `balance of ${accountId}`).toEqual(ledger.balance(accountId));
  }
}

/** Every event of a tenant's global log, in order. */
export async function globalLog(store: EventStore, tenantId: string): Promise<GlobalEvent[]> {
  const all: GlobalEvent[] = [];
  let after: string | null = null;
  for (;;) {
    const page = await store.readAll({ tenantId, after, limit: 1_000 });
    if (page.length === 0) return all;
    all.push(...page);
    after = (page[page.length - 1] as GlobalEvent).position;
  }
}

/** `promise`, or a rejection naming `what` once `ms` have passed: a hang fails the test quickly. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` until it returns true; fails after `timeoutMs`. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`${what} not met after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Runs projections of `tenantIds` (default the balances and history projections) until they have
 * read the end of the log, then stops them.
 */
export async function projectToEnd(
  pool: ClientPool,
  store: EventStore,
  tenantIds: readonly string[],
  options: { readonly projections?: readonly Projection[]; readonly batchSize?: number } = {},
): Promise<void> {
  const projections = options.projections ?? [balancesProjection(), historyProjection()];
  const runner = new ProjectionRunner({ pool, store, tenantIds: [...tenantIds], projections, currencies, ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }) });
  runner.start();
  try {
    await runner.whenCaughtUp();
  } finally {
    await runner.stop();
  }
}
