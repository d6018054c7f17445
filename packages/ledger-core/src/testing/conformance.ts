import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LedgerEvent, Posting } from '../domain/types.js';
import { LimitExceededError, type LedgerErrorCode } from '../errors.js';
import { canonicalJson, hashEvent } from '../events/canonical.js';
import { dataJsonOf, EventCodec, indexKeysOf } from '../events/codec.js';
import { GENESIS_HASH, type GlobalEvent, type JsonObject, type JsonValue, type StoredEvent } from '../events/stored-event.js';
import { verifyChain } from '../events/verify-chain.js';
import { SNAPSHOT_STATE_BYTES_MAX } from '../store/snapshot-content.js';
import { CurrencyRegistry } from '../money/currency.js';
import { APPEND_DATA_CHARS_MAX, APPEND_EVENTS_MAX, INDEX_KEYS_MAX, READ_LIMIT_MAX, type EventStore, type Snapshot } from '../store/event-store.js';

/** A store instance handed to the conformance suite, and how to release it after a test. */
export interface EventStoreUnderTest {
  readonly store: EventStore;
  /** Called after each test, also when it failed: close pools, stop containers, ... */
  readonly cleanup?: () => Promise<void>;
}

/** Options of {@link describeEventStoreConformance}. */
export interface EventStoreConformanceOptions {
  /**
   * How many appends race for one expected version in the concurrency tests, and how many
   * ledgers append side by side while a reader polls the global log: 2 ..{@link CONFORMANCE_CONCURRENCY_MAX}.
   * Default 8. Keep it within the store's connection pool size if appends hold a connection.
   */
  readonly concurrency?: number;
  /**
   * Prefix of the tenant and ledger ids the suite generates, so its rows are easy to find (and
   * delete) in a shared database. Letters, digits and `-`, at most 32 characters. Default `conformance`.
   */
  readonly idPrefix?: string;
  /** Timeout of each test in milliseconds; default: the timeout configured for vitest. */
  readonly testTimeoutMs?: number;
  /**
   * How long after an append resolves its events may take to show in `readAll`, in milliseconds:
   * 0 ..{@link CONFORMANCE_GLOBAL_LOG_LAG_MS_MAX}. Default 0: the suite expects a read of the
   * global log to return every event of every append that has resolved. With more, whenever the
   * suite reads the log for events it has appended, it keeps reading (resuming from the last
   * position it got, which the port promises never skips an event) for up to this long before it
   * counts an event missing. Either give the store a setting that waits for them
   * (`PostgresEventStore`: `horizonWaitMs`), or set this.
   */
  readonly globalLogLagMs?: number;
}

/** Largest {@link EventStoreConformanceOptions.concurrency}. */
export const CONFORMANCE_CONCURRENCY_MAX = 64;
/** Largest {@link EventStoreConformanceOptions.globalLogLagMs}. */
export const CONFORMANCE_GLOBAL_LOG_LAG_MS_MAX = 60_000;

const CONCURRENCY_DEFAULT = 8;
const ID_PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,31}$/;
/** The suite's events are recorded one second apart from this instant on. */
const BASE_TIME_MS = Date.UTC(2025, 0, 1);
/** Largest snapshot `schemaVersion` every store must keep: PostgreSQL's `integer`, 2,147,483,647. */
const SNAPSHOT_SCHEMA_VERSION_STORABLE_MAX = 2 ** 31 - 1;
/** Upper bound on readAll polls in the concurrent-reader test, so a broken store fails instead of hanging. */
const POLLS_MAX = 100_000;
/** Upper bound on pages one full read takes; the suite never writes nearly this many events to one tenant. */
const READ_PAGES_MAX = 1_000;
/** Appends each ledger makes in the concurrent-reader test. */
const APPENDS_PER_LEDGER = 6;
/** Longest pause between two reads of a global log that lags behind the appends. */
const LAG_POLL_MS_MAX = 20;

const codec = new EventCodec({ currencies: new CurrencyRegistry() });
// Keys deliberately out of order and a non-ASCII value: a store must keep content, not spelling.
const ENVELOPE_METADATA: Readonly<Record<string, string>> = { zone: 'eu-west', channel: 'conformance', actor: 'Zoë ✓' };

/**
 * Registers a vitest suite that checks an {@link EventStore} against every documented rule of
 * the port: fenced, atomic appends; version-numbering, tenant, ledger, chain and index-key checks,
 * and their order (a malformed batch is `InvalidInputError` whatever the stream holds); empty
 * appends; stream and global reads, and the refusal of a position the store did not hand out;
 * index lookups; snapshots; tenant and ledger isolation; races between writers; faithful round
 * trips; and read limits. Call it at the top level of a test file:
 *
 * ```ts
 * import { describeEventStoreConformance } from '@ledgerkit/ledger-core/testing';
 * describeEventStoreConformance('PostgresEventStore', async () => {
 *   const pool = new Pool({ connectionString: process.env.DATABASE_URL });
 *   return { store: await PostgresEventStore.open({ pool, horizonWaitMs: 10_000 }), cleanup: () => pool.end() };
 * });
 * ```
 *
 * `factory` runs before each test. Every test writes under fresh, randomly named tenants and
 * ledgers, so the factory may return a store over a shared, non-empty database.
 *
 * The suite reads the global log right after its appends and expects their events in it: give
 * the store a setting that makes `readAll` wait for them (`PostgresEventStore`: `horizonWaitMs`,
 * as above), or tell the suite how long they may take with
 * {@link EventStoreConformanceOptions.globalLogLagMs}.
 */
