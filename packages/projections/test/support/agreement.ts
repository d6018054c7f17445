import {
  balanceOf,
  evolve,
  formatAmount,
  initialState,
  readLedger,
  replayLedger,
  trialBalanceOf,
  type AccountState,
  type AsOf,
  type CurrencyRegistry,
  type HistoryEntry,
  type HistoryPage,
  type Ledger,
  type LedgerSource,
  type TransferRecord,
} from '@ledgerkit/ledger-core';
import { reconcileLedger, type ReadModels, type TransferView } from '@ledgerkit/projections';
import { expect } from 'vitest';

/** What the read models are compared against: the ledger (its replay-backed queries) and its log. */
export interface AgreementSubject {
  readonly models: ReadModels;
  readonly ledger: Ledger;
  readonly source: LedgerSource;
  readonly currencies: CurrencyRegistry;
  readonly accountIds: readonly string[];
  /** Deterministic choice in [0, n). */
  readonly pick: (n: number) => number;
  /** Largest statement page asked for; small pages test the page boundaries, large ones keep long histories quick (each page is a replay). Default 4. */
  readonly statementLimitMax?: number;
}

/**
 * Every read-model answer equals the replay's: balances now and as of versions, recorded and
 * effective times (each a replay from the first event), trial balances, every statement page,
 * every transfer, lookups by reference and the open holds.
 */
