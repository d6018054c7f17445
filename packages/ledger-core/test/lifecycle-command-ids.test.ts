/**
 * Command ids of freeze, unfreeze and close: a lifecycle command that carries one is recorded with
 * it, and its retry (the same id, the same kind) is answered as a duplicate of the original, for
 * as long as the account remembers the id (its last LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX); the
 * same id with another kind is rejected; a command without one is decided as it always was. The
 * ids survive the event codec, snapshots and a writer's restart.
 */
import { describe, expect, it, test } from 'vitest';
import {
  CurrencyRegistry,
  EventCodec,
  GENESIS_HASH,
  InMemoryEventStore,
  InvalidInputError,
  LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX,
  Ledger,
  LedgerWriter,
  REJECTION_CODES,
  SNAPSHOT_SCHEMA_VERSION,
  decide,
  evolve,
  initialState,
  overlayState,
  parseCommand,
  restoreState,
  serializeState,
  type AccountOpened,
  type AccountState,
  type CloseAccountCommand,
  type EventStore,
  type FreezeAccountCommand,
  type JsonObject,
  type LedgerCommand,
  type LedgerEvent,
  type LedgerState,
  type ReadStreamRequest,
  type StoredEvent,
  type UnfreezeAccountCommand,
} from '@ledgerkit/ledger-core';
import { deciderSpec, type GivenEvent } from '@ledgerkit/ledger-core/testing';
import { snapshotDigest, type SnapshotContent } from '../src/domain/snapshot-codec.js';

const HOUR = 3_600_000;
const NOW = Date.parse('2025-03-01T12:00:00.000Z');
const GIVEN_AT = NOW - 24 * HOUR;
const spec = deciderSpec({ nowMs: NOW, givenAtMs: GIVEN_AT });
const currencies = new CurrencyRegistry();

const opened = (accountId: string): AccountOpened => ({
  type: 'AccountOpened',
  accountId,
  currency: 'EUR',
  accountType: 'liability',
  flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false },
  metadata: {},
});
const freeze = (accountId: string, commandId?: string, reason?: string): FreezeAccountCommand => ({
  kind: 'freezeAccount',
  accountId,
  reason,
  ...(commandId === undefined ? {} : { commandId }),
});
const unfreeze = (accountId: string, commandId?: string): UnfreezeAccountCommand => ({ kind: 'unfreezeAccount', accountId, ...(commandId === undefined ? {} : { commandId }) });
const close = (accountId: string, commandId?: string): CloseAccountCommand => ({ kind: 'closeAccount', accountId, ...(commandId === undefined ? {} : { commandId }) });
/** An event of the given history at a time of its own. */
const at = (event: LedgerEvent, recordedAtMs: number): GivenEvent => ({ event, meta: { recordedAtMs, effectiveAtMs: recordedAtMs } });

/** Folds events with evolve as the writer does: versions 1, 2, ... at the given times. */
function fold(events: readonly (readonly [LedgerEvent, number])[]): LedgerState {
  const state = initialState();
  for (const [event, recordedAtMs] of events) evolve(state, event, { ledgerVersion: state.version + 1, recordedAtMs, effectiveAtMs: recordedAtMs });
  return state;
}

function account(state: LedgerState, accountId: string): AccountState {
  const found = state.accounts.get(accountId);
  if (found === undefined) throw new Error(`no account ${accountId}`);
  return found;
}

/** Decides and, when accepted with events, folds them at `nowMs`, as a writer would. */
function apply(state: LedgerState, command: LedgerCommand, nowMs: number) {
  const decision = decide(command, state, { nowMs, backdateWindowMs: 0 });
  if (decision.ok) for (const draft of decision.events) evolve(state, draft.event, { ledgerVersion: state.version + 1, recordedAtMs: nowMs, effectiveAtMs: draft.effectiveAtMs });
  return decision;
}

// ---- decide and evolve --------------------------------------------------------------------------