export function describeEventStoreConformance(
  name: string,
  factory: () => Promise<EventStoreUnderTest>,
  options: EventStoreConformanceOptions = {},
): void {
  const concurrency = options.concurrency ?? CONCURRENCY_DEFAULT;
  if (!Number.isInteger(concurrency) || concurrency < 2 || concurrency > CONFORMANCE_CONCURRENCY_MAX) {
    throw new LimitExceededError(`concurrency must be an integer in 2..${CONFORMANCE_CONCURRENCY_MAX}, got ${concurrency}`);
  }
  const idPrefix = options.idPrefix ?? 'conformance';
  if (!ID_PREFIX_PATTERN.test(idPrefix)) throw new LimitExceededError(`idPrefix must match ${ID_PREFIX_PATTERN}`);
  const timeout = options.testTimeoutMs;
  const lagMs = options.globalLogLagMs ?? 0;
  if (!Number.isInteger(lagMs) || lagMs < 0 || lagMs > CONFORMANCE_GLOBAL_LOG_LAG_MS_MAX) {
    throw new LimitExceededError(`globalLogLagMs must be an integer in 0..${CONFORMANCE_GLOBAL_LOG_LAG_MS_MAX}, got ${lagMs}`);
  }

  describe(`EventStore conformance: ${name}`, () => {
    let underTest: EventStoreUnderTest | undefined;
    let store: EventStore;
    let tenantId: string;
    let otherTenantId: string;
    let ledgerId: string;
    let otherLedgerId: string;

    beforeEach(async () => {
      underTest = await factory();
      store = underTest.store;
      const run = randomUUID().slice(0, 13);
      tenantId = `${idPrefix}-t-${run}-a`;
      otherTenantId = `${idPrefix}-t-${run}-b`;
      ledgerId = `${idPrefix}-l-${run}-a`;
      otherLedgerId = `${idPrefix}-l-${run}-b`;
    });

    afterEach(async () => {
      const cleanup = underTest?.cleanup;
      underTest = undefined;
      if (cleanup !== undefined) await cleanup();
    });

    const streamOf = (tenant: string, ledger: string): TestStream => new TestStream(store, tenant, ledger);
    /** The tenant's global log after `after`, read until it holds at least `count` events or the store's lag is waited out. */
    const logOf = (tenant: string, count: number, read: { readonly limit?: number; readonly after?: string | null } = {}): Promise<GlobalEvent[]> =>
      readWholeLog(store, tenant, read.limit ?? READ_LIMIT_MAX, read.after ?? null, { count, lagMs });

    describe('append', () => {
      it('appending to a new stream with expectedVersion 0 stores the events and resolves with the new version', async () => {
        const stream = streamOf(tenantId, ledgerId);
        const batch = stream.next([accountOpened('cash'), accountOpened('revenue'), transferPosted(uid('t'))]);
        const result = await store.append({ tenantId, ledgerId, expectedVersion: 0, events: batch });
        expect(result.ledgerVersion).toBe(3);
        expect(await readWholeStream(store, tenantId, ledgerId)).toEqual(batch);
      }, timeout);

      it('appending with expectedVersion equal to the current version continues the stream', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const batch = stream.next([transferPosted(uid('t')), transferPosted(uid('t'))]);
        const result = await store.append({ tenantId, ledgerId, expectedVersion: 1, events: batch });
        expect(result.ledgerVersion).toBe(3);
        expect((await readWholeStream(store, tenantId, ledgerId)).map((event) => event.ledgerVersion)).toEqual([1, 2, 3]);
      }, timeout);

      it('appending with a stale expectedVersion throws VersionConflictError and writes nothing', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), transferPosted(uid('t'))]);
        const stale = encodeChain({ tenantId, ledgerId, version: 1, hash: stream.events[0]!.hash }, [transferPosted(uid('t'))]);
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 1, events: stale }), 'version_conflict', { expectedVersion: 1 });
        await stream.expectUnchanged(stale);
      }, timeout);

      it('appending with expectedVersion 0 to an existing stream throws VersionConflictError and writes nothing', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const fresh = encodeChain({ tenantId, ledgerId, version: 0, hash: GENESIS_HASH }, [accountOpened('bank')]);
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 0, events: fresh }), 'version_conflict', { expectedVersion: 0 });
        await stream.expectUnchanged(fresh);
      }, timeout);

      it('appending with an expectedVersion ahead of the stream throws VersionConflictError and writes nothing', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const ahead = encodeChain({ tenantId, ledgerId, version: 5, hash: stream.head.hash }, [transferPosted(uid('t'))]);
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 5, events: ahead }), 'version_conflict', { expectedVersion: 5 });
        await stream.expectUnchanged(ahead);
      }, timeout);

      it('a batch whose first event is not numbered expectedVersion + 1 is refused with InvalidInputError at events.0.ledgerVersion and nothing is written', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const skipping = encodeChain({ tenantId, ledgerId, version: 2, hash: stream.head.hash }, [transferPosted(uid('t')), transferPosted(uid('t'))]);
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 1, events: skipping }), 'invalid_input', issueAt(['events', 0, 'ledgerVersion']));
        await stream.expectUnchanged(skipping);
      }, timeout);

      it('a batch with a gap in its version numbering is refused with InvalidInputError at the event after the gap and none of its events is written', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const [first, , third] = stream.next([transferPosted(uid('t')), transferPosted(uid('t')), transferPosted(uid('t'))]);
        const gapped = [first!, third!];
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 1, events: gapped }), 'invalid_input', issueAt(['events', 1, 'ledgerVersion']));
        await stream.expectUnchanged(gapped);
      }, timeout);

      it('a batch with the same version twice is refused with InvalidInputError at the second and none of its events is written', async () => {
        const stream = streamOf(tenantId, ledgerId);
        const [first] = stream.next([accountOpened('cash')]);
        const twin = encodeChain(stream.head, [accountOpened('bank')])[0]!;
        const doubled = [first!, twin];
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 0, events: doubled }), 'invalid_input', issueAt(['events', 1, 'ledgerVersion']));
        await stream.expectUnchanged(doubled);
      }, timeout);

      it('a batch containing an event of another tenant is refused with InvalidInputError at its tenantId and none of its events is written', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const [first] = stream.next([transferPosted(uid('t'))]);
        const foreign = encodeChain({ tenantId: otherTenantId, ledgerId, version: 2, hash: first!.hash }, [transferPosted(uid('t'))])[0]!;
        const mixed = [first!, foreign];
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 1, events: mixed }), 'invalid_input', issueAt(['events', 1, 'tenantId']));
        await stream.expectUnchanged(mixed);
        await streamOf(otherTenantId, ledgerId).expectUnchanged(mixed);
      }, timeout);

      it('a batch containing an event of another ledger is refused with InvalidInputError at its ledgerId and none of its events is written', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const [first] = stream.next([transferPosted(uid('t'))]);
        const foreign = encodeChain({ tenantId, ledgerId: otherLedgerId, version: 2, hash: first!.hash }, [transferPosted(uid('t'))])[0]!;
        const mixed = [first!, foreign];
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 1, events: mixed }), 'invalid_input', issueAt(['events', 1, 'ledgerId']));
        await stream.expectUnchanged(mixed);
        await streamOf(tenantId, otherLedgerId).expectUnchanged(mixed);
      }, timeout);

      it('a batch whose events do not chain (an event’s previousHash is not the hash of the event before it) is refused with InvalidInputError at events.<n>.previousHash and nothing is written', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const batch = stream.next([transferPosted(uid('t')), transferPosted(uid('t')), transferPosted(uid('t'))]);
        const [first, second] = batch as [StoredEvent, StoredEvent, StoredEvent];
        // Each event is the codec's own, numbered right, with a hash that holds: only a link is broken.
        const linkedTo = (version: number, hash: string): StoredEvent => encodeChain({ tenantId, ledgerId, version, hash }, [transferPosted(uid('t'))])[0]!;
        const broken: readonly [string, StoredEvent[], number][] = [
          ['second event decided after the stream head, not after the first', [first, linkedTo(2, stream.head.hash)], 1],
          ['third event skipping the second', [first, second, linkedTo(3, first.hash)], 2],
          ['second event starting a new chain', [first, linkedTo(2, GENESIS_HASH)], 1],
        ];
        for (const [fault, events, offset] of broken) {
          await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 1, events }), 'invalid_input', issueAt(['events', offset, 'previousHash'])).catch((error: unknown) => {
            throw new Error(`${fault}: ${String(error)}`);
          });
          await stream.expectUnchanged(events);
        }
        await stream.appendEncoded(batch);
      }, timeout);

      it('a malformed batch is refused with InvalidInputError whatever the stream holds: a stale or early expectedVersion, or a key the ledger holds, does not change the answer', async () => {
        const stream = streamOf(tenantId, ledgerId);
        const takenId = uid('t');
        await stream.append([accountOpened('cash'), transferPosted(takenId)]);
        // Batches decided at a stale version, at one the stream has not reached, and at its head;
        // the first event of each claims a key the ledger holds.
        for (const at of [{ version: 1, hash: stream.events[0]!.hash }, { version: 5, hash: stream.head.hash }, { version: 2, hash: stream.head.hash }]) {
          const head: StreamHead = { tenantId, ledgerId, ...at };
          const [first, second, third] = encodeChain(head, [transferPosted(takenId), transferPosted(uid('t')), transferPosted(uid('t'))]) as [StoredEvent, StoredEvent, StoredEvent];
          const after = (variant: Partial<StreamHead>, below: StoredEvent): StoredEvent =>
            encodeChain({ ...head, version: below.ledgerVersion, hash: below.hash, ...variant }, [transferPosted(uid('t'))])[0]!;
          const malformed: readonly [string, StoredEvent[], readonly (string | number)[]][] = [
            ['an event of another tenant', [first, after({ tenantId: otherTenantId }, first)], ['events', 1, 'tenantId']],
            ['an event of another ledger', [first, after({ ledgerId: otherLedgerId }, first)], ['events', 1, 'ledgerId']],
            ['a gap in the numbering', [first, third], ['events', 1, 'ledgerVersion']],
            ['a broken chain', [first, second, after({ version: second.ledgerVersion }, first)], ['events', 2, 'previousHash']],
          ];
          for (const [fault, events, path] of malformed) {
            await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: head.version, events }), 'invalid_input', issueAt(path)).catch((error: unknown) => {
              throw new Error(`${fault}, decided at version ${head.version} of 2: ${String(error)}`);
            });
            await stream.expectUnchanged(events);
          }
        }
      }, timeout);

      it('an expectedVersion that is not a non-negative integer is refused with InvalidInputError, not a retriable VersionConflictError, with or without events', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const events = stream.next([transferPosted(uid('t'))]);
        for (const expectedVersion of [-1, 0.5, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '1' as unknown as number]) {
          for (const batch of [[], events]) {
            await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion, events: batch }), 'invalid_input', issueAt(['expectedVersion'])).catch((error: unknown) => {
              throw new Error(`expectedVersion ${JSON.stringify(expectedVersion)} with ${batch.length} events: ${String(error)}`);
            });
          }
        }
        await stream.expectUnchanged(events);
      }, timeout);

      it('an empty append at the stream’s version resolves with that version and changes nothing: no event, no global position, the version not moved', async () => {
        const stream = streamOf(tenantId, ledgerId);
        expect(await store.append({ tenantId, ledgerId, expectedVersion: 0, events: [] })).toEqual({ ledgerVersion: 0 });
        await stream.expectUnchanged([]);
        expect(await store.readAll({ tenantId, after: null, limit: 10 })).toEqual([]);
        await stream.append([accountOpened('cash'), transferPosted(uid('t'))]);
        const seen = await logOf(tenantId, 2);
        expect(await store.append({ tenantId, ledgerId, expectedVersion: 2, events: [] })).toEqual({ ledgerVersion: 2 });
        await stream.expectUnchanged([]);
        const last = seen[seen.length - 1]!.position;
        expect(await store.readAll({ tenantId, after: last, limit: 10 })).toEqual([]);
        // The stream is still at version 2, and the global log goes on from the same place.
        const [next] = await stream.append([transferPosted(uid('t'))]);
        expect((await logOf(tenantId, 1, { after: last })).map((entry) => entry.event)).toEqual([next]);
      }, timeout);

      it('an empty append at any other version throws VersionConflictError', async () => {
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 1, events: [] }), 'version_conflict', { expectedVersion: 1 });
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), accountOpened('revenue')]);
        for (const expectedVersion of [0, 1, 3]) {
          await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion, events: [] }), 'version_conflict', { expectedVersion });
        }
        await stream.expectUnchanged([]);
      }, timeout);

      it('a batch claiming one index key twice throws DuplicateIndexKeyError and writes nothing', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const transferId = uid('t');
        const batch = stream.next([transferPosted(uid('t')), transferPosted(transferId), transferPosted(transferId)]);
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 1, events: batch }), 'duplicate_index_key', { key: `transfer:${transferId}` });
        await stream.expectUnchanged(batch);
      }, timeout);

      for (const kind of ['transfer', 'resolution', 'reversal'] as const) {
        it(`a batch claiming a ${kind}: key an earlier event holds throws DuplicateIndexKeyError and writes nothing`, async () => {
          const stream = streamOf(tenantId, ledgerId);
          const pendingId = uid('hold');
          const originalId = uid('t');
          await stream.append([transferPending(pendingId), transferPosted(originalId)]);
          const claimant = uid('t');
          const claims = {
            transfer: { event: transferPosted(originalId), key: `transfer:${originalId}` },
            resolution: { event: pendingVoided(uid('t'), pendingId), key: `resolution:${pendingId}` },
            reversal: { event: transferPosted(uid('t'), { reversalOf: originalId }), key: `reversal:${originalId}` },
          }[kind];
          await stream.append([
            kind === 'resolution' ? pendingPosted(claimant, pendingId) : transferPosted(claimant, kind === 'reversal' ? { reversalOf: originalId } : {}),
          ]);
          const batch = stream.next([transferPosted(uid('t')), claims.event]);
          await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: stream.head.version, events: batch }), 'duplicate_index_key', { key: claims.key });
          await stream.expectUnchanged(batch);
          const found = await store.findByIndexKeys({ tenantId, ledgerId, keys: [claims.key] });
          const holder = claims.key.startsWith('transfer:') ? stream.events[1] : stream.events[2];
          expect(found.get(claims.key)).toEqual(holder);
        }, timeout);
      }

      it('index keys are unique per ledger: another ledger or tenant may claim the same key', async () => {
        const transferId = uid('t');
        const streams = [streamOf(tenantId, ledgerId), streamOf(tenantId, otherLedgerId), streamOf(otherTenantId, ledgerId)];
        for (const stream of streams) await stream.append([transferPosted(transferId)]);
        for (const stream of streams) {
          const found = await store.findByIndexKeys({ tenantId: stream.tenantId, ledgerId: stream.ledgerId, keys: [`transfer:${transferId}`] });
          expect(found.get(`transfer:${transferId}`)).toEqual(stream.events[0]);
        }
      }, timeout);

      it('a batch whose first event does not follow the hash of the event at expectedVersion throws VersionConflictError and writes nothing', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), accountOpened('revenue')]);
        // Right version, wrong event below: decided after version 1's event, not version 2's.
        const forked = encodeChain({ tenantId, ledgerId, version: 2, hash: stream.events[0]!.hash }, [transferPosted(uid('t'))]);
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 2, events: forked }), 'version_conflict', { expectedVersion: 2 });
        await stream.expectUnchanged(forked);
        await stream.append([transferPosted(uid('t'))]);
        expect(await readWholeStream(store, tenantId, ledgerId)).toEqual(stream.events);
      }, timeout);

      it('a new stream must start from the genesis hash', async () => {
        const stream = streamOf(tenantId, ledgerId);
        const orphan = encodeChain({ tenantId, ledgerId, version: 0, hash: 'f'.repeat(64) }, [accountOpened('cash')]);
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 0, events: orphan }), 'version_conflict', { expectedVersion: 0 });
        await stream.expectUnchanged(orphan);
      }, timeout);

      it('recorded times never decrease along a stream: an event recorded before the one it follows, in the batch or in the stream, is refused (InvalidInputError at its recordedAt, nothing written); the same instant is taken', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), accountOpened('revenue')]);
        const lastMs = Date.parse((stream.events[1] as StoredEvent).recordedAt);
        // Inside the batch: the second event a millisecond before the first.
        const backInBatch = encodeChain(stream.head, [transferPosted(uid('t')), transferPosted(uid('t'))], (v) => (v === 3 ? lastMs + 5_000 : lastMs + 4_999));
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 2, events: backInBatch }), 'invalid_input', { issues: [{ path: ['events', 1, 'recordedAt'] }] });
        await stream.expectUnchanged(backInBatch);
        // Against the stream: the first event a millisecond before the stream's last.
        const backInStream = encodeChain(stream.head, [transferPosted(uid('t'))], () => lastMs - 1);
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 2, events: backInStream }), 'invalid_input', { issues: [{ path: ['events', 0, 'recordedAt'] }] });
        await stream.expectUnchanged(backInStream);
        // A stale expectedVersion is a conflict first, whatever the times.
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 1, events: encodeChain({ ...stream.head, version: 1, hash: (stream.events[0] as StoredEvent).hash }, [transferPosted(uid('t'))], () => lastMs - 10_000) }), 'version_conflict');
        // The same instant as the event before, in the stream and in the batch, is taken.
        await stream.appendEncoded(encodeChain(stream.head, [transferPosted(uid('t')), transferPosted(uid('t'))], () => lastMs));
      }, timeout);

      it('an event EventCodec.encode did not build is checked as its readers would check it: one they could not read is refused (InvalidInputError at its offset, nothing written), a faithful copy is stored', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const [first, second] = stream.next([transferPosted(uid('t')), transferPosted(uid('t'))]).map(plainCopy) as [StoredEvent, StoredEvent];
        // Each changed copy is hashed again, so that only the named fault is left for the store to find.
        const rehashed = (change: Record<string, unknown>): StoredEvent => {
          const { hash: _hash, ...unhashed } = { ...plainCopy(second), ...change } as StoredEvent;
          return { ...unhashed, hash: hashEvent(unhashed) };
        };
        const { transferId: _transferId, ...withoutTransferId } = second.data;
        const unreadable: readonly [string, unknown][] = [
          ['data off its schema', rehashed({ data: withoutTransferId })],
          ['an unknown type', rehashed({ type: 'MoneyPrinted' })],
          ['an amount finer than its currency', rehashed({ data: { ...second.data, postings: [{ accountId: 'cash', side: 'debit', amount: '10.505', currency: 'EUR' }, { accountId: 'revenue', side: 'credit', amount: '10.505', currency: 'EUR' }] } })],
          ['effectiveAt after recordedAt', rehashed({ effectiveAt: new Date(Date.parse(second.recordedAt) + 1).toISOString() })],
          ['envelope metadata holding NUL', rehashed({ metadata: { note: 'a\u0000b' } })],
          ['a data metadata key holding NUL', rehashed({ data: { ...second.data, metadata: { 'a\u0000b': 'note' } } })],
          ['a reference holding an unpaired surrogate', rehashed({ data: { ...second.data, reference: 'ref-\ud800' } })],
          ['a hash that is not its content’s', { ...second, hash: 'a'.repeat(64) }],
          ['not an object', null],
        ];
        for (const [fault, event] of unreadable) {
          const events = [first, event as StoredEvent];
          await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 1, events }), 'invalid_input', { issues: [{ path: ['events', 1] }] }).catch((error: unknown) => {
            throw new Error(`an event with ${fault}: ${String(error)}`);
          });
          await stream.expectUnchanged([first]);
        }
        await stream.appendEncoded([first, second]);
      }, timeout);

      it('after a rejected append the stream accepts a correct append at the unchanged version', async () => {
        const stream = streamOf(tenantId, ledgerId);
        const transferId = uid('t');
        await stream.append([transferPosted(transferId)]);
        const duplicate = stream.next([accountOpened('cash'), transferPosted(transferId)]);
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 1, events: duplicate }), 'duplicate_index_key');
        const stale = encodeChain({ tenantId, ledgerId, version: 0, hash: GENESIS_HASH }, [accountOpened('cash')]);
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 0, events: stale }), 'version_conflict');
        await stream.append([accountOpened('cash'), transferPosted(uid('t'))]);
        expect(await readWholeStream(store, tenantId, ledgerId)).toEqual(stream.events);
      }, timeout);
    });

    describe('readStream', () => {
      const fiveEvents = async (): Promise<StoredEvent[]> => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), accountOpened('revenue')]);
        await stream.append([transferPosted(uid('t')), transferPosted(uid('t')), transferPosted(uid('t'))]);
        return stream.events;
      };

      it('forward reads ascend from version 1 by default', async () => {
        const events = await fiveEvents();
        expect(await store.readStream({ tenantId, ledgerId, direction: 'forward', limit: 10 })).toEqual(events);
      }, timeout);

      it('forward reads start at fromVersion and return at most limit events', async () => {
        const events = await fiveEvents();
        expect(await store.readStream({ tenantId, ledgerId, direction: 'forward', fromVersion: 2, limit: 2 })).toEqual(events.slice(1, 3));
        expect(await store.readStream({ tenantId, ledgerId, direction: 'forward', fromVersion: 4, limit: 10 })).toEqual(events.slice(3));
        expect(await store.readStream({ tenantId, ledgerId, direction: 'forward', fromVersion: 5, limit: 1 })).toEqual(events.slice(4));
      }, timeout);

      it('backward reads descend from the last version by default', async () => {
        const events = await fiveEvents();
        expect(await store.readStream({ tenantId, ledgerId, direction: 'backward', limit: 2 })).toEqual([events[4], events[3]]);
        expect(await store.readStream({ tenantId, ledgerId, direction: 'backward', limit: 10 })).toEqual([...events].reverse());
      }, timeout);

      it('backward reads start at fromVersion and return at most limit events', async () => {
        const events = await fiveEvents();
        expect(await store.readStream({ tenantId, ledgerId, direction: 'backward', fromVersion: 4, limit: 2 })).toEqual([events[3], events[2]]);
        expect(await store.readStream({ tenantId, ledgerId, direction: 'backward', fromVersion: 2, limit: 10 })).toEqual([events[1], events[0]]);
        expect(await store.readStream({ tenantId, ledgerId, direction: 'backward', fromVersion: 1, limit: 1 })).toEqual([events[0]]);
      }, timeout);

      it('reading forward past the end returns an empty array', async () => {
        await fiveEvents();
        expect(await store.readStream({ tenantId, ledgerId, direction: 'forward', fromVersion: 6, limit: 10 })).toEqual([]);
        expect(await store.readStream({ tenantId, ledgerId, direction: 'forward', fromVersion: 1_000, limit: 10 })).toEqual([]);
      }, timeout);

      it('reading a stream that was never written returns an empty array in both directions', async () => {
        expect(await store.readStream({ tenantId, ledgerId, direction: 'forward', limit: 10 })).toEqual([]);
        expect(await store.readStream({ tenantId, ledgerId, direction: 'backward', limit: 10 })).toEqual([]);
        expect(await store.readStream({ tenantId, ledgerId, direction: 'forward', fromVersion: 3, limit: 10 })).toEqual([]);
      }, timeout);

      it('readStream never returns another ledger’s or another tenant’s events', async () => {
        const mine = streamOf(tenantId, ledgerId);
        const sibling = streamOf(tenantId, otherLedgerId);
        const foreign = streamOf(otherTenantId, ledgerId);
        await sibling.append([accountOpened('cash'), transferPosted(uid('t'))]);
        await foreign.append([accountOpened('cash'), transferPosted(uid('t')), transferPosted(uid('t'))]);
        await mine.append([accountOpened('cash')]);
        for (const stream of [mine, sibling, foreign]) {
          expect(await readWholeStream(store, stream.tenantId, stream.ledgerId)).toEqual(stream.events);
          expect(await store.readStream({ tenantId: stream.tenantId, ledgerId: stream.ledgerId, direction: 'backward', limit: 10 })).toEqual([...stream.events].reverse());
        }
      }, timeout);
    });

    describe('readAll', () => {
      it('reading from the beginning returns every event of every ledger of the tenant exactly once, in each stream’s version order', async () => {
        const first = streamOf(tenantId, ledgerId);
        const second = streamOf(tenantId, otherLedgerId);
        await first.append([accountOpened('cash'), transferPosted(uid('t'))]);
        await second.append([accountOpened('cash')]);
        await first.append([transferPosted(uid('t'))]);
        await second.append([transferPosted(uid('t')), transferPosted(uid('t'))]);
        const read = await logOf(tenantId, eventCount([first, second]));
        expectExactlyOnceInStreamOrder(read, [first, second]);
      }, timeout);

      it('paging with a small limit neither skips nor repeats an event', async () => {
        const first = streamOf(tenantId, ledgerId);
        const second = streamOf(tenantId, otherLedgerId);
        await first.append([accountOpened('cash'), transferPosted(uid('t')), transferPosted(uid('t'))]);
        await second.append([accountOpened('cash'), transferPosted(uid('t'))]);
        await first.append([transferPosted(uid('t'))]);
        const paged = await logOf(tenantId, eventCount([first, second]), { limit: 2 });
        expectExactlyOnceInStreamOrder(paged, [first, second]);
        expect(await store.readAll({ tenantId, after: null, limit: 2 })).toEqual(paged.slice(0, 2));
      }, timeout);

      it('resuming after the last position seen returns only events appended later', async () => {
        const first = streamOf(tenantId, ledgerId);
        const second = streamOf(tenantId, otherLedgerId);
        await first.append([accountOpened('cash'), transferPosted(uid('t'))]);
        await second.append([accountOpened('cash')]);
        const seen = await logOf(tenantId, 3);
        expect(seen).toHaveLength(3);
        const last = seen[seen.length - 1]!.position;
        expect(await store.readAll({ tenantId, after: last, limit: 10 })).toEqual([]);
        const later = [...(await second.append([transferPosted(uid('t'))])), ...(await first.append([transferPosted(uid('t')), transferPosted(uid('t'))]))];
        const resumed = await logOf(tenantId, later.length, { after: last });
        expect(resumed.map((entry) => entry.event)).toEqual(later);
        const positions = new Set([...seen, ...resumed].map((entry) => entry.position));
        expect(positions.size).toBe(seen.length + resumed.length);
      }, timeout);

      it('readAll refuses an after that is not one of the store’s positions with InvalidInputError at after', async () => {
        await streamOf(tenantId, ledgerId).append([accountOpened('cash')]);
        const [entry] = await logOf(tenantId, 1);
        const position = entry!.position;
        // No store hands these out: a position is a non-empty string without NUL (see the port).
        for (const after of ['', 'not a position', `${position}\u0000`, `\u0000${position}`, 42 as unknown as string]) {
          for (const tenant of [tenantId, otherTenantId]) {
            await expectLedgerError(store.readAll({ tenantId: tenant, after, limit: 10 }), 'invalid_input', issueAt(['after'])).catch((error: unknown) => {
              throw new Error(`after ${JSON.stringify(after)}: ${String(error)}`);
            });
          }
        }
        expect(await store.readAll({ tenantId, after: position, limit: 10 })).toEqual([]);
      }, timeout);

      it('readAll of a tenant without events returns an empty array', async () => {
        await streamOf(otherTenantId, ledgerId).append([accountOpened('cash')]);
        expect(await store.readAll({ tenantId, after: null, limit: 10 })).toEqual([]);
      }, timeout);

      it('readAll never returns another tenant’s events', async () => {
        const mine = streamOf(tenantId, ledgerId);
        const foreign = streamOf(otherTenantId, ledgerId);
        const foreignSibling = streamOf(otherTenantId, otherLedgerId);
        await foreign.append([accountOpened('cash'), transferPosted(uid('t'))]);
        await mine.append([accountOpened('cash')]);
        await foreignSibling.append([accountOpened('cash')]);
        await mine.append([transferPosted(uid('t'))]);
        await foreign.append([transferPosted(uid('t'))]);
        const read = await logOf(tenantId, eventCount([mine]));
        expect(read.every((entry) => entry.event.tenantId === tenantId)).toBe(true);
        expectExactlyOnceInStreamOrder(read, [mine]);
        expectExactlyOnceInStreamOrder(await logOf(otherTenantId, eventCount([foreign, foreignSibling]), { limit: 1 }), [foreign, foreignSibling]);
      }, timeout);

      it('a reader polling readAll while several ledgers append concurrently sees every event exactly once', async () => {
        const streams = Array.from({ length: concurrency }, (_, index) => streamOf(tenantId, `${ledgerId}-${index}`));
        const appended = concurrency * APPENDS_PER_LEDGER * 2;
        let writersDoneAtMs: number | undefined;
        const writers = Promise.all(
          streams.map(async (stream) => {
            for (let round = 0; round < APPENDS_PER_LEDGER; round += 1) await stream.append([transferPosted(uid('t')), transferPosted(uid('t'))]);
          }),
        ).finally(() => {
          writersDoneAtMs = Date.now();
        });
        const seen: GlobalEvent[] = [];
        let after: string | null = null;
        let polls = 0;
        // Keep polling after the writers finish until one read comes back empty: the final drain
        // (for a store whose log lags, once every event is in or the lag is waited out).
        for (;;) {
          polls += 1;
          expect(polls, 'readAll polls before the log was drained').toBeLessThanOrEqual(POLLS_MAX);
          const doneAtMs = writersDoneAtMs;
          const page = await store.readAll({ tenantId, after, limit: 5 });
          seen.push(...page);
          if (page.length > 0) after = page[page.length - 1]!.position;
          else if (doneAtMs !== undefined && (seen.length >= appended || Date.now() >= doneAtMs + lagMs)) break;
          else await sleep(1);
        }
        await writers;
        expectExactlyOnceInStreamOrder(seen, streams);
      }, timeout);
    });

    describe('findByIndexKeys', () => {
      it('returns the event that claimed each transfer:, resolution: and reversal: key', async () => {
        const stream = streamOf(tenantId, ledgerId);
        const [pendingId, postId, originalId, reversalId] = [uid('hold'), uid('t'), uid('t'), uid('t')];
        await stream.append([accountOpened('cash'), transferPending(pendingId), transferPosted(originalId)]);
        await stream.append([pendingPosted(postId, pendingId), transferPosted(reversalId, { reversalOf: originalId })]);
        const [, pending, original, post, reversal] = stream.events;
        const found = await store.findByIndexKeys({
          tenantId,
          ledgerId,
          keys: [`transfer:${pendingId}`, `transfer:${originalId}`, `transfer:${postId}`, `resolution:${pendingId}`, `transfer:${reversalId}`, `reversal:${originalId}`],
        });
        expect(found).toEqual(
          new Map([
            [`transfer:${pendingId}`, pending],
            [`transfer:${originalId}`, original],
            [`transfer:${postId}`, post],
            [`resolution:${pendingId}`, post],
            [`transfer:${reversalId}`, reversal],
            [`reversal:${originalId}`, reversal],
          ]),
        );
      }, timeout);

      it('omits keys that no event claimed', async () => {
        const stream = streamOf(tenantId, ledgerId);
        const transferId = uid('t');
        await stream.append([transferPosted(transferId)]);
        const found = await store.findByIndexKeys({
          tenantId,
          ledgerId,
          keys: [`transfer:${uid('missing')}`, `transfer:${transferId}`, `resolution:${transferId}`, `reversal:${transferId}`],
        });
        expect([...found.keys()]).toEqual([`transfer:${transferId}`]);
        expect(found.get(`transfer:${transferId}`)).toEqual(stream.events[0]);
        expect((await store.findByIndexKeys({ tenantId, ledgerId, keys: [] })).size).toBe(0);
        expect((await store.findByIndexKeys({ tenantId, ledgerId: otherLedgerId, keys: [`transfer:${transferId}`] })).size).toBe(0);
      }, timeout);

      it('never returns another ledger’s or another tenant’s events', async () => {
        const siblingOnly = uid('t');
        const foreignOnly = uid('t');
        const shared = uid('t');
        const mine = streamOf(tenantId, ledgerId);
        await mine.append([transferPosted(shared)]);
        await streamOf(tenantId, otherLedgerId).append([transferPosted(siblingOnly), transferPosted(shared)]);
        await streamOf(otherTenantId, ledgerId).append([transferPosted(foreignOnly), transferPosted(shared)]);
        const found = await store.findByIndexKeys({
          tenantId,
          ledgerId,
          keys: [`transfer:${siblingOnly}`, `transfer:${foreignOnly}`, `transfer:${shared}`],
        });
        expect(found).toEqual(new Map([[`transfer:${shared}`, mine.events[0]]]));
      }, timeout);
    });

    describe('snapshots', () => {
      const snapshotAt = (stream: TestStream, ledgerVersion: number, state: JsonObject): Snapshot => ({
        tenantId: stream.tenantId,
        ledgerId: stream.ledgerId,
        ledgerVersion,
        hash: stream.events[ledgerVersion - 1]!.hash,
        schemaVersion: 1,
        state,
      });

      it('loadSnapshot returns what saveSnapshot stored', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), transferPosted(uid('t'))]);
        const snapshot = snapshotAt(stream, 2, sampleState(2));
        await store.saveSnapshot(snapshot);
        const loaded = await store.loadSnapshot({ tenantId, ledgerId });
        expect(loaded).toEqual(snapshot);
        expect(canonicalJson(loaded?.state ?? null)).toBe(canonicalJson(snapshot.state));
      }, timeout);

      it('saveSnapshot replaces the ledger’s older snapshot', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), transferPosted(uid('t')), transferPosted(uid('t'))]);
        await store.saveSnapshot(snapshotAt(stream, 1, sampleState(1)));
        const newer = snapshotAt(stream, 3, sampleState(3));
        await store.saveSnapshot(newer);
        expect(await store.loadSnapshot({ tenantId, ledgerId })).toEqual(newer);
      }, timeout);

      it('saveSnapshot keeps a newer snapshot: one of an earlier version saved later (a slower writer) is dropped', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), transferPosted(uid('t')), transferPosted(uid('t'))]);
        const newer = snapshotAt(stream, 3, sampleState(3));
        await store.saveSnapshot(newer);
        await store.saveSnapshot(snapshotAt(stream, 1, sampleState(1)));
        expect(await store.loadSnapshot({ tenantId, ledgerId })).toEqual(newer);
        // The same version again replaces it (a state written by a newer release, say).
        const again = snapshotAt(stream, 3, sampleState(4));
        expect(again.state).not.toEqual(newer.state);
        await store.saveSnapshot(again);
        expect(await store.loadSnapshot({ tenantId, ledgerId })).toEqual(again);
      }, timeout);

      it('loadSnapshot of a ledger without a snapshot returns null', async () => {
        expect(await store.loadSnapshot({ tenantId, ledgerId })).toBeNull();
        await streamOf(tenantId, ledgerId).append([accountOpened('cash')]);
        expect(await store.loadSnapshot({ tenantId, ledgerId })).toBeNull();
      }, timeout);

      it('snapshots are scoped to their tenant and ledger', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const snapshot = snapshotAt(stream, 1, sampleState(1));
        await store.saveSnapshot(snapshot);
        expect(await store.loadSnapshot({ tenantId, ledgerId: otherLedgerId })).toBeNull();
        expect(await store.loadSnapshot({ tenantId: otherTenantId, ledgerId })).toBeNull();
        const sibling = streamOf(tenantId, otherLedgerId);
        await sibling.append([accountOpened('bank')]);
        await store.saveSnapshot(snapshotAt(sibling, 1, sampleState(7)));
        expect(await store.loadSnapshot({ tenantId, ledgerId })).toEqual(snapshot);
      }, timeout);
    });

    describe('concurrent appends', () => {
      const race = async (stream: TestStream): Promise<void> => {
        const contenders = Array.from({ length: concurrency }, () => stream.next([transferPosted(uid('t')), transferPosted(uid('t'))]));
        const expectedVersion = stream.head.version;
        const outcomes = await Promise.allSettled(contenders.map((events) => store.append({ tenantId, ledgerId, expectedVersion, events })));
        const winners = outcomes.flatMap((outcome, index) => (outcome.status === 'fulfilled' ? [index] : []));
        expect(winners, 'appends that succeeded').toHaveLength(1);
        const winner = winners[0]!;
        expect(outcomes[winner]).toEqual({ status: 'fulfilled', value: { ledgerVersion: expectedVersion + 2 } });
        for (const outcome of outcomes) {
          if (outcome.status === 'rejected') expectLedgerErrorValue(outcome.reason, 'version_conflict', { expectedVersion });
        }
        stream.events.push(...contenders[winner]!);
        const read = await readWholeStream(store, tenantId, ledgerId);
        expect(read.map((event) => event.ledgerVersion)).toEqual(read.map((_, index) => index + 1));
        expect(read).toEqual(stream.events);
        expectExactlyOnceInStreamOrder(await logOf(tenantId, stream.events.length), [stream]);
      };

      it('of several appends racing to create a stream with expectedVersion 0, exactly one succeeds and the stream has no gap or duplicate', async () => {
        await race(streamOf(tenantId, ledgerId));
      }, timeout);

      it('of several appends racing with the same expectedVersion, exactly one succeeds and the others throw VersionConflictError', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), accountOpened('revenue')]);
        await race(stream);
        await race(stream);
      }, timeout);

      it('an append sent before the one below it is acknowledged lands on top of it, or is refused whole and then succeeds as a retry', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), accountOpened('revenue')]);
        for (let round = 0; round < 5; round += 1) {
          const below = stream.next([transferPosted(uid('t')), transferPosted(uid('t'))]);
          const belowHead = { tenantId, ledgerId, version: stream.head.version + below.length, hash: below[below.length - 1]!.hash };
          const above = encodeChain(belowHead, [transferPosted(uid('t')), transferPosted(uid('t')), transferPosted(uid('t'))]);
          const [first, second] = await Promise.allSettled([
            store.append({ tenantId, ledgerId, expectedVersion: stream.head.version, events: below }),
            store.append({ tenantId, ledgerId, expectedVersion: belowHead.version, events: above }),
          ]);
          expect(first).toEqual({ status: 'fulfilled', value: { ledgerVersion: belowHead.version } });
          stream.events.push(...below);
          if (second!.status === 'rejected') {
            // A store may take the two out of order and refuse the upper one; it then wrote nothing of it.
            expectLedgerErrorValue(second!.reason, 'version_conflict', { expectedVersion: belowHead.version });
            await stream.expectUnchanged(above);
            await store.append({ tenantId, ledgerId, expectedVersion: belowHead.version, events: above });
          } else {
            expect(second!.value).toEqual({ ledgerVersion: belowHead.version + above.length });
          }
          stream.events.push(...above);
        }
        expect(await readWholeStream(store, tenantId, ledgerId)).toEqual(stream.events);
        expectExactlyOnceInStreamOrder(await logOf(tenantId, stream.events.length), [stream]);
      }, timeout);

      it('an append decided on top of a refused one is refused, even after another writer fills the same versions', async () => {
        const stream = streamOf(tenantId, ledgerId);
        const takenId = uid('t');
        await stream.append([accountOpened('cash'), transferPosted(takenId)]);
        // The lower batch claims a key the ledger holds, so it is refused; the upper one chains onto it.
        const below = stream.next([transferPosted(uid('t')), transferPosted(takenId)]);
        const belowHead = { tenantId, ledgerId, version: stream.head.version + below.length, hash: below[below.length - 1]!.hash };
        const above = encodeChain(belowHead, [transferPosted(uid('t'))]);
        const [first, second] = await Promise.allSettled([
          store.append({ tenantId, ledgerId, expectedVersion: stream.head.version, events: below }),
          store.append({ tenantId, ledgerId, expectedVersion: belowHead.version, events: above }),
        ]);
        expect(first!.status).toBe('rejected');
        expect(second!.status).toBe('rejected');
        if (first!.status === 'rejected') expectLedgerErrorValue(first!.reason, 'duplicate_index_key', { key: `transfer:${takenId}` });
        if (second!.status === 'rejected') expectLedgerErrorValue(second!.reason, 'version_conflict', { expectedVersion: belowHead.version });
        await stream.expectUnchanged([...below, ...above]);
        // Another writer reaches the very version the upper batch expects, with other events.
        await stream.append([transferPosted(uid('t')), transferPosted(uid('t'))]);
        expect(stream.head.version).toBe(belowHead.version);
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: belowHead.version, events: above }), 'version_conflict', { expectedVersion: belowHead.version });
        await stream.expectUnchanged(above);
      }, timeout);

      it('concurrent appends to different ledgers all succeed', async () => {
        const streams = Array.from({ length: concurrency }, (_, index) => streamOf(tenantId, `${ledgerId}-${index}`));
        await Promise.all(streams.map((stream) => stream.append([accountOpened('cash'), transferPosted(uid('t'))])));
        for (const stream of streams) expect(await readWholeStream(store, tenantId, stream.ledgerId)).toEqual(stream.events);
        expectExactlyOnceInStreamOrder(await logOf(tenantId, eventCount(streams)), streams);
      }, timeout);
    });

    describe('round trip', () => {
      it('events read back deep-equal the appended events whatever order their keys were in', async () => {
        const stream = streamOf(tenantId, ledgerId);
        const pendingId = uid('hold');
        const batch = stream.next([
          accountOpened('cash', { 'z-key': 'last', 'a-key': 'first', note: 'naïve – “quoted” \\ / \u0001' }),
          transferPending(pendingId, { timeoutMs: 86_400_000, reference: 'ref ✓' }),
          pendingPosted(uid('t'), pendingId),
          { type: 'AccountFrozen', accountId: 'cash', reason: 'audit' },
        ]);
        // Same content, keys spelled in reverse: the hash is unchanged because it covers canonical JSON.
        const reordered = batch.map((event) => reverseKeys(event) as unknown as StoredEvent);
        await store.append({ tenantId, ledgerId, expectedVersion: 0, events: reordered });
        const keys = batch.flatMap((event) => indexKeysOf(event));
        const reads: StoredEvent[][] = [
          await readWholeStream(store, tenantId, ledgerId),
          (await store.readStream({ tenantId, ledgerId, direction: 'backward', limit: 10 })).reverse(),
          (await logOf(tenantId, batch.length)).map((entry) => entry.event),
        ];
        for (const read of reads) {
          expect(read).toEqual(batch);
          expect(read.map((event) => canonicalJson(event as unknown as JsonValue))).toEqual(batch.map((event) => canonicalJson(event as unknown as JsonValue)));
        }
        const found = await store.findByIndexKeys({ tenantId, ledgerId, keys });
        for (const key of keys) expect(batch).toContainEqual(found.get(key));
      }, timeout);

      it('a stream read back still verifies its hash chain', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), accountOpened('revenue')]);
        await stream.append([transferPosted(uid('t')), transferPosted(uid('t'), { reference: 'invoice 42' })]);
        const verification = await verifyChain(await readWholeStream(store, tenantId, ledgerId));
        expect(verification).toEqual({ ok: true, eventCount: 4, lastHash: stream.head.hash, lastVersion: 4 });
      }, timeout);
    });

    describe('limits', () => {
      it(`readStream rejects a limit above READ_LIMIT_MAX (${READ_LIMIT_MAX}) or below 1 with a LedgerError`, async () => {
        await streamOf(tenantId, ledgerId).append([accountOpened('cash')]);
        for (const direction of ['forward', 'backward'] as const) {
          await expectLedgerError(store.readStream({ tenantId, ledgerId, direction, limit: READ_LIMIT_MAX + 1 }), 'limit_exceeded');
          await expectLedgerError(store.readStream({ tenantId, ledgerId, direction, limit: 0 }), 'limit_exceeded');
        }
        expect(await store.readStream({ tenantId, ledgerId, direction: 'forward', limit: READ_LIMIT_MAX })).toHaveLength(1);
      }, timeout);

      it(`readAll rejects a limit above READ_LIMIT_MAX (${READ_LIMIT_MAX}) or below 1 with a LedgerError`, async () => {
        await streamOf(tenantId, ledgerId).append([accountOpened('cash')]);
        expect(await logOf(tenantId, 1)).toHaveLength(1);
        await expectLedgerError(store.readAll({ tenantId, after: null, limit: READ_LIMIT_MAX + 1 }), 'limit_exceeded');
        await expectLedgerError(store.readAll({ tenantId, after: null, limit: 0 }), 'limit_exceeded');
        expect(await store.readAll({ tenantId, after: null, limit: READ_LIMIT_MAX })).toHaveLength(1);
      }, timeout);

      it(`findByIndexKeys rejects more than INDEX_KEYS_MAX (${INDEX_KEYS_MAX}) keys with a LedgerError`, async () => {
        const keys = Array.from({ length: INDEX_KEYS_MAX + 1 }, (_, index) => `transfer:k${index}`);
        await expectLedgerError(store.findByIndexKeys({ tenantId, ledgerId, keys }), 'limit_exceeded');
        expect((await store.findByIndexKeys({ tenantId, ledgerId, keys: keys.slice(0, INDEX_KEYS_MAX) })).size).toBe(0);
      }, timeout);

      it(`append rejects more than APPEND_EVENTS_MAX (${APPEND_EVENTS_MAX}) events with a LedgerError and writes nothing`, async () => {
        const stream = streamOf(tenantId, ledgerId);
        const events = stream.next(Array.from({ length: APPEND_EVENTS_MAX + 1 }, (_, index) => ({ type: 'AccountUnfrozen', accountId: `a${index}` })));
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 0, events }), 'limit_exceeded');
        await stream.expectUnchanged([]);
      }, timeout);

      it(`append rejects events holding more than APPEND_DATA_CHARS_MAX (${APPEND_DATA_CHARS_MAX}) characters of data JSON in all with a LedgerError, before their versions, and writes nothing`, async () => {
        const stream = streamOf(tenantId, ledgerId);
        const [large] = stream.next([largeTransfer(uid('t'))]) as [StoredEvent];
        const chars = dataJsonOf(large).length;
        // The same event over and over (one string in memory): its data counts at every place.
        const count = Math.floor(APPEND_DATA_CHARS_MAX / chars) + 1;
        expect(count, 'events it takes to pass the limit').toBeLessThanOrEqual(APPEND_EVENTS_MAX);
        const events = new Array<StoredEvent>(count).fill(large);
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 0, events }), 'limit_exceeded');
        // One fewer is within the limit: refused for the second event's version, not for size.
        await expectLedgerError(store.append({ tenantId, ledgerId, expectedVersion: 0, events: events.slice(0, count - 1) }), 'invalid_input', issueAt(['events', 1, 'ledgerVersion']));
        await stream.expectUnchanged([large]);
      }, timeout);
    });

    describe('arguments', () => {
      /** Not ids (`ID_PATTERN`): empty, a space, a quote, non-ASCII, too long, a leading dash, and no string at all. */
      const notIds: readonly unknown[] = ['', 'a b', "acme';--", 'zoë', 'x'.repeat(129), '-acme', 7, null, undefined];
      /** Not strings a store can hold: no string at all, a NUL, an unpaired surrogate. */
      const unstorable: readonly unknown[] = [7, null, undefined, 'eur\u0000', 'eur\ud800'];
      /** The calls of every method that name `change`d arguments, by name. */
      const callsWith = (change: (request: { tenantId: string; ledgerId: string }) => { tenantId: string; ledgerId: string }, batch: readonly StoredEvent[]): [string, () => Promise<unknown>][] => {
        const where = change({ tenantId, ledgerId });
        return [
          ['append', () => store.append({ ...where, expectedVersion: 1, events: batch })],
          ['readStream', () => store.readStream({ ...where, direction: 'forward', limit: 10 })],
          ['readAll', () => store.readAll({ tenantId: where.tenantId, after: null, limit: 10 })],
          ['findByIndexKeys', () => store.findByIndexKeys({ ...where, keys: ['transfer:t'] })],
          ['saveSnapshot', () => store.saveSnapshot({ ...where, ledgerVersion: 1, hash: batch[0]!.previousHash, schemaVersion: 1, state: sampleState(1) })],
          ['loadSnapshot', () => store.loadSnapshot(where)],
        ];
      };

      it('every method refuses a tenantId that is not an id (ID_PATTERN) with InvalidInputError at tenantId, and writes nothing', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const batch = stream.next([transferPosted(uid('t'))]);
        for (const value of notIds) {
          for (const [method, call] of callsWith((where) => ({ ...where, tenantId: value as string }), batch)) {
            await expectLedgerError(call(), 'invalid_input', issueAt(['tenantId']), `${method} with tenantId ${String(JSON.stringify(value))}`);
          }
        }
        await stream.expectUnchanged(batch);
        expect(await store.loadSnapshot({ tenantId, ledgerId })).toBeNull();
      }, timeout);

      it('append and saveSnapshot refuse a ledgerId that is not an id (ID_PATTERN) with InvalidInputError at ledgerId, and write nothing', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const batch = stream.next([transferPosted(uid('t'))]);
        const writes = new Set(['append', 'saveSnapshot']);
        for (const value of notIds) {
          for (const [method, call] of callsWith((where) => ({ ...where, ledgerId: value as string }), batch).filter(([name]) => writes.has(name))) {
            await expectLedgerError(call(), 'invalid_input', issueAt(['ledgerId']), `${method} with ledgerId ${String(JSON.stringify(value))}`);
          }
        }
        await stream.expectUnchanged(batch);
        expect(await logOf(tenantId, 1)).toHaveLength(1);
      }, timeout);

      it('readStream, findByIndexKeys and loadSnapshot refuse a ledgerId, and findByIndexKeys a key, that is not a string a store can hold, with InvalidInputError at it', async () => {
        await streamOf(tenantId, ledgerId).append([accountOpened('cash')]);
        const reads = new Set(['readStream', 'findByIndexKeys', 'loadSnapshot']);
        for (const value of unstorable) {
          const label = String(JSON.stringify(value));
          for (const [method, call] of callsWith((where) => ({ ...where, ledgerId: value as string }), []).filter(([name]) => reads.has(name))) {
            await expectLedgerError(call(), 'invalid_input', issueAt(['ledgerId']), `${method} with ledgerId ${label}`);
          }
          const keys = ['transfer:t', value as string];
          await expectLedgerError(store.findByIndexKeys({ tenantId, ledgerId, keys }), 'invalid_input', issueAt(['keys', 1]), `findByIndexKeys with key ${label}`);
        }
      }, timeout);

      /** A snapshot of `stream`'s version 1 to change one field of at a time. */
      const goodSnapshot = (stream: TestStream): Snapshot => ({
        tenantId: stream.tenantId,
        ledgerId: stream.ledgerId,
        ledgerVersion: 1,
        hash: stream.events[0]!.hash,
        schemaVersion: 1,
        state: sampleState(1),
      });
      /** Fields `saveSnapshot` must refuse, each at its own path, in the order a store checks them. */
      const badSnapshotFields: readonly (readonly [keyof Snapshot, readonly unknown[]])[] = [
        ['ledgerVersion', [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 1, '2', null, undefined]],
        ['hash', [7, null, undefined, `${'a'.repeat(63)}\u0000`, `${'a'.repeat(63)}\ud800`]],
        ['schemaVersion', [-1, 1.5, Number.NaN, SNAPSHOT_SCHEMA_VERSION_STORABLE_MAX + 1, 2 ** 40, '1', null, undefined]],
        [
          'state',
          [
            null,
            [],
            'state',
            7,
            { s: 'nul \u0000' },
            { ['k\u0000']: 1 },
            { nested: { list: ['ok', 'lone \udc00 surrogate'] } },
            { ['\ud800']: 1 },
            { big: 1n },
            { toJSON: () => 'not an object' },
          ],
        ],
      ];

      it('saveSnapshot refuses a ledgerVersion that is not a non-negative integer, a hash or a state a store cannot hold, and a schemaVersion outside 0..2,147,483,647, with InvalidInputError at that field, and keeps the saved snapshot', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), transferPosted(uid('t'))]);
        const saved = goodSnapshot(stream);
        await store.saveSnapshot(saved);
        for (const [field, values] of badSnapshotFields) {
          for (const value of values) {
            // A later version than the saved one: a store must refuse it, not drop it as stale.
            const bad = { ...saved, ledgerVersion: 2, hash: stream.events[1]!.hash, [field]: value } as Snapshot;
            await expectLedgerError(store.saveSnapshot(bad), 'invalid_input', issueAt([field]), `saveSnapshot with ${field} ${describeValue(value)}`);
          }
        }
        expect(await store.loadSnapshot({ tenantId, ledgerId })).toEqual(saved);
        // Nothing was stored under the ledger on another path either.
        expect(await store.loadSnapshot({ tenantId, ledgerId: otherLedgerId })).toBeNull();
      }, timeout);

      it(`saveSnapshot refuses a state over SNAPSHOT_STATE_BYTES_MAX (${SNAPSHOT_STATE_BYTES_MAX}) bytes of JSON with a LedgerError, counting bytes, not characters, and keeps the saved snapshot`, async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash'), transferPosted(uid('t'))]);
        const saved = goodSnapshot(stream);
        await store.saveSnapshot(saved);
        const later = { ...saved, ledgerVersion: 2, hash: stream.events[1]!.hash };
        // `{"s":"…"}` is 8 bytes around the string; a third as many characters as the limit, each
        // 3 bytes of UTF-8, and one more: far under the limit in characters, just over it in bytes.
        const euros = Math.floor((SNAPSHOT_STATE_BYTES_MAX - 8) / 3) + 1;
        await expectLedgerError(store.saveSnapshot({ ...later, state: { s: '€'.repeat(euros) } }), 'limit_exceeded');
        expect(await store.loadSnapshot({ tenantId, ledgerId })).toEqual(saved);
      }, timeout);

      it('saveSnapshot checks its fields in order: tenantId, ledgerId, ledgerVersion, hash, schemaVersion, state', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const order: readonly (keyof Snapshot)[] = ['tenantId', 'ledgerId', 'ledgerVersion', 'hash', 'schemaVersion', 'state'];
        const badValue: Record<keyof Snapshot, unknown> = {
          tenantId: 'bad tenant',
          ledgerId: 'bad ledger',
          ledgerVersion: -1,
          hash: 'nul\u0000',
          schemaVersion: 2 ** 31,
          state: [],
        };
        // Every field from the `i`th on is bad: the refusal names the `i`th.
        for (let i = 0; i < order.length; i += 1) {
          const bad: Record<string, unknown> = { ...goodSnapshot(stream) };
          for (const field of order.slice(i)) bad[field] = badValue[field];
          await expectLedgerError(store.saveSnapshot(bad as unknown as Snapshot), 'invalid_input', issueAt([order[i] as string]), `saveSnapshot bad from ${order[i]}`);
        }
        expect(await store.loadSnapshot({ tenantId, ledgerId })).toBeNull();
      }, timeout);

      it('saveSnapshot stores the edges of what it accepts: ledgerVersion 0, schemaVersion 0 and 2,147,483,647, and text that only looks like an escape', async () => {
        const stream = streamOf(tenantId, ledgerId);
        await stream.append([accountOpened('cash')]);
        const atGenesis: Snapshot = { ...goodSnapshot(stream), ledgerVersion: 0, hash: GENESIS_HASH, schemaVersion: 0, state: {} };
        await store.saveSnapshot(atGenesis);
        expect(await store.loadSnapshot({ tenantId, ledgerId })).toEqual(atGenesis);
        const lookalike: Snapshot = {
          ...goodSnapshot(stream),
          schemaVersion: SNAPSHOT_SCHEMA_VERSION_STORABLE_MAX,
          state: { text: 'back\\u0000slash \\\\u0000 \\\\\\uD800', emoji: '\ud83d\ude00' },
        };
        await store.saveSnapshot(lookalike);
        expect(await store.loadSnapshot({ tenantId, ledgerId })).toEqual(lookalike);
      }, timeout);

      it('readStream refuses a direction other than forward or backward, and a fromVersion that is not an integer, with InvalidInputError at that field', async () => {
        await streamOf(tenantId, ledgerId).append([accountOpened('cash')]);
        for (const direction of ['sideways', 'FORWARD', '', null, undefined, 1]) {
          const read = store.readStream({ tenantId, ledgerId, direction: direction as 'forward', limit: 10 });
          await expectLedgerError(read, 'invalid_input', issueAt(['direction']), `direction ${String(JSON.stringify(direction))}`);
        }
        for (const fromVersion of [1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 1, '1', null]) {
          for (const direction of ['forward', 'backward'] as const) {
            const read = store.readStream({ tenantId, ledgerId, direction, fromVersion: fromVersion as number, limit: 10 });
            await expectLedgerError(read, 'invalid_input', issueAt(['fromVersion']), `${direction} from ${String(fromVersion)}`);
          }
        }
        // Any integer is a place to start: before the first version, or after the last.
        expect(await store.readStream({ tenantId, ledgerId, direction: 'forward', fromVersion: -5, limit: 10 })).toHaveLength(1);
        expect(await store.readStream({ tenantId, ledgerId, direction: 'backward', fromVersion: 0, limit: 10 })).toEqual([]);
        expect(await store.readStream({ tenantId, ledgerId, direction: 'backward', fromVersion: 9, limit: 10 })).toHaveLength(1);
      }, timeout);
    });
  });
}