export async function expectReadModelsAgree(subject: AgreementSubject): Promise<void> {
  const { models, ledger, source, accountIds, pick } = subject;
  const { tenantId, ledgerId } = source;
  const events: { version: number; recordedMs: number; effectiveMs: number }[] = [];
  for await (const stored of readLedger(source)) {
    events.push({ version: stored.ledgerVersion, recordedMs: Date.parse(stored.recordedAt), effectiveMs: Date.parse(stored.effectiveAt) });
  }
  const last = events.length;
  const some = <T>(values: readonly T[], count: number): T[] => Array.from({ length: Math.min(count, values.length) }, () => values[pick(values.length)] as T);

  // Now.
  for (const accountId of accountIds) {
    expect(await models.balance(tenantId, ledgerId, accountId), `balance of ${accountId} now`).toEqual(ledger.balance(accountId));
  }
  expect(await models.trialBalance(tenantId, ledgerId), 'trial balance now').toEqual(await ledger.trialBalance());

  // As of points in time, each of the three kinds, on and next to event boundaries.
  const points: AsOf[] = [{ ledgerVersion: 0 }, { ledgerVersion: last }, { ledgerVersion: last + 3 }];
  for (const version of some(events.map((event) => event.version), 3)) points.push({ ledgerVersion: version });
  const recorded = events.map((event) => event.recordedMs);
  const effective = events.map((event) => event.effectiveMs);
  for (const ms of some(recorded, 3)) points.push({ recordedAt: new Date(ms).toISOString() }, { recordedAt: new Date(ms - 1) });
  for (const ms of some(effective, 4)) points.push({ effectiveAt: new Date(ms).toISOString() }, { effectiveAt: new Date(ms - 1).toISOString() });
  points.push({ recordedAt: new Date(Math.min(...recorded) - 1) }, { effectiveAt: new Date(Math.min(...effective) - 1) }, { effectiveAt: new Date(Math.max(...recorded) + 1) });
  for (const asOf of points) {
    const state = await replayLedger(source, asOf);
    for (const accountId of accountIds) {
      const expected = state.accounts.get(accountId);
      const actual = await models.balanceAt(tenantId, ledgerId, accountId, asOf);
      expect(actual, `balance of ${accountId} as of ${JSON.stringify(asOf)}`).toEqual(expected === undefined ? undefined : balanceOf(expected, subject.currencies));
    }
    const accounts = [...(state.accounts as Map<string, AccountState>).values()];
    expect(await models.trialBalance(tenantId, ledgerId, asOf), `trial balance as of ${JSON.stringify(asOf)}`).toEqual(trialBalanceOf(accounts, subject.currencies));
    const everyBalance = accounts.map((account) => balanceOf(account, subject.currencies)).sort((a, b) => (a.accountId < b.accountId ? -1 : a.accountId > b.accountId ? 1 : 0));
    expect(await models.balancesAt(tenantId, ledgerId, asOf), `every balance as of ${JSON.stringify(asOf)}`).toEqual(everyBalance);
  }

  // The run-time check of the same contract finds nothing, at the last version, at version 0 and
  // at an earlier one. Agreeing alone would hold were the head compared instead: the accounts
  // compared must be the ones open at that version (none at 0).
  for (const ledgerVersion of [undefined, 0, pick(last + 1)]) {
    const reconciled = await reconcileLedger({ store: source.store, models, tenantId, ledgerId, currencies: subject.currencies, ...(ledgerVersion === undefined ? {} : { ledgerVersion }) });
    const opened = (await replayLedger(source, { ledgerVersion: ledgerVersion ?? last })).accounts.size;
    expect(reconciled, `reconciliation at ${String(ledgerVersion)}`).toMatchObject({ ledgerVersion: ledgerVersion ?? last, accountsCompared: opened, mismatchCount: 0, agrees: true });
    if (ledgerVersion === 0) expect(reconciled.accountsCompared, 'accounts compared at version 0').toBe(0);
  }

  // Statements, page by page.
  for (const accountId of accountIds) {
    let afterVersion = 0;
    for (let pages = 0; pages < 1_000; pages += 1) {
      const limit = 1 + pick(subject.statementLimitMax ?? 4);
      const expected = await ledger.history(accountId, { afterVersion, limit });
      const actual = await models.statement(tenantId, ledgerId, accountId, { afterVersion, limit });
      expect(actual, `statement of ${accountId} after ${afterVersion} (limit ${limit})`).toEqual(expected);
      if (expected.nextAfterVersion === null) break;
      afterVersion = expected.nextAfterVersion;
    }
  }

  // Statements limited to recorded-time windows (ends on, and next to, recorded times; an open
  // end), page by page: exactly the replayed entries recorded in the window.
  const windows: { from?: Date; to?: Date }[] = [];
  for (let n = 0; n < 3; n += 1) {
    const [a, b] = [recorded[pick(recorded.length)] as number, recorded[pick(recorded.length)] as number].sort((x, y) => x - y) as [number, number];
    windows.push({ from: new Date(a), to: new Date(b + pick(2)) }, { from: new Date(a + pick(2)) }, { to: new Date(b) });
  }
  for (const accountId of accountIds) {
    const all: HistoryEntry[] = [];
    for (let afterVersion: number | null = 0; afterVersion !== null; ) {
      const page: HistoryPage = await ledger.history(accountId, { afterVersion, limit: 1_000 });
      all.push(...page.entries);
      afterVersion = page.nextAfterVersion;
    }
    for (const window of windows) {
      const expected = all.filter((entry) => (window.from === undefined || Date.parse(entry.recordedAt) >= window.from.getTime()) && (window.to === undefined || Date.parse(entry.recordedAt) < window.to.getTime()));
      const got: HistoryEntry[] = [];
      let afterVersion = 0;
      for (let pages = 0; pages < 1_000; pages += 1) {
        const limit = 1 + pick(subject.statementLimitMax ?? 4);
        const page = await models.statement(tenantId, ledgerId, accountId, { afterVersion, limit, ...window });
        const cut = page.entries.length > limit ? (page.entries[limit - 1] as HistoryEntry).ledgerVersion : undefined;
        if (cut !== undefined) expect(page.entries.every((entry) => entry.ledgerVersion <= cut), 'a page ends between events').toBe(true);
        got.push(...page.entries);
        if (page.nextAfterVersion === null) break;
        afterVersion = page.nextAfterVersion;
      }
      expect(got, `statement of ${accountId} in ${JSON.stringify(window)}`).toEqual(expected);
    }
  }

  await expectTransfersAgree(subject);
}