describe('decide: lifecycle commands with a command id', () => {
  test('an accepted lifecycle command records its id in its event, and the account remembers it with its kind, version and time', () => {
    const frozen = spec.given([opened('alice')]).when(freeze('alice', 'cmd-1', 'kyc')).then([{ type: 'AccountFrozen', accountId: 'alice', reason: 'kyc', commandId: 'cmd-1' }]);
    expect(account(frozen.stateAfter, 'alice').recentLifecycleCommands).toEqual([{ commandId: 'cmd-1', kind: 'freezeAccount', ledgerVersion: 2, recordedAtMs: NOW }]);
    spec.given([opened('alice'), { type: 'AccountFrozen', accountId: 'alice', reason: undefined }]).when(unfreeze('alice', 'cmd-2')).then([{ type: 'AccountUnfrozen', accountId: 'alice', commandId: 'cmd-2' }]);
    spec.given([opened('alice')]).when(close('alice', 'cmd-3')).then([{ type: 'AccountClosed', accountId: 'alice', commandId: 'cmd-3' }]);
  });

  test('a retry (same id, same kind) is a duplicate naming the original version and time, with no events, whatever the status is now', () => {
    const history: GivenEvent[] = [
      at(opened('alice'), NOW - 5 * HOUR),
      at({ type: 'AccountFrozen', accountId: 'alice', reason: undefined, commandId: 'f-1' }, NOW - 4 * HOUR),
    ];
    spec.given(history).when(freeze('alice', 'f-1')).thenDuplicate({ ledgerVersion: 2, recordedAtMs: NOW - 4 * HOUR });
    // Its reason is not compared: the original stands.
    spec.given(history).when(freeze('alice', 'f-1', 'another reason')).thenDuplicate({ ledgerVersion: 2 });
    // Unfrozen and closed since: still the retry of that freeze, not account_closed.
    const closedSince: GivenEvent[] = [
      ...history,
      at({ type: 'AccountUnfrozen', accountId: 'alice', commandId: 'u-1' }, NOW - 3 * HOUR),
      at({ type: 'AccountClosed', accountId: 'alice', commandId: 'c-1' }, NOW - 2 * HOUR),
    ];
    spec.given(closedSince).when(freeze('alice', 'f-1')).thenDuplicate({ ledgerVersion: 2, recordedAtMs: NOW - 4 * HOUR });
    spec.given(closedSince).when(unfreeze('alice', 'u-1')).thenDuplicate({ ledgerVersion: 3, recordedAtMs: NOW - 3 * HOUR });
    spec.given(closedSince).when(close('alice', 'c-1')).thenDuplicate({ ledgerVersion: 4, recordedAtMs: NOW - 2 * HOUR });
  });

  test('an id from before an intervening change is remembered: freeze X, unfreeze Y, retry freeze X is a duplicate of the freeze', () => {
    const state = initialState();
    expect(apply(state, { kind: 'openAccount', accountId: 'bob', currency: 'EUR', type: 'asset', flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false }, metadata: {} }, NOW).ok).toBe(true);
    expect(apply(state, freeze('bob', 'X'), NOW + 1)).toMatchObject({ ok: true, duplicateOf: undefined });
    expect(apply(state, unfreeze('bob', 'Y'), NOW + 2)).toMatchObject({ ok: true, duplicateOf: undefined });
    expect(apply(state, freeze('bob', 'X'), NOW + 3)).toEqual({ ok: true, events: [], duplicateOf: { ledgerVersion: 2, recordedAtMs: NOW + 1 }, members: undefined });
    expect(apply(state, unfreeze('bob', 'Y'), NOW + 4)).toEqual({ ok: true, events: [], duplicateOf: { ledgerVersion: 3, recordedAtMs: NOW + 2 }, members: undefined });
    expect(state.version).toBe(3);
    expect(account(state, 'bob').status).toBe('open');
  });

  test('the same id with another kind is rejected exists_with_different_kind, before the status checks', () => {
    const history: GivenEvent[] = [opened('alice'), { type: 'AccountFrozen', accountId: 'alice', reason: undefined, commandId: 'X' }];
    const closing = spec.given(history).when(close('alice', 'X')).thenRejects('exists_with_different_kind');
    expect(closing.message).toMatch(/command id X was already used for freezeAccount of account alice/);
    // An unfreeze with X would otherwise be accepted (the account is frozen): the id decides first.
    spec.given(history).when(unfreeze('alice', 'X')).thenRejects('exists_with_different_kind');
    expect(REJECTION_CODES.exists_with_different_kind).toMatch(/different kind of command/);
  });

  test('without a command id each command is decided as before: refused on the status it would set, recorded without an id', () => {
    const frozen: GivenEvent[] = [opened('alice'), { type: 'AccountFrozen', accountId: 'alice', reason: undefined, commandId: 'X' }];
    spec.given(frozen).when(freeze('alice')).thenRejects('account_frozen');
    spec.given([opened('alice')]).when(unfreeze('alice')).thenRejects('account_not_frozen');
    spec.given([opened('alice'), { type: 'AccountClosed', accountId: 'alice' }]).when(close('alice')).thenRejects('account_closed');
    // A new id is a new command, decided by the status too.
    spec.given(frozen).when(freeze('alice', 'Z')).thenRejects('account_frozen');
    spec.given([opened('alice'), { type: 'AccountClosed', accountId: 'alice' }]).when(close('alice', 'Z')).thenRejects('account_closed');
    spec.given([opened('nobody-else')]).when(freeze('alice', 'X')).thenRejects('account_not_found');
    // The event of a command without an id has no commandId field at all, and the account remembers nothing.
    const decided = spec.given([opened('alice')]).when(freeze('alice'));
    const outcome = decided.then([{ type: 'AccountFrozen', accountId: 'alice', reason: undefined }]);
    expect(Object.keys(outcome.decision.events[0]?.event ?? {})).not.toContain('commandId');
    expect(account(outcome.stateAfter, 'alice').recentLifecycleCommands).toBeUndefined();
  });

  test('ids are scoped to their account: the id of a change of one account names nothing on another', () => {
    spec.given([opened('alice'), opened('bob'), { type: 'AccountFrozen', accountId: 'alice', reason: undefined, commandId: 'X' }])
      .when(freeze('bob', 'X'))
      .then([{ type: 'AccountFrozen', accountId: 'bob', reason: undefined, commandId: 'X' }]);
  });

  test(`the account remembers its last ${LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX} ids, oldest first: the next change forgets the oldest, whose retry then meets the status checks`, () => {
    expect(LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX).toBe(16);
    const events: [LedgerEvent, number][] = [[opened('alice'), NOW]];
    // c1 freeze, c2 unfreeze, ..., c17 freeze: the account ends frozen, after 17 changes with ids.
    for (let n = 1; n <= LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX + 1; n += 1) {
      const event: LedgerEvent = n % 2 === 1 ? { type: 'AccountFrozen', accountId: 'alice', reason: undefined, commandId: `c${n}` } : { type: 'AccountUnfrozen', accountId: 'alice', commandId: `c${n}` };
      events.push([event, NOW + n]);
    }
    const beforeLast = fold(events.slice(0, -1));
    expect(account(beforeLast, 'alice').recentLifecycleCommands?.map((r) => r.commandId)).toEqual(Array.from({ length: 16 }, (_, i) => `c${i + 1}`));
    const state = fold(events);
    const remembered = account(state, 'alice').recentLifecycleCommands ?? [];
    expect(remembered).toHaveLength(LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX);
    expect(remembered.map((r) => r.commandId)).toEqual(Array.from({ length: 16 }, (_, i) => `c${i + 2}`));
    expect(remembered[0]).toEqual({ commandId: 'c2', kind: 'unfreezeAccount', ledgerVersion: 3, recordedAtMs: NOW + 2 });
    expect(remembered[15]).toEqual({ commandId: 'c17', kind: 'freezeAccount', ledgerVersion: 18, recordedAtMs: NOW + 17 });
    // The 16 before the 17th change had c1; the 17th pushed it out.
    const context = { nowMs: NOW + 100, backdateWindowMs: 0 };
    expect(decide(freeze('alice', 'c1'), beforeLast, context)).toMatchObject({ ok: true, events: [], duplicateOf: { ledgerVersion: 2, recordedAtMs: NOW + 1 } });
    expect(decide(unfreeze('alice', 'c1'), beforeLast, context)).toMatchObject({ ok: false, code: 'exists_with_different_kind' });
    expect(decide(freeze('alice', 'c1'), state, context)).toMatchObject({ ok: false, code: 'account_frozen' });
    // Forgotten: c1 is a new command now, and an unfreeze of the frozen account is accepted.
    expect(decide(unfreeze('alice', 'c1'), state, context)).toMatchObject({ ok: true, duplicateOf: undefined, events: [{ event: { type: 'AccountUnfrozen', commandId: 'c1' } }] });
    expect(decide(unfreeze('alice', 'c2'), state, context)).toMatchObject({ ok: true, events: [], duplicateOf: { ledgerVersion: 3, recordedAtMs: NOW + 2 } });
    expect(decide(freeze('alice', 'c17'), state, context)).toMatchObject({ ok: true, events: [], duplicateOf: { ledgerVersion: 18 } });
  });

  test('changes without an id take no place in the list, and an id used again after it was forgotten names its latest use', () => {
    const events: [LedgerEvent, number][] = [
      [opened('alice'), NOW],
      [{ type: 'AccountFrozen', accountId: 'alice', reason: undefined, commandId: 'X' }, NOW + 1],
    ];
    for (let n = 0; n < 40; n += 1) events.push([n % 2 === 0 ? { type: 'AccountUnfrozen', accountId: 'alice' } : { type: 'AccountFrozen', accountId: 'alice', reason: undefined }, NOW + 2 + n]);
    const state = fold(events);
    expect(account(state, 'alice').recentLifecycleCommands).toEqual([{ commandId: 'X', kind: 'freezeAccount', ledgerVersion: 2, recordedAtMs: NOW + 1 }]);
    // A list that (as only a hand-made log could give) names X twice: the newer use answers.
    const twice = fold([...events, [{ type: 'AccountUnfrozen', accountId: 'alice', commandId: 'X' }, NOW + 50]]);
    expect(decide(unfreeze('alice', 'X'), twice, { nowMs: NOW + 60, backdateWindowMs: 0 })).toMatchObject({ ok: true, duplicateOf: { ledgerVersion: 43 } });
  });

  test('evolve replaces the list rather than changing it: an overlay and a copy of the account never see a later change', () => {
    const state = fold([
      [opened('alice'), NOW],
      [{ type: 'AccountFrozen', accountId: 'alice', reason: undefined, commandId: 'X' }, NOW + 1],
    ]);
    const before = account(state, 'alice').recentLifecycleCommands;
    const copy = { ...account(state, 'alice') };
    const overlay = overlayState(state);
    evolve(overlay, { type: 'AccountUnfrozen', accountId: 'alice', commandId: 'Y' }, { ledgerVersion: 3, recordedAtMs: NOW + 2, effectiveAtMs: NOW + 2 });
    expect(overlay.accounts.get('alice')?.recentLifecycleCommands?.map((r) => r.commandId)).toEqual(['X', 'Y']);
    expect(account(state, 'alice').recentLifecycleCommands).toBe(before);
    expect(before?.map((r) => r.commandId)).toEqual(['X']);
    expect(copy.recentLifecycleCommands?.map((r) => r.commandId)).toEqual(['X']);
    // Deciding a retry over the overlay sees the overlay's change.
    expect(decide(unfreeze('alice', 'Y'), overlay, { nowMs: NOW + 3, backdateWindowMs: 0 })).toMatchObject({ ok: true, duplicateOf: { ledgerVersion: 3 } });
    expect(decide(unfreeze('alice', 'Y'), state, { nowMs: NOW + 3, backdateWindowMs: 0 })).toMatchObject({ ok: true, duplicateOf: undefined });
  });
});