/** Where a stream stands: the version and hash the next event continues from. */
interface StreamHead {
  readonly tenantId: string;
  readonly ledgerId: string;
  readonly version: number;
  readonly hash: string;
}

/** One ledger stream as the suite wrote it: the events the store must give back. */
class TestStream {
  readonly events: StoredEvent[] = [];

  constructor(
    readonly store: EventStore,
    readonly tenantId: string,
    readonly ledgerId: string,
  ) {}

  get head(): StreamHead {
    const last = this.events[this.events.length - 1];
    return { tenantId: this.tenantId, ledgerId: this.ledgerId, version: this.events.length, hash: last?.hash ?? GENESIS_HASH };
  }

  /** Encodes events that would continue the stream, without appending them. */
  next(events: readonly LedgerEvent[]): StoredEvent[] {
    return encodeChain(this.head, events);
  }

  /** Appends events at the stream's head and remembers them. */
  async append(events: readonly LedgerEvent[]): Promise<StoredEvent[]> {
    const head = this.head;
    const batch = encodeChain(head, events);
    const result = await this.store.append({ tenantId: this.tenantId, ledgerId: this.ledgerId, expectedVersion: head.version, events: batch });
    expect(result.ledgerVersion).toBe(head.version + batch.length);
    this.events.push(...batch);
    return batch;
  }

