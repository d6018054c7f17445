/**
 * The bound on a ledger's state (`stateBytesMax`, rejection `ledger_full`): how its size is
 * counted (an upper bound of what a snapshot stores, exact for text), which commands it refuses
 * and which it never does, and a writer that keeps it across snapshots, replays and linked groups.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BALANCE_MINOR_MAX,
  CurrencyRegistry,
  HOLD_TIMEOUT_MS_MAX,
  ID_LENGTH_MAX,
  InMemoryEventStore,
  LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX,
  LedgerWriter,
  LimitExceededError,
  POSTINGS_MAX,
  REFERENCE_LENGTH_MAX,
  SNAPSHOT_STATE_BYTES_MAX,
  STATE_BYTES_MAX_DEFAULT,
  initialState,
  serializeState,
  type AccountState,
  type LedgerCommand,
  type LedgerEvent,
  type LedgerState,
  type Posting,
  type TransferRecord,
} from '@ledgerkit/ledger-core';
import { deciderSpec } from '@ledgerkit/ledger-core/testing';
import { accountBytes, holdBytes, jsonStringBytes, stateBytesOf } from '../src/domain/state-bytes.js';

const currencies = new CurrencyRegistry();
/** What a state counts it takes; every state made by initialState or evolve has it. */
const taken = (state: LedgerState): number => {
  expect(state.stateBytes, 'stateBytes is kept').toBeTypeOf('number');
  return state.stateBytes as number;
};
const T0 = Date.parse('2025-06-01T12:00:00.000Z');
const NO_LIMITS = { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false } as const;
const opened = (accountId: string, metadata: Record<string, string> = {}): LedgerEvent => ({ type: 'AccountOpened', accountId, currency: 'EUR', accountType: 'asset', flags: NO_LIMITS, metadata });
const open = (accountId: string, metadata: Record<string, string> = {}): LedgerCommand => ({ kind: 'openAccount', accountId, currency: 'EUR', type: 'asset', flags: NO_LIMITS, metadata });
const pair = (from: string, to: string, amount: bigint): Posting[] => [
  { accountId: from, side: 'debit', amount, currency: 'EUR' },
  { accountId: to, side: 'credit', amount, currency: 'EUR' },
];
const transfer = (transferId: string, from: string, to: string, amount: bigint, pending?: { timeoutMs: number | undefined }): LedgerCommand => ({
  kind: 'transfer',
  transferId,
  postings: pair(from, to, amount),
  pending,
  effectiveAtMs: undefined,
  reference: undefined,
  metadata: {},
});

describe('what a state counts', () => {
  it('a string as JSON: exactly its UTF-8 bytes with escapes and quotes, for any text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), fc.string({ unit: fc.constantFrom('"', '\\', '\n', '\u0000', '\u007f', 'é', '\ud800', '😀', 'a') })), (text) => {
        expect(jsonStringBytes(text)).toBe(Buffer.byteLength(JSON.stringify(text), 'utf8'));
      }),
      { numRuns: 500 },
    );
  });

  it('an account, its 16 remembered commands and a hold of 32 postings, every number at its largest, take no more than they are counted as', () => {
    const id = 'a'.repeat(ID_LENGTH_MAX);
    const versionMax = Number.MAX_SAFE_INTEGER;
    const msMax = Date.parse('9999-12-31T23:59:59.999Z');
    const account: AccountState = {
      id,
      currency: 'EUR',
      type: 'liability',
      normalSide: 'credit',
      flags: { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: true },
      metadata: {},
      openedAtVersion: versionMax,
      openedAtMs: msMax,
      status: 'frozen',
      debitsPosted: BALANCE_MINOR_MAX,
      creditsPosted: BALANCE_MINOR_MAX,
      debitsPending: BALANCE_MINOR_MAX,
      creditsPending: BALANCE_MINOR_MAX,
      recentLifecycleCommands: Array.from({ length: LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX }, (_, i) => ({
        commandId: `${i}`.padEnd(ID_LENGTH_MAX, 'c'),
        kind: 'unfreezeAccount' as const,
        ledgerVersion: versionMax,
        recordedAtMs: msMax,
      })),
    };
    const hold: TransferRecord = {
      id,
      kind: 'hold',
      postings: Array.from({ length: POSTINGS_MAX }, (_, i): Posting => ({ accountId: `${i}`.padEnd(ID_LENGTH_MAX, 'p'), side: 'credit', amount: BALANCE_MINOR_MAX, currency: 'EUR' })),
      pendingId: undefined,
      reversalOf: undefined,
      timeoutMs: HOLD_TIMEOUT_MS_MAX,
      timeoutAtMs: msMax + HOLD_TIMEOUT_MS_MAX,
      reference: 'r'.repeat(REFERENCE_LENGTH_MAX),
      metadata: {},
      ledgerVersion: versionMax,
      recordedAtMs: msMax,
      effectiveAtMs: msMax,
      resolution: 'pending',
      reversedBy: undefined,
    };
    const data = serializeState(initialState(), [account], [hold], currencies) as { accounts: unknown[]; holds: unknown[] };
    // Each row with the comma that separates it from the next.
    const accountTaken = Buffer.byteLength(JSON.stringify(data.accounts[0]), 'utf8') + 1;
    const holdTaken = Buffer.byteLength(JSON.stringify(data.holds[0]), 'utf8') + 1;
    expect(accountTaken).toBeLessThanOrEqual(stateBytesOf([account], []));
    expect(holdTaken).toBeLessThanOrEqual(holdBytes(hold));
    expect(stateBytesOf([account], [hold])).toBe(stateBytesOf([account], []) + holdBytes(hold));
    // Counted, not guessed: a much larger bound would refuse accounts a snapshot has room for.
    expect(stateBytesOf([account], [hold])).toBeLessThan(1.5 * (accountTaken + holdTaken));
  });
});