// ---- input -------------------------------------------------------------------------------------

describe('parseCommand and the writer admission check', () => {
  test('commandId is optional and follows the id rules of a transfer id', () => {
    expect(parseCommand.freezeAccount({ accountId: 'a', commandId: 'key:0f' })).toEqual({ kind: 'freezeAccount', accountId: 'a', reason: undefined, commandId: 'key:0f' });
    expect(parseCommand.unfreezeAccount({ accountId: 'a', commandId: 'u.1' })).toEqual({ kind: 'unfreezeAccount', accountId: 'a', commandId: 'u.1' });
    expect(parseCommand.closeAccount({ accountId: 'a', commandId: 'c_1' })).toEqual({ kind: 'closeAccount', accountId: 'a', commandId: 'c_1' });
    // Without one, no commandId key at all: the command is what it was before command ids.
    expect(Object.keys(parseCommand.freezeAccount({ accountId: 'a' }))).toEqual(['kind', 'accountId', 'reason']);
    expect(Object.keys(parseCommand.closeAccount({ accountId: 'a' }))).toEqual(['kind', 'accountId']);
    expect(parseCommand.closeAccount({ accountId: 'a', commandId: 'x'.repeat(128) }).commandId).toHaveLength(128);
    for (const bad of ['', 'has space', '-leading', 'x'.repeat(129), 'é', 42, null]) {
      for (const parse of [parseCommand.freezeAccount, parseCommand.unfreezeAccount, parseCommand.closeAccount]) {
        let error: unknown;
        try {
          parse({ accountId: 'a', commandId: bad });
        } catch (caught) {
          error = caught;
        }
        expect(error, JSON.stringify(bad)).toBeInstanceOf(InvalidInputError);
        expect((error as InvalidInputError).issues[0]?.path).toEqual(['commandId']);
      }
    }
  });

  test('a hand-built lifecycle command with a bad commandId is refused by the writer with InvalidInputError at commandId, and nothing is written', async () => {
    const store = new InMemoryEventStore();
    const writer = await LedgerWriter.open({ store, tenantId: 't', ledgerId: 'l', currencies });
    try {
      expect((await writer.submit(parseCommand.openAccount({ accountId: 'a', currency: 'EUR', type: 'asset' }, currencies))).ok).toBe(true);
      for (const command of [freeze('a', 'bad id'), unfreeze('a', 'x'.repeat(129)), { ...close('a'), commandId: 7 } as unknown as LedgerCommand]) {
        const refused = writer.submit(command);
        await expect(refused).rejects.toBeInstanceOf(InvalidInputError);
        expect(((await refused.catch((e: unknown) => e)) as InvalidInputError).issues[0]?.path).toEqual(['commandId']);
      }
      expect(writer.version).toBe(1);
      expect(await writer.submit(freeze('a', 'good-id'))).toMatchObject({ ok: true, duplicate: false, ledgerVersion: 2 });
    } finally {
      await writer.close();
    }
  });
});