  /** Appends events already encoded at the stream's head, then checks that the whole stream reads back and its chain verifies. */
  async appendEncoded(events: readonly StoredEvent[]): Promise<void> {
    const expectedVersion = this.events.length;
    const result = await this.store.append({ tenantId: this.tenantId, ledgerId: this.ledgerId, expectedVersion, events });
    expect(result).toEqual({ ledgerVersion: expectedVersion + events.length });
    this.events.push(...events);
    expect(await readWholeStream(this.store, this.tenantId, this.ledgerId)).toEqual(this.events);
    expect((await verifyChain(this.events)).ok).toBe(true);
  }

  /** Checks that the stream holds exactly what was appended, and that no key of `rejected` was indexed. */
  async expectUnchanged(rejected: readonly StoredEvent[]): Promise<void> {
    expect(await readWholeStream(this.store, this.tenantId, this.ledgerId)).toEqual(this.events);
    const keys = [...new Set(rejected.flatMap((event) => indexKeysOf(event)))];
    const found = await this.store.findByIndexKeys({ tenantId: this.tenantId, ledgerId: this.ledgerId, keys });
    const rejectedIds = new Set(rejected.map((event) => event.eventId));
    for (const event of found.values()) expect(rejectedIds.has(event.eventId), `event ${event.eventId} of a rejected batch is indexed`).toBe(false);
    const logged = await readWholeLog(this.store, this.tenantId, READ_LIMIT_MAX);
    for (const entry of logged) expect(rejectedIds.has(entry.event.eventId), `event ${entry.event.eventId} of a rejected batch is in the global log`).toBe(false);
  }
}