describe('decide under stateBytesMax', () => {
  const spec = deciderSpec({ nowMs: T0 });
  const history = [opened('bank'), opened('alice', { tier: 'gold' })];

  it('refuses, with ledger_full, an account that would take the state one byte past the bound, and takes it at exactly the bound', () => {
    const given = spec.given(history);
    const bytes = accountBytes('carol', 'EUR', { 'naïve "key"': 'välue\n' });
    const command = open('carol', { 'naïve "key"': 'välue\n' });
    const refused = given.when(command, { stateBytesMax: taken(given.state) + bytes - 1 }).thenRejects('ledger_full');
    expect(refused.message).toContain('stateBytesMax');
    given.when(command, { stateBytesMax: taken(given.state) + bytes }).then([opened('carol', { 'naïve "key"': 'välue\n' })]);
  });

  it('when full, a retried open is still answered as a duplicate, and transfers, lifecycle changes and resolutions still pass', () => {
    const given = spec.given([...history, { type: 'TransferPending', transferId: 'h1', postings: pair('bank', 'alice', 5n), timeoutMs: undefined, reference: undefined, metadata: {} }]);
    const full = { stateBytesMax: taken(given.state) };
    given.when(open('alice', { tier: 'gold' }), full).thenDuplicate();
    given.when(transfer('t1', 'bank', 'alice', 7n), full).then([{ type: 'TransferPosted', transferId: 't1', postings: pair('bank', 'alice', 7n), reference: undefined, reversalOf: undefined, metadata: {} }]);
    given.when({ kind: 'freezeAccount', accountId: 'alice', reason: undefined, commandId: 'f-1' }, full).then([{ type: 'AccountFrozen', accountId: 'alice', reason: undefined, commandId: 'f-1' }]);
    given.when({ kind: 'voidPending', transferId: 'v1', pendingId: 'h1', effectiveAtMs: undefined, metadata: {} }, full).then([{ type: 'PendingVoided', transferId: 'v1', pendingId: 'h1', metadata: {} }]);
    given.when(transfer('h2', 'bank', 'alice', 1n, { timeoutMs: 60_000 }), full).thenRejects('ledger_full');
  });

  it('a resolved hold gives its bytes back, so the hold refused before fits after', () => {
    const hold: LedgerEvent = { type: 'TransferPending', transferId: 'h1', postings: pair('bank', 'alice', 5n), timeoutMs: undefined, reference: undefined, metadata: {} };
    const withHold = spec.given([...history, hold]);
    const withoutHold = spec.given(history);
    expect(taken(withHold.state) - taken(withoutHold.state)).toBe(holdBytes({ transferId: 'h1', postings: pair('bank', 'alice', 5n), reference: undefined, metadata: {} }));
    const max = { stateBytesMax: taken(withHold.state) };
    withHold.when(transfer('h2', 'bank', 'alice', 5n, { timeoutMs: undefined }), max).thenRejects('ledger_full');
    const voided = spec.given([...history, hold, { type: 'PendingVoided', transferId: 'v1', pendingId: 'h1', metadata: {} }]);
    expect(taken(voided.state)).toBe(taken(withoutHold.state));
    voided.when(transfer('h2', 'bank', 'alice', 5n, { timeoutMs: undefined }), max).then([{ type: 'TransferPending', transferId: 'h2', postings: pair('bank', 'alice', 5n), timeoutMs: undefined, reference: undefined, metadata: {} }]);
  });

  it('a linked group whose holds do not all fit is refused whole', () => {
    const given = spec.given(history);
    const held = (transferId: string): number => holdBytes({ transferId, postings: pair('bank', 'alice', 1n), reference: undefined, metadata: {} });
    const group = { kind: 'linked', commands: [transfer('h1', 'bank', 'alice', 1n, { timeoutMs: undefined }), transfer('h2', 'bank', 'alice', 1n, { timeoutMs: undefined })] } as LedgerCommand;
    const refused = given.when(group, { stateBytesMax: taken(given.state) + held('h1') + held('h2') - 1 }).thenRejects('ledger_full');
    expect(refused.members?.map((m) => (m.ok ? 'ok' : m.code))).toEqual(['linked_group_failed', 'ledger_full']);
    const accepted = given.when(group, { stateBytesMax: taken(given.state) + held('h1') + held('h2') });
    expect(accepted.decision.ok).toBe(true);
  });
});