// ---- codec -------------------------------------------------------------------------------------

describe('the event codec', () => {
  const codec = new EventCodec({ currencies });
  const recordedAtMs = Date.parse('2025-03-01T12:00:00.000Z');
  const envelope = (ledgerVersion: number) => ({ eventId: `e${ledgerVersion}`, tenantId: 't', ledgerId: 'l', ledgerVersion, recordedAtMs, correlationId: null, causationId: null, metadata: {}, previousHash: GENESIS_HASH });
  const encode = (event: LedgerEvent, ledgerVersion: number) => codec.encode({ event, effectiveAtMs: recordedAtMs }, envelope(ledgerVersion));
  /** A stored event as a store returns it: plain data, not the codec's own object. */
  const plain = (stored: StoredEvent): StoredEvent => JSON.parse(JSON.stringify(stored)) as StoredEvent;

  test('an event without a command id encodes to the same data and hash as before command ids existed', () => {
    // Hashes computed with the release before command ids, for these very events and envelopes.
    const golden: [LedgerEvent, number, JsonObject, string][] = [
      [{ type: 'AccountFrozen', accountId: 'alice', reason: undefined }, 1, { accountId: 'alice' }, '2b9664a2b94512c0bf7c28d5c9a2d7fa82eb2aa1f4d27439e9a33043396615fa'],
      [{ type: 'AccountFrozen', accountId: 'alice', reason: 'kyc' }, 2, { accountId: 'alice', reason: 'kyc' }, 'b2808358405a588178e3190b4fb06e3ae8d83c1d951872502095b8c4b8e34ac5'],
      [{ type: 'AccountUnfrozen', accountId: 'alice' }, 3, { accountId: 'alice' }, '968aefbd5850d67ef451eac7e297ae7ebddeeda2c53d87957d08d7341722d7b9'],
      [{ type: 'AccountClosed', accountId: 'alice' }, 4, { accountId: 'alice' }, '47aff1d12a71df87f6297bdb4e87eed88d3e58a69d756c06706892e0a1dfeff5'],
    ];
    for (const [event, version, data, hash] of golden) {
      const stored = encode(event, version);
      expect(stored.data).toEqual(data);
      expect(Object.keys(stored.data)).not.toContain('commandId');
      expect(stored.schemaVersion).toBe(1);
      expect(stored.hash).toBe(hash);
      // Stored before command ids: it still decodes (without one) and verifies.
      const decoded = codec.decode(plain(stored)).event;
      expect(decoded).toEqual(event);
      expect(Object.keys(decoded)).not.toContain('commandId');
      expect(() => codec.verify(plain(stored))).not.toThrow();
    }
  });

  test('an event with a command id stores it, decodes back to it and verifies; a malformed one is a CorruptEventError', () => {
    for (const event of [
      { type: 'AccountFrozen', accountId: 'alice', reason: 'kyc', commandId: 'key:ab' },
      { type: 'AccountUnfrozen', accountId: 'alice', commandId: 'u-1' },
      { type: 'AccountClosed', accountId: 'alice', commandId: 'c-1' },
    ] as const satisfies readonly LedgerEvent[]) {
      const stored = plain(encode(event, 1));
      expect(stored.data['commandId']).toBe(event.commandId);
      expect(codec.decode(stored).event).toEqual(event);
      expect(() => codec.verify(stored)).not.toThrow();
      expect(() => codec.decode({ ...stored, data: { ...stored.data, commandId: 'not an id' } })).toThrow(/commandId/);
    }
  });
});