/** Encodes `events` after `head`, each recorded at `recordedAtMsOf(its version)` (default a second apart) and effective 250 ms before. */
function encodeChain(head: StreamHead, events: readonly LedgerEvent[], recordedAtMsOf: (ledgerVersion: number) => number = (v) => BASE_TIME_MS + v * 1_000): StoredEvent[] {
  const encoded: StoredEvent[] = [];
  let previousHash = head.hash;
  events.forEach((event, offset) => {
    const ledgerVersion = head.version + offset + 1;
    const recordedAtMs = recordedAtMsOf(ledgerVersion);
    const stored = codec.encode(
      { event, effectiveAtMs: recordedAtMs - 250 },
      {
        eventId: randomUUID(),
        tenantId: head.tenantId,
        ledgerId: head.ledgerId,
        ledgerVersion,
        recordedAtMs,
        correlationId: ledgerVersion % 2 === 0 ? `corr-${ledgerVersion}` : null,
        causationId: ledgerVersion % 3 === 0 ? randomUUID() : null,
        metadata: ENVELOPE_METADATA,
        previousHash,
      },
    );
    encoded.push(stored);
    previousHash = stored.hash;
  });
  return encoded;
}

async function readWholeStream(store: EventStore, tenantId: string, ledgerId: string): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  for (let pages = 1; pages <= READ_PAGES_MAX; pages += 1) {
    const fromVersion = events.length + 1;
    const page = await store.readStream({ tenantId, ledgerId, direction: 'forward', fromVersion, limit: READ_LIMIT_MAX });
    if (page.length === 0) return events;
    expect(page[0]?.ledgerVersion, `first version of a forward read from ${fromVersion}`).toBe(fromVersion);
    events.push(...page);
  }
  throw new Error(`readStream did not reach the end of the stream in ${READ_PAGES_MAX} pages`);
}