/** Transfers by id and by reference, and open holds, equal a full replay's transfer records. */
async function expectTransfersAgree(subject: AgreementSubject): Promise<void> {
  const { models, source, currencies } = subject;
  const { tenantId, ledgerId } = subject.source;
  const state = initialState({ limitsAsserted: false });
  const resolutions = new Map<string, { by: string | null; version: number }>();
  for await (const stored of readLedger(source)) {
    const { event, meta } = source.codec.decode(stored);
    evolve(state, event, meta);
    if (event.type === 'PendingPosted' || event.type === 'PendingVoided') resolutions.set(event.pendingId, { by: event.transferId, version: meta.ledgerVersion });
    if (event.type === 'PendingExpired') resolutions.set(event.pendingId, { by: null, version: meta.ledgerVersion });
  }
  const records = [...(state.transfers as Map<string, TransferRecord>).values()];
  const viewOf = (record: TransferRecord): TransferView => ({
    ledgerId,
    transferId: record.id,
    kind: record.kind,
    postings: record.postings.map((posting) => ({
      accountId: posting.accountId,
      side: posting.side,
      amount: formatAmount(posting.amount, currencies.get(posting.currency).scale),
      currency: posting.currency,
    })),
    reference: record.reference ?? null,
    pendingId: record.pendingId ?? null,
    reversalOf: record.reversalOf ?? null,
    reversedBy: record.reversedBy ?? null,
    metadata: record.metadata,
    ledgerVersion: record.ledgerVersion,
    recordedAt: new Date(record.recordedAtMs).toISOString(),
    effectiveAt: new Date(record.effectiveAtMs).toISOString(),
    hold:
      record.kind === 'hold'
        ? {
            status: record.resolution ?? 'pending',
            timeoutAt: record.timeoutAtMs === undefined ? null : new Date(record.timeoutAtMs).toISOString(),
            resolvedBy: resolutions.get(record.id)?.by ?? null,
            resolvedVersion: resolutions.get(record.id)?.version ?? null,
          }
        : null,
  });
  for (const record of records) {
    expect(await models.transfer(tenantId, ledgerId, record.id), `transfer ${record.id}`).toEqual(viewOf(record));
  }
  expect(await models.transfer(tenantId, ledgerId, 'no-such-transfer')).toBeUndefined();
  for (const reference of ['ref-0', 'ref-1', 'ref-2', 'ref-3']) {
    const expected = records.filter((record) => record.reference === reference).sort((a, b) => a.ledgerVersion - b.ledgerVersion).map(viewOf);
    // Pages of 2: every transfer of the reference once, in ledger order, across the cursors.
    const byReference: TransferView[] = [];
    let afterReference: string | null = null;
    for (let pages = 0; pages < 1_000; pages += 1) {
      const page = await models.transfersByReference(tenantId, ledgerId, reference, { after: afterReference, limit: 2 });
      byReference.push(...page.transfers);
      if (page.next === null) break;
      afterReference = page.next;
    }
    expect(byReference, `transfers with ${reference}`).toEqual(expected);
  }
  const open = records
    .filter((record) => record.kind === 'hold' && record.resolution === 'pending')
    .sort((a, b) => (a.timeoutAtMs ?? Infinity) - (b.timeoutAtMs ?? Infinity) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map(viewOf);
  const listed: TransferView[] = [];
  let after: string | null = null;
  for (let pages = 0; pages < 1_000; pages += 1) {
    const page = await models.openHolds(tenantId, ledgerId, { after, limit: 2 });
    listed.push(...page.holds);
    if (page.next === null) break;
    after = page.next;
  }
  expect(listed, 'open holds in expiry order').toEqual(open);
}