// ---- snapshots ---------------------------------------------------------------------------------

describe('snapshots', () => {
  const state = fold([
    [opened('alice'), NOW],
    [opened('bob'), NOW],
    [{ type: 'AccountFrozen', accountId: 'alice', reason: undefined, commandId: 'X' }, NOW + 1],
    [{ type: 'AccountUnfrozen', accountId: 'alice', commandId: 'Y' }, NOW + 2],
    [{ type: 'AccountFrozen', accountId: 'bob', reason: undefined }, NOW + 3],
  ]);
  const serialize = (s: LedgerState): JsonObject => JSON.parse(JSON.stringify(serializeState(s, (s.accounts as Map<string, AccountState>).values(), [], new CurrencyRegistry()))) as JsonObject;
  /** Data written by hand, or changed, with the digest serializeState would give it. */
  const sealed = (data: JsonObject): JsonObject => {
    const { digest: _, ...content } = data;
    return { ...content, digest: snapshotDigest(content as unknown as SnapshotContent, '') };
  };

  test('the remembered ids survive a round trip; an account without any is written as before, without the field', () => {
    expect(SNAPSHOT_SCHEMA_VERSION).toBe(3);
    const data = serialize(state);
    const rows = data['accounts'] as Record<string, unknown>[];
    expect(rows.find((row) => row['id'] === 'alice')?.['lifecycleCommands']).toEqual([
      ['X', 'freezeAccount', 3, NOW + 1],
      ['Y', 'unfreezeAccount', 4, NOW + 2],
    ]);
    expect(Object.keys(rows.find((row) => row['id'] === 'bob') ?? {})).not.toContain('lifecycleCommands');
    const restored = restoreState(data, new CurrencyRegistry()) as LedgerState;
    expect(restored).toBeDefined();
    expect(account(restored, 'alice').recentLifecycleCommands).toEqual(account(state, 'alice').recentLifecycleCommands);
    expect(account(restored, 'bob').recentLifecycleCommands).toBeUndefined();
    expect(serialize(restored)).toEqual(data);
    // The restored state answers the retries the folded one does.
    const context = { nowMs: NOW + 10, backdateWindowMs: 0 };
    expect(decide(freeze('alice', 'X'), restored, context)).toEqual(decide(freeze('alice', 'X'), state, context));
    expect(decide(freeze('alice', 'X'), restored, context)).toMatchObject({ ok: true, duplicateOf: { ledgerVersion: 3, recordedAtMs: NOW + 1 } });
  });

  test('a snapshot without command ids (no field anywhere, as before them) loads, as accounts that remember none', () => {
    const old = {
      version: 2,
      lastRecordedAtMs: NOW,
      scales: { EUR: 2 },
      accounts: [
        {
          id: 'alice',
          currency: 'EUR',
          type: 'liability',
          normalSide: 'credit',
          flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false },
          metadata: {},
          openedAtVersion: 1,
          openedAtMs: NOW,
          status: 'frozen',
          balances: ['0', '0', '0', '0'],
        },
      ],
      holds: [],
    };
    const restored = restoreState(sealed(old), new CurrencyRegistry()) as LedgerState;
    expect(restored).toBeDefined();
    expect(account(restored, 'alice')).toMatchObject({ status: 'frozen', recentLifecycleCommands: undefined });
    expect(decide(freeze('alice', 'X'), restored, { nowMs: NOW, backdateWindowMs: 0 })).toMatchObject({ ok: false, code: 'account_frozen' });
    expect(serialize(restored)).toEqual(sealed(old));
  });

  test('a malformed list makes the snapshot unusable (undefined), so the writer replays the log instead', () => {
    const data = serialize(state);
    const withRows = (lifecycleCommands: unknown): JsonObject => sealed({ ...data, accounts: (data['accounts'] as Record<string, unknown>[]).map((row) => (row['id'] === 'alice' ? { ...row, lifecycleCommands } : row)) } as JsonObject);
    expect(restoreState(withRows([['X', 'openAccount', 3, NOW]]), new CurrencyRegistry())).toBeUndefined();
    expect(restoreState(withRows([]), new CurrencyRegistry()), 'an empty list is never written').toBeUndefined();
    expect(restoreState(withRows(Array.from({ length: LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX + 1 }, (_, i) => [`c${i}`, 'freezeAccount', i + 1, NOW])), new CurrencyRegistry())).toBeUndefined();
    // Versions after alice's opening (1) and up to the state's (5), as restoreState checks them.
    expect(restoreState(withRows(Array.from({ length: LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX }, (_, i) => [`c${i}`, 'freezeAccount', 2 + (i % 4), NOW])), new CurrencyRegistry())).toBeDefined();
  });
});