/** What a read of the global log waits for: at least `count` events, for up to `lagMs` (see `globalLogLagMs`). */
interface LogWait {
  readonly count: number;
  readonly lagMs: number;
}

/**
 * Reads the tenant's global log after `after` to its end. Where the end comes before `wait.count`
 * events, it resumes from the last position it got, as a subscriber would, until they are in or
 * `wait.lagMs` has passed: the port promises that resuming never skips an event, not that an
 * append's events show the moment it resolves.
 */
async function readWholeLog(store: EventStore, tenantId: string, limit: number, after: string | null = null, wait: LogWait = { count: 0, lagMs: 0 }): Promise<GlobalEvent[]> {
  const entries: GlobalEvent[] = [];
  const deadline = Date.now() + wait.lagMs;
  let cursor = after;
  let pauseMs = 1;
  for (let pages = 0; pages < READ_PAGES_MAX; ) {
    const page = await store.readAll({ tenantId, after: cursor, limit });
    expect(page.length).toBeLessThanOrEqual(limit);
    if (page.length > 0) {
      pages += 1;
      entries.push(...page);
      cursor = page[page.length - 1]!.position;
    } else if (entries.length >= wait.count || Date.now() >= deadline) {
      return entries;
    } else {
      await sleep(Math.min(pauseMs, Math.max(deadline - Date.now(), 0)));
      pauseMs = Math.min(pauseMs * 2, LAG_POLL_MS_MAX);
    }
  }
  throw new Error(`readAll did not reach the end of the log in ${READ_PAGES_MAX} pages: does resuming repeat events?`);
}