describe('a writer under stateBytesMax', () => {
  it('takes the bound from its options: 96 MiB unless given, never past what one snapshot holds', async () => {
    const store = new InMemoryEventStore();
    expect(STATE_BYTES_MAX_DEFAULT).toBe(96 * 2 ** 20);
    await expect(LedgerWriter.open({ store, tenantId: 't', ledgerId: 'l', stateBytesMax: SNAPSHOT_STATE_BYTES_MAX + 1 })).rejects.toThrow(LimitExceededError);
    await expect(LedgerWriter.open({ store, tenantId: 't', ledgerId: 'l', stateBytesMax: -1 })).rejects.toThrow(LimitExceededError);
    await expect(LedgerWriter.open({ store, tenantId: 't', ledgerId: 'l', stateBytesMax: 1.5 })).rejects.toThrow(LimitExceededError);
  });

  it('refuses accounts past the bound with ledger_full, counts the same after reopening from a snapshot or from the log, and the bound holds across reopening', async () => {
    const store = new InMemoryEventStore();
    const options = { store, tenantId: 'acme', ledgerId: 'main', clock: () => T0, snapshotEveryEvents: 0 };
    const stateBytesMax = 10 * accountBytes('acct-00', 'EUR', { owner: 'x' });
    const writer = await LedgerWriter.open({ ...options, stateBytesMax });
    const results = await Promise.all(Array.from({ length: 14 }, (_, i) => writer.submit(open(`acct-${String(i).padStart(2, '0')}`, { owner: 'x' }))));
    expect(results.map((r) => (r.ok ? 'ok' : r.code))).toEqual([...Array<string>(10).fill('ok'), ...Array<string>(4).fill('ledger_full')]);
    expect(writer.stateBytes).toBe(stateBytesMax);
    expect(writer.accounts()).toHaveLength(10);
    await writer.saveSnapshot();
    const counted = writer.stateBytes;
    await writer.close();

    const fromSnapshot = await LedgerWriter.open({ ...options, stateBytesMax });
    expect(fromSnapshot.stateBytes).toBe(counted);
    expect(await fromSnapshot.submit(open('acct-99'))).toMatchObject({ ok: false, code: 'ledger_full' });
    await fromSnapshot.close();

    await store.saveSnapshot({ tenantId: 'acme', ledgerId: 'main', ledgerVersion: 1, hash: 'not the chain', schemaVersion: 2, state: {} });
    const fromLog = await LedgerWriter.open({ ...options, stateBytesMax: stateBytesMax + accountBytes('acct-99', 'EUR', {}) });
    expect(fromLog.stateBytes).toBe(counted);
    expect(await fromLog.submit(open('acct-99'))).toMatchObject({ ok: true });
    expect(fromLog.stateBytes).toBe(counted + accountBytes('acct-99', 'EUR', {}));
    await fromLog.close();
  });
});