// ---- through the writer ------------------------------------------------------------------------

/** A store that records the lowest version a stream read started at (to tell a snapshot load from a replay). */
class ReadWatchingStore {
  lowestReadFrom = Number.POSITIVE_INFINITY;
  constructor(readonly inner: InMemoryEventStore) {}
  asStore(): EventStore {
    return new Proxy(this.inner, {
      get: (target, property, receiver) => {
        if (property === 'readStream') {
          return (request: ReadStreamRequest) => {
            this.lowestReadFrom = Math.min(this.lowestReadFrom, request.fromVersion ?? 1);
            return target.readStream(request);
          };
        }
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }
}

describe('through the writer', () => {
  const where = { tenantId: 'acme', ledgerId: 'eur' };

  it('a retried freeze answers duplicate with the original version and time, and writes nothing; after a reopen (state rebuilt from the events) too', async () => {
    const store = new InMemoryEventStore();
    let now = NOW;
    const ledger = await Ledger.open({ store, ...where, clock: () => (now += 1_000), snapshotEveryEvents: 0 });
    expect((await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability' })).ok).toBe(true);
    const first = await ledger.freezeAccount({ accountId: 'alice', reason: 'kyc', commandId: 'req-1' });
    expect(first).toMatchObject({ ok: true, duplicate: false, ledgerVersion: 2 });
    const retry = await ledger.freezeAccount({ accountId: 'alice', reason: 'kyc', commandId: 'req-1' });
    expect(retry).toEqual({ ...first, duplicate: true });
    expect(await ledger.freezeAccount({ accountId: 'alice', commandId: 'req-2' })).toMatchObject({ ok: false, code: 'account_frozen' });
    expect(await ledger.freezeAccount({ accountId: 'alice' })).toMatchObject({ ok: false, code: 'account_frozen' });
    expect(await ledger.closeAccount({ accountId: 'alice', commandId: 'req-1' })).toMatchObject({ ok: false, code: 'exists_with_different_kind' });
    await ledger.close();

    const reopened = await Ledger.open({ store, ...where, clock: () => (now += 1_000), snapshotEveryEvents: 0 });
    expect(await reopened.freezeAccount({ accountId: 'alice', reason: 'kyc', commandId: 'req-1' })).toEqual({ ...first, duplicate: true });
    await reopened.close();
    const events = await store.readStream({ ...where, direction: 'forward', fromVersion: 1, limit: 100 });
    expect(events.map((event) => event.type)).toEqual(['AccountOpened', 'AccountFrozen']);
    expect(events[1]?.data).toEqual({ accountId: 'alice', reason: 'kyc', commandId: 'req-1' });
  });

  it('a retry in the same batch as its original is its duplicate; a writer reopened from a snapshot answers retries of ids from before it, and of the tail after it', async () => {
    const inner = new InMemoryEventStore();
    let now = NOW;
    const first = await LedgerWriter.open({ store: inner, ...where, clock: () => (now += 1_000), snapshotEveryEvents: 0, batchWaitMs: 5 });
    expect((await first.submit(parseCommand.openAccount({ accountId: 'bob', currency: 'EUR', type: 'asset' }, currencies))).ok).toBe(true);
    // Queued together: decided in one batch, the second over the first's overlay.
    const [frozen, again] = await Promise.all([first.submit(freeze('bob', 'X')), first.submit(freeze('bob', 'X'))]);
    expect(frozen).toMatchObject({ ok: true, duplicate: false, ledgerVersion: 2 });
    expect(again).toEqual({ ...frozen, duplicate: true });
    const unfrozen = await first.submit(unfreeze('bob', 'Y'));
    expect(unfrozen).toMatchObject({ ok: true, duplicate: false, ledgerVersion: 3 });
    await first.saveSnapshot();
    const closed = await first.submit(close('bob', 'Z'));
    expect(closed).toMatchObject({ ok: true, duplicate: false, ledgerVersion: 4 });
    await first.close();
    const snapshot = await inner.loadSnapshot(where);
    expect(snapshot?.ledgerVersion).toBe(3);
    expect((snapshot?.state['accounts'] as Record<string, unknown>[])[0]?.['lifecycleCommands']).toEqual([
      ['X', 'freezeAccount', 2, Date.parse(frozen.ok ? frozen.recordedAt : '')],
      ['Y', 'unfreezeAccount', 3, Date.parse(unfrozen.ok ? unfrozen.recordedAt : '')],
    ]);

    const watching = new ReadWatchingStore(inner);
    const reopened = await LedgerWriter.open({ store: watching.asStore(), ...where, clock: () => (now += 1_000), snapshotEveryEvents: 0 });
    try {
      // It read from the snapshot's version on, not the whole log.
      expect(watching.lowestReadFrom).toBe(3);
      expect(reopened.account('bob')?.recentLifecycleCommands?.map((r) => r.commandId)).toEqual(['X', 'Y', 'Z']);
      expect(await reopened.submit(freeze('bob', 'X'))).toEqual({ ...frozen, duplicate: true });
      expect(await reopened.submit(unfreeze('bob', 'Y'))).toEqual({ ...unfrozen, duplicate: true });
      expect(await reopened.submit(close('bob', 'Z'))).toEqual({ ...closed, duplicate: true });
      expect(await reopened.submit(freeze('bob', 'Y'))).toMatchObject({ ok: false, code: 'exists_with_different_kind' });
      expect(await reopened.submit(freeze('bob', 'W'))).toMatchObject({ ok: false, code: 'account_closed' });
      expect(reopened.version).toBe(4);
    } finally {
      await reopened.close();
    }
  });
});