function eventCount(streams: readonly TestStream[]): number {
  return streams.reduce((count, stream) => count + stream.events.length, 0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The log holds each stream's events exactly once, each stream's in version order, and nothing else. */
function expectExactlyOnceInStreamOrder(log: readonly GlobalEvent[], streams: readonly TestStream[]): void {
  for (const entry of log) expect(typeof entry.position).toBe('string');
  expect(new Set(log.map((entry) => entry.position)).size, 'distinct positions').toBe(log.length);
  for (const stream of streams) {
    const ofStream = log.filter((entry) => entry.event.tenantId === stream.tenantId && entry.event.ledgerId === stream.ledgerId).map((entry) => entry.event);
    expect(ofStream).toEqual(stream.events);
  }
  expect(log).toHaveLength(eventCount(streams));
}

async function expectLedgerError(call: Promise<unknown>, code?: LedgerErrorCode, fields: Record<string, unknown> = {}, label = 'the call'): Promise<void> {
  const outcome = await call.then(
    (value) => ({ rejected: false as const, value }),
    (reason: unknown) => ({ rejected: true as const, reason }),
  );
  expect(outcome.rejected, `${label} was expected to throw a LedgerError`).toBe(true);
  if (outcome.rejected) expectLedgerErrorValue(outcome.reason, code, fields, label);
}

// Checked by shape, not `instanceof`: a store may load ledger-core through another bundle entry.
function expectLedgerErrorValue(error: unknown, code?: LedgerErrorCode, fields: Record<string, unknown> = {}, label = 'the call'): void {
  expect(error, label).toBeInstanceOf(Error);
  const actual = error as { code?: unknown; retriable?: unknown; message?: unknown };
  expect(typeof actual.code, `${label}: LedgerError code of ${String(actual.message)}`).toBe('string');
  expect(typeof actual.retriable, label).toBe('boolean');
  if (code !== undefined) expect(actual.code, `${label}: ${String(actual.message)}`).toBe(code);
  expect(error, label).toMatchObject(fields);
}

/** The fields of an `InvalidInputError` whose one issue is at `path`. */
function issueAt(path: readonly (string | number)[]): Record<string, unknown> {
  return { issues: [expect.objectContaining({ path })] };
}

/** A stored event as plain JSON data, as a copy read from another store would be: not built by `EventCodec.encode`. */
function plainCopy(event: StoredEvent): StoredEvent {
  return JSON.parse(JSON.stringify(event)) as StoredEvent;
}

/** A value as a test label: its JSON when it has one, else its type and text (a BigInt, a function). */
function describeValue(value: unknown): string {
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch {
    // A BigInt: described below.
  }
  return `${typeof value} ${String(value)}`;
}

function uid(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}

function eur(accountId: string, side: Posting['side'], amount: bigint): Posting {
  return { accountId, side, amount, currency: 'EUR' };
}

function accountOpened(accountId: string, metadata: Readonly<Record<string, string>> = {}): LedgerEvent {
  return {
    type: 'AccountOpened',
    accountId,
    currency: 'EUR',
    accountType: 'asset',
    flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false },
    metadata,
  };
}

function transferPosted(transferId: string, options: { readonly reversalOf?: string; readonly reference?: string } = {}): LedgerEvent {
  return {
    type: 'TransferPosted',
    transferId,
    postings: [eur('cash', 'debit', 1_050n), eur('revenue', 'credit', 1_050n)],
    reference: options.reference,
    reversalOf: options.reversalOf,
    metadata: { purpose: 'conformance' },
  };
}

/** A transfer near the largest the domain's limits allow: 32 postings of long ids, a long reference, ~3.6 KB of metadata. */
function largeTransfer(transferId: string): LedgerEvent {
  const amount = 10n ** 35n;
  const postings = Array.from({ length: 16 }, (_, index) => [eur(`cash-${index}-`.padEnd(128, 'c'), 'debit', amount), eur(`revenue-${index}-`.padEnd(128, 'r'), 'credit', amount)]).flat();
  const metadata = Object.fromEntries(Array.from({ length: 7 }, (_, index) => [`note-${index}`, 'n'.repeat(500)]));
  return { type: 'TransferPosted', transferId, postings, reference: 'r'.repeat(256), reversalOf: undefined, metadata };
}

function transferPending(transferId: string, options: { readonly timeoutMs?: number; readonly reference?: string } = {}): LedgerEvent {
  return {
    type: 'TransferPending',
    transferId,
    postings: [eur('cash', 'debit', 2_000n), eur('revenue', 'credit', 2_000n)],
    timeoutMs: options.timeoutMs,
    reference: options.reference,
    metadata: {},
  };
}

function pendingPosted(transferId: string, pendingId: string): LedgerEvent {
  return { type: 'PendingPosted', transferId, pendingId, postings: [eur('cash', 'debit', 1_999n), eur('revenue', 'credit', 1_999n)], metadata: {} };
}

function pendingVoided(transferId: string, pendingId: string): LedgerEvent {
  return { type: 'PendingVoided', transferId, pendingId, metadata: {} };
}

function sampleState(version: number): JsonObject {
  return {
    version,
    lastRecordedAtMs: BASE_TIME_MS + version * 1_000,
    accounts: [{ id: 'cash', currency: 'EUR', balances: ['1050', '0', '0', '0'], metadata: { b: '2', a: '1' } }],
    holds: [],
    nested: { empty: {}, flag: true, nothing: null, text: 'ünïcode' },
  };
}

function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).reverse().map(([key, item]) => [key, reverseKeys(item)]));
}
