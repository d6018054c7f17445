import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { canonicalDataJson } from '../src/events/canonical.js';
import {
  CURRENT_SCHEMA_VERSIONS,
  CorruptEventError,
  CurrencyRegistry,
  EventCodec,
  GENESIS_HASH,
  LimitExceededError,
  UPCAST_STEPS_MAX,
  UpcasterRegistry,
  builtInUpcasters,
  canonicalEncoding,
  canonicalJson,
  hashEvent,
  appendableDataJson,
  dataJsonOf,
  InvalidInputError,
  verifyChain,
  type EventDraft,
  type JsonObject,
  type JsonValue,
  type LedgerEvent,
  type LedgerEventType,
  type StoredEvent,
} from '@ledgerkit/ledger-core';
import { issuePathsOf } from './support/issue-paths.js';

const currencies = new CurrencyRegistry([{ code: 'TOKEN18', scale: 18 }]);
const codec = new EventCodec({ currencies });

const T0 = Date.parse('2025-03-01T12:00:00.000Z');

/** Encodes `drafts` as one stream starting at version 1, each event chained to the one before. */
function chain(drafts: readonly EventDraft[], startVersion = 1, startHash = GENESIS_HASH): StoredEvent[] {
  const stored: StoredEvent[] = [];
  let previousHash = startHash;
  drafts.forEach((draft, index) => {
    const event = codec.encode(draft, {
      eventId: `evt-${startVersion + index}`,
      tenantId: 'acme',
      ledgerId: 'main',
      ledgerVersion: startVersion + index,
      recordedAtMs: T0 + index * 1_000,
      correlationId: index % 2 === 0 ? `req-${index}` : null,
      causationId: null,
      metadata: { actor: 'tests' },
      previousHash,
    });
    stored.push(event);
    previousHash = event.hash;
  });
  return stored;
}

/** A stored event whose hash is recomputed after `change`, so only the change itself is wrong. */
function rehashed(event: StoredEvent, change: Partial<Omit<StoredEvent, 'hash'>>): StoredEvent {
  const { hash: _hash, ...rest } = event;
  const changed = { ...rest, ...change };
  return { ...changed, hash: hashEvent(changed) };
}

/** One event of every type, with optional fields both set and unset across the list. */
const everyEvent: readonly LedgerEvent[] = [
  { type: 'AccountOpened', accountId: 'alice', currency: 'EUR', accountType: 'liability', flags: { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: false }, metadata: { owner: 'Alice' } },
  { type: 'AccountOpened', accountId: 'vault', currency: 'TOKEN18', accountType: 'asset', flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false }, metadata: {} },
  { type: 'AccountFrozen', accountId: 'alice', reason: 'court order' },
  { type: 'AccountFrozen', accountId: 'alice', reason: undefined },
  { type: 'AccountUnfrozen', accountId: 'alice' },
  { type: 'AccountClosed', accountId: 'alice' },
  {
    type: 'TransferPosted',
    transferId: 't1',
    postings: [
      { accountId: 'alice', side: 'debit', amount: 1_050n, currency: 'EUR' },
      { accountId: 'bob', side: 'credit', amount: 1_050n, currency: 'EUR' },
    ],
    reference: 'inv-1',
    reversalOf: undefined,
    metadata: { k: 'v' },
  },
  {
    type: 'TransferPosted',
    transferId: 'r1',
    postings: [
      { accountId: 'alice', side: 'credit', amount: 1_050n, currency: 'EUR' },
      { accountId: 'bob', side: 'debit', amount: 1_050n, currency: 'EUR' },
      { accountId: 'vault', side: 'debit', amount: 123_456_789_123_456_789_123n, currency: 'TOKEN18' },
      { accountId: 'pool', side: 'credit', amount: 123_456_789_123_456_789_123n, currency: 'TOKEN18' },
    ],
    reference: undefined,
    reversalOf: 't1',
    metadata: {},
  },
  {
    type: 'TransferPending',
    transferId: 'h1',
    postings: [
      { accountId: 'alice', side: 'debit', amount: 7n, currency: 'JPY' },
      { accountId: 'bob', side: 'credit', amount: 7n, currency: 'JPY' },
    ],
    timeoutMs: 60_000,
    reference: 'hold',
    metadata: {},
  },
  {
    type: 'TransferPending',
    transferId: 'h2',
    postings: [
      { accountId: 'alice', side: 'debit', amount: 1n, currency: 'KWD' },
      { accountId: 'bob', side: 'credit', amount: 1n, currency: 'KWD' },
    ],
    timeoutMs: undefined,
    reference: undefined,
    metadata: { why: 'deposit' },
  },
  {
    type: 'PendingPosted',
    transferId: 'p1',
    pendingId: 'h1',
    postings: [
      { accountId: 'alice', side: 'debit', amount: 5n, currency: 'JPY' },
      { accountId: 'bob', side: 'credit', amount: 5n, currency: 'JPY' },
    ],
    metadata: {},
  },
  { type: 'PendingVoided', transferId: 'v2', pendingId: 'h2', metadata: { why: 'cancelled' } },
  { type: 'PendingExpired', pendingId: 'h3' },
];

const drafts: EventDraft[] = everyEvent.map((event, index) => ({ event, effectiveAtMs: T0 + index * 1_000 - (index % 3) * 60_000 }));
const stream = chain(drafts);

/** The CorruptEventError `decode` throws for `stored`; fails the test if it throws anything else. */
function corruption(stored: unknown): CorruptEventError {
  try {
    codec.decode(stored as StoredEvent);
  } catch (error) {
    if (error instanceof CorruptEventError) return error;
    throw error;
  }
  throw new Error('expected a CorruptEventError, but the event decoded');
}

/** What `call` throws; fails the test if it returns. */
function thrown(call: () => unknown): unknown {
  try {
    call();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw, but it returned');
}

const transferPosted = stream[6] as StoredEvent;

describe('an encoded event', () => {
  test('cannot be changed after encoding (a store trusts it as encoded): a change throws, and the event still verifies; the caller’s metadata object stays its own', async () => {
    const metadata: Record<string, string> = { actor: 'tests' };
    const event = codec.encode(
      { event: { type: 'AccountOpened', accountId: 'cash', currency: 'EUR', accountType: 'asset', flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false }, metadata: {} }, effectiveAtMs: T0 },
      { eventId: 'evt-frozen', tenantId: 'acme', ledgerId: 'main', ledgerVersion: 1, recordedAtMs: T0, correlationId: null, causationId: null, metadata, previousHash: GENESIS_HASH },
    );
    const writable = event as { -readonly [K in keyof StoredEvent]: StoredEvent[K] };
    expect(() => {
      writable.recordedAt = '2031-01-01T00:00:00.000Z';
    }).toThrow(TypeError);
    expect(() => {
      writable.type = 'Bogus';
    }).toThrow(TypeError);
    expect(() => {
      (writable.metadata as Record<string, string>)['actor'] = 'someone else';
    }).toThrow(TypeError);
    expect(() => {
      (writable.data as Record<string, unknown>)['accountId'] = 'other';
    }).toThrow(TypeError);
    expect(event).toMatchObject({ recordedAt: new Date(T0).toISOString(), type: 'AccountOpened', metadata: { actor: 'tests' }, data: { accountId: 'cash' } });
    expect((await verifyChain([event])).ok).toBe(true);
    // The caller may go on using its own object.
    metadata['actor'] = 'next command';
    expect(event.metadata).toEqual({ actor: 'tests' });
  });
});

describe('EventCodec', () => {
  test('options that are not an object are InvalidInputError at options, and currencies or upcasters of the wrong shape at the field, not a TypeError', () => {
    for (const options of [null, 'currencies', 42]) expect(issuePathsOf(() => new EventCodec(options as never)), String(options)).toEqual([['options']]);
    for (const bad of [undefined, null, {}, 'EUR', { get: 'EUR' }]) {
      expect(issuePathsOf(() => new EventCodec({ currencies: bad as never })), String(bad)).toEqual([['currencies']]);
    }
    for (const bad of [null, {}, () => undefined, { upcast: true }]) {
      expect(issuePathsOf(() => new EventCodec({ currencies, upcasters: bad as never })), String(bad)).toEqual([['upcasters']]);
    }
    // By shape: a registry with a `get` (another copy's, say) serves, and decodes as the real one.
    const lookalike = { get: (code: string) => currencies.get(code) } as unknown as CurrencyRegistry;
    expect(new EventCodec({ currencies: lookalike, upcasters: builtInUpcasters() }).decode(transferPosted).event).toEqual(codec.decode(transferPosted).event);
  });

  test('the sample stream holds every event type', () => {
    const types = new Set(everyEvent.map((event) => event.type));
    expect([...types].sort()).toEqual((Object.keys(CURRENT_SCHEMA_VERSIONS) as LedgerEventType[]).sort());
  });

  test.each(everyEvent.map((event, index) => [`${event.type} #${index}`, index] as const))('%s decodes to the event and meta it was encoded from', (_, index) => {
    const stored = stream[index] as StoredEvent;
    const draft = drafts[index] as EventDraft;
    const decoded = codec.decode(stored);
    expect(decoded.event).toEqual(draft.event);
    expect(decoded.meta).toEqual({ ledgerVersion: index + 1, recordedAtMs: T0 + index * 1_000, effectiveAtMs: draft.effectiveAtMs });
  });

  test('encoding writes amounts as decimal strings at the currency scale, times as ISO-8601 and the current schema version', () => {
    expect(transferPosted.type).toBe('TransferPosted');
    expect(transferPosted.schemaVersion).toBe(CURRENT_SCHEMA_VERSIONS.TransferPosted);
    expect(transferPosted.data).toEqual({
      transferId: 't1',
      postings: [
        { accountId: 'alice', side: 'debit', amount: '10.50', currency: 'EUR' },
        { accountId: 'bob', side: 'credit', amount: '10.50', currency: 'EUR' },
      ],
      reference: 'inv-1',
      metadata: { k: 'v' },
    });
    expect((stream[7] as StoredEvent).data['postings']).toContainEqual({ accountId: 'vault', side: 'debit', amount: '123.456789123456789123', currency: 'TOKEN18' });
    expect(transferPosted.recordedAt).toBe(new Date(T0 + 6_000).toISOString());
    expect(transferPosted.previousHash).toBe((stream[5] as StoredEvent).hash);
    expect(transferPosted.hash).toBe(hashEvent(transferPosted));
  });

  test('absent optional fields are left out of the stored data rather than written as null', () => {
    expect((stream[3] as StoredEvent).data).toEqual({ accountId: 'alice' });
    expect(Object.keys((stream[9] as StoredEvent).data).sort()).toEqual(['metadata', 'postings', 'transferId']);
  });

  test('decoding a stored event whose envelope is invalid throws CorruptEventError with its ledger version', () => {
    const error = corruption({ ...transferPosted, recordedAt: '2025-03-01 12:00' });
    expect(error.ledgerVersion).toBe(7);
    expect(error.code).toBe('corrupt_event');
    expect(error.message).toMatch(/ledger version 7.*invalid envelope.*recordedAt/);
    expect(corruption({ ...transferPosted, hash: 'not-hex' }).ledgerVersion).toBe(7);
    expect(corruption({ ...transferPosted, extra: true }).ledgerVersion).toBe(7);
  });

  test('an envelope without a usable ledger version still throws CorruptEventError, with no version', () => {
    const error = corruption({ ...transferPosted, ledgerVersion: '7' });
    expect(error.ledgerVersion).toBeUndefined();
    expect(corruption(null).ledgerVersion).toBeUndefined();
  });

  test('decoding an unknown event type throws CorruptEventError, including names inherited by every object', () => {
    expect(corruption({ ...transferPosted, type: 'AccountRenamed' })).toMatchObject({ ledgerVersion: 7, message: expect.stringMatching(/unknown event type "AccountRenamed"/) });
    expect(corruption({ ...transferPosted, type: 'toString' }).message).toMatch(/unknown event type/);
    expect(corruption({ ...transferPosted, type: 'constructor' }).message).toMatch(/unknown event type/);
  });

  test('decoding data that does not match its type schema throws CorruptEventError', () => {
    expect(corruption({ ...transferPosted, data: { ...transferPosted.data, postings: [] } }).ledgerVersion).toBe(7);
    expect(corruption({ ...transferPosted, data: { ...transferPosted.data, surprise: 1 } }).message).toMatch(/ledger version 7: invalid TransferPosted data/);
    const { accountId: _accountId, ...noAccount } = (stream[0] as StoredEvent).data;
    expect(corruption({ ...(stream[0] as StoredEvent), data: noAccount }).ledgerVersion).toBe(1);
  });

  test('decoding an amount with more decimals than its currency allows throws CorruptEventError instead of rounding', () => {
    const postings = [
      { accountId: 'alice', side: 'debit', amount: '10.501', currency: 'EUR' },
      { accountId: 'bob', side: 'credit', amount: '10.501', currency: 'EUR' },
    ];
    const error = corruption({ ...transferPosted, data: { ...transferPosted.data, postings } });
    expect(error.ledgerVersion).toBe(7);
    expect(error.message).toMatch(/3 decimals/);
  });

  test('decoding an amount in a currency the registry does not know throws CorruptEventError', () => {
    const postings = [
      { accountId: 'alice', side: 'debit', amount: '1', currency: 'XYZ' },
      { accountId: 'bob', side: 'credit', amount: '1', currency: 'XYZ' },
    ];
    expect(corruption({ ...transferPosted, data: { ...transferPosted.data, postings } }).message).toMatch(/unknown currency "XYZ"/);
    const other = new EventCodec({ currencies: new CurrencyRegistry() });
    expect(() => other.decode(stream[1] as StoredEvent)).toThrow(CorruptEventError);
  });

  test('decoding an event whose effectiveAt is after its recordedAt throws CorruptEventError', () => {
    const error = corruption({ ...transferPosted, effectiveAt: new Date(T0 + 6_001).toISOString() });
    expect(error.ledgerVersion).toBe(7);
    expect(error.message).toMatch(/effectiveAt is after recordedAt/);
  });

  test('decoding a schema version with no upcaster to the current one throws CorruptEventError', () => {
    expect(corruption({ ...(stream[0] as StoredEvent), schemaVersion: 2 }).message).toMatch(/no upcaster from AccountOpened v2 to v1/);
    expect(corruption({ ...transferPosted, schemaVersion: 3 }).ledgerVersion).toBe(7);
    const ownSteps = new EventCodec({ currencies, upcasters: new UpcasterRegistry().register('AccountFrozen', 1, (data) => data) });
    expect(() => ownSteps.decode({ ...transferPosted, schemaVersion: 3 })).toThrow(/no upcaster from TransferPosted v3 to v2/);
  });

  test("a codec given a registry of the caller's own steps still applies the built-in ones: a v1 TransferPosted decodes", () => {
    const v1 = rehashed(transferPosted, {
      schemaVersion: 1,
      data: { transferId: 'old-2', debitAccountId: 'alice', creditAccountId: 'bob', amount: '1.25', currency: 'EUR' },
    });
    const expected = codec.decode(v1).event;
    const frozenV1 = (data: JsonObject): JsonObject => ({ ...data, reason: data['reason'] ?? 'unspecified' });
    for (const upcasters of [new UpcasterRegistry(), new UpcasterRegistry().register('AccountFrozen', 1, frozenV1), builtInUpcasters().register('AccountFrozen', 1, frozenV1)]) {
      const custom = new EventCodec({ currencies, upcasters });
      expect(custom.decode(v1).event).toEqual(expected);
      expect(() => custom.verify(v1)).not.toThrow();
    }
    expect(expected).toMatchObject({ transferId: 'old-2', postings: [{ accountId: 'alice', amount: 125n }, { accountId: 'bob', amount: 125n }] });
  });

  test('the built-in upcaster reads a v1 TransferPosted (one debit, one credit account) as postings', () => {
    const v1 = rehashed(transferPosted, {
      schemaVersion: 1,
      data: { transferId: 'old-1', debitAccountId: 'alice', creditAccountId: 'bob', amount: '2.50', currency: 'EUR', reference: 'legacy' },
    });
    const { event } = codec.decode(v1);
    expect(event).toEqual({
      type: 'TransferPosted',
      transferId: 'old-1',
      postings: [
        { accountId: 'alice', side: 'debit', amount: 250n, currency: 'EUR' },
        { accountId: 'bob', side: 'credit', amount: 250n, currency: 'EUR' },
      ],
      reference: 'legacy',
      reversalOf: undefined,
      metadata: {},
    });
  });

  test('a v1 TransferPosted that lacks its accounts is still refused as corrupt after upcasting', () => {
    const v1 = { ...transferPosted, schemaVersion: 1, data: { transferId: 'old-1', amount: '2.50', currency: 'EUR' } };
    expect(corruption(v1)).toMatchObject({ ledgerVersion: 7, message: expect.stringMatching(/invalid TransferPosted data/) });
  });
});

/** A second instance of the errors module: the classes another installed copy of ledger-core throws. */
async function otherCopyOfErrors(): Promise<typeof import('../src/errors.js')> {
  const path = '../src/errors.ts?another-copy';
  return (await import(/* @vite-ignore */ path)) as typeof import('../src/errors.js');
}

describe('EventCodec.verify and appendableDataJson (what a store may append)', () => {
  const plain = (event: StoredEvent): StoredEvent => JSON.parse(JSON.stringify(event)) as StoredEvent;

  test('every event type, as the codec built it and as a plain copy, verifies; the copy’s data text parses to the same data', () => {
    for (const [offset, event] of stream.entries()) {
      expect(() => codec.verify(event)).not.toThrow();
      expect(() => codec.verify(plain(event))).not.toThrow();
      expect(appendableDataJson(event, offset, codec)).toBe(canonicalDataJson(event.data));
      expect(JSON.parse(appendableDataJson(plain(event), offset, codec))).toEqual(event.data);
    }
  });

  test('property: changing any one string of a plain copy, or its ledger version, without hashing again is refused', () => {
    // Every path to a string in the event (envelope fields, data, postings, metadata), or the version.
    const pathsOf = (value: unknown, path: (string | number)[] = []): (string | number)[][] => {
      if (typeof value === 'string') return [path];
      if (Array.isArray(value)) return value.flatMap((inner, index) => pathsOf(inner, [...path, index]));
      if (typeof value === 'object' && value !== null) return Object.entries(value).flatMap(([key, inner]) => pathsOf(inner, [...path, key]));
      return [];
    };
    fc.assert(
      fc.property(fc.nat({ max: stream.length - 1 }), fc.nat(), fc.string({ minLength: 1, maxLength: 3 }), (which, pick, suffix) => {
        const copy = plain(stream[which]!) as unknown as Record<string, unknown>;
        const paths = [...pathsOf(copy).filter((path) => path[0] !== 'hash'), ['ledgerVersion']];
        const path = paths[pick % paths.length]!;
        let holder = copy as Record<string | number, unknown>;
        for (const key of path.slice(0, -1)) holder = holder[key] as Record<string | number, unknown>;
        const last = path[path.length - 1]!;
        holder[last] = typeof holder[last] === 'number' ? (holder[last] as number) + 1 : `${String(holder[last])}${suffix}`;
        const event = copy as unknown as StoredEvent;
        expect(() => codec.verify(event)).toThrow(CorruptEventError);
        expect(() => appendableDataJson(event, 7, codec)).toThrow(InvalidInputError);
        try {
          appendableDataJson(event, 7, codec);
        } catch (error) {
          expect((error as InvalidInputError).issues[0]?.path).toEqual(['events', 7]);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('a copy hashed again after a change a reader would refuse is refused all the same', () => {
    const transfer = transferPosted;
    const faults: Partial<Omit<StoredEvent, 'hash'>>[] = [
      { type: 'TransferVanished' },
      { schemaVersion: 99 },
      { effectiveAt: new Date(Date.parse(transfer.recordedAt) + 1).toISOString() },
      { metadata: { actor: 'nul\u0000' } },
      { data: { ...transfer.data, reference: 'half \ud83d' } },
      { data: { ...transfer.data, postings: [] } },
    ];
    for (const fault of faults) {
      expect(() => codec.verify(rehashed(plain(transfer), fault)), JSON.stringify(fault)).toThrow(CorruptEventError);
    }
  });

  test('a currency registry of another copy of ledger-core that lacks a currency reads as this copy’s does: the same CorruptEventError message, its error as cause', async () => {
    const copy = await otherCopyOfErrors();
    const tokenEvent = plain(stream.find((event) => JSON.stringify(event.data).includes('TOKEN18')) as StoredEvent);
    const unknown = new copy.UnknownCurrencyError('TOKEN18');
    const foreign = new EventCodec({ currencies: { get: (): never => { throw unknown; } } as unknown as CurrencyRegistry });
    const own = new EventCodec({ currencies: new CurrencyRegistry() });
    const refusalOf = (reader: EventCodec): CorruptEventError => {
      try {
        reader.decode(tokenEvent);
      } catch (error) {
        return error as CorruptEventError;
      }
      throw new Error('decoded');
    };
    expect(refusalOf(own).message).toMatch(/unknown currency "TOKEN18"/);
    expect(refusalOf(foreign).message).toBe(refusalOf(own).message);
    expect(refusalOf(foreign).cause).toBe(unknown);
  });

  test('an event in a currency the verifying codec lacks is refused with a hint to give the store the ledger’s codec, and passes with it', () => {
    const tokenEvent = stream.find((event) => JSON.stringify(event.data).includes('TOKEN18'));
    expect(tokenEvent).toBeDefined();
    const copy = plain(tokenEvent as StoredEvent);
    const builtInOnly = new EventCodec({ currencies: new CurrencyRegistry() });
    expect(() => appendableDataJson(copy, 3, builtInOnly)).toThrow(/unknown currency.*give the store a codec that has them/is);
    expect(() => appendableDataJson(copy, 3, codec)).not.toThrow();
  });

  test('a verifier of another copy of ledger-core (a store option an application built with its own copy) refuses as InvalidInputError too, with the hint', async () => {
    const copy = await otherCopyOfErrors();
    const refusal = new copy.CorruptEventError('unknown currency', { ledgerVersion: 3 }, new copy.UnknownCurrencyError('TOKEN18'));
    expect(refusal).not.toBeInstanceOf(CorruptEventError);
    // Its own classes, its own private fields: another copy's EventCodec is not this one's type either.
    const verifier = { verify: (): never => { throw refusal; } } as unknown as EventCodec;
    const copied = plain(stream[0] as StoredEvent);
    expect(() => appendableDataJson(copied, 3, verifier)).toThrow(InvalidInputError);
    expect(() => appendableDataJson(copied, 3, verifier)).toThrow(/at events\.3: .*unknown currency.*give the store a codec that has them/is);
  });

  test('a value that is not an event is refused, not a TypeError', () => {
    for (const value of [null, undefined, 42, 'event', [], {}]) {
      expect(() => appendableDataJson(value as unknown as StoredEvent, 0, codec)).toThrow(InvalidInputError);
    }
  });
});

describe('UpcasterRegistry', () => {
  test('registering a second upcaster for the same type and version throws InvalidInputError (no limit was exceeded)', () => {
    const registry = new UpcasterRegistry().register('Thing', 1, (data) => data);
    const error = thrown(() => registry.register('Thing', 1, (data) => data));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error).not.toBeInstanceOf(LimitExceededError);
    expect(error).toMatchObject({ code: 'invalid_input', issues: [{ path: ['fromVersion'], message: expect.stringMatching(/Thing v1 → v2 is already registered/) }] });
    expect(() => registry.register('Thing', 2, (data) => data)).not.toThrow();
  });

  test("a step the library already owns is refused in any registry, with InvalidInputError saying so; the library's own keeps applying", () => {
    for (const registry of [new UpcasterRegistry(), builtInUpcasters(), new UpcasterRegistry().register('AccountFrozen', 1, (data) => data)]) {
      const error = thrown(() => registry.register('TransferPosted', 1, () => ({ replaced: true })));
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as InvalidInputError).issues).toEqual([{ path: ['fromVersion'], message: expect.stringMatching(/TransferPosted v1 → v2 is a built-in step: it always applies and cannot be replaced/) }]);
      const v1 = { transferId: 'x', debitAccountId: 'a', creditAccountId: 'b', amount: '1.00', currency: 'EUR' };
      expect(registry.upcast('TransferPosted', 1, 2, v1)).toMatchObject({ postings: [{ accountId: 'a', side: 'debit' }, { accountId: 'b', side: 'credit' }] });
    }
  });

  test('a step registered with a type, version or function of the wrong shape is refused with InvalidInputError at that argument', () => {
    const step = (data: JsonObject): JsonObject => data;
    const cases: [() => unknown, string][] = [
      [() => new UpcasterRegistry().register('', 1, step), 'type'],
      [() => new UpcasterRegistry().register('T'.repeat(65), 1, step), 'type'],
      [() => new UpcasterRegistry().register(7 as unknown as string, 1, step), 'type'],
      [() => new UpcasterRegistry().register('Thing', -1, step), 'fromVersion'],
      [() => new UpcasterRegistry().register('Thing', 1.5, step), 'fromVersion'],
      [() => new UpcasterRegistry().register('Thing', Number.MAX_SAFE_INTEGER + 1, step), 'fromVersion'],
      [() => new UpcasterRegistry().register('Thing', 1, 'step' as unknown as typeof step), 'upcast'],
    ];
    for (const [call, path] of cases) expect(thrown(call), path).toMatchObject({ name: 'InvalidInputError', issues: [{ path: [path] }] });
    expect(() => new UpcasterRegistry().register('T'.repeat(64), 0, step)).not.toThrow();
  });

  test('upcasting chains one step per version, in order, up to the target', () => {
    const registry = new UpcasterRegistry()
      .register('Thing', 1, (data) => ({ ...data, steps: [...((data['steps'] as JsonValue[] | undefined) ?? []), 'v1→v2'] }))
      .register('Thing', 2, (data) => ({ ...data, steps: [...((data['steps'] as JsonValue[] | undefined) ?? []), 'v2→v3'] }));
    expect(registry.upcast('Thing', 1, 3, {})).toEqual({ steps: ['v1→v2', 'v2→v3'] });
    expect(registry.upcast('Thing', 2, 3, { steps: [] })).toEqual({ steps: ['v2→v3'] });
    expect(registry.upcast('Thing', 3, 3, { same: true })).toEqual({ same: true });
  });

  test('upcasting returns undefined for a missing step, a downgrade or more than UPCAST_STEPS_MAX steps', () => {
    const registry = new UpcasterRegistry().register('Thing', 1, (data) => data);
    expect(registry.upcast('Thing', 1, 3, {})).toBeUndefined();
    expect(registry.upcast('Other', 1, 2, {})).toBeUndefined();
    expect(registry.upcast('Thing', 3, 2, {})).toBeUndefined();
    const long = new UpcasterRegistry();
    for (let version = 1; version <= UPCAST_STEPS_MAX + 1; version += 1) long.register('Thing', version, (data) => data);
    expect(long.upcast('Thing', 1, 1 + UPCAST_STEPS_MAX, {})).toEqual({});
    expect(long.upcast('Thing', 1, 2 + UPCAST_STEPS_MAX, {})).toBeUndefined();
  });
});

describe('canonicalJson', () => {
  test('sorts object keys at every depth and writes no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { z: true, y: null }], c: 'x' } })).toBe('{"a":{"c":"x","d":[2,{"y":null,"z":true}]},"b":1}');
  });

  test('is independent of key order', () => {
    expect(canonicalJson({ a: 1, b: { c: 2, d: 3 } })).toBe(canonicalJson({ b: { d: 3, c: 2 }, a: 1 }));
  });

  test('property: any reordering of the keys of any JSON object encodes to the same text', () => {
    const json = fc.letrec<{ value: JsonValue }>((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.string(),
        fc.boolean(),
        fc.constant(null),
        fc.maxSafeInteger(),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(fc.string(), tie('value'), { maxKeys: 5 }),
      ),
    })).value;
    const reverseKeys = (value: JsonValue): JsonValue => {
      if (value === null || typeof value !== 'object') return value;
      if (Array.isArray(value)) return value.map(reverseKeys);
      // fromEntries defines own properties, so even a "__proto__" key stays a plain key.
      return Object.fromEntries(Object.keys(value).reverse().map((key) => [key, reverseKeys((value as JsonObject)[key] as JsonValue)]));
    };
    fc.assert(
      fc.property(json, (value) => {
        expect(canonicalJson(reverseKeys(value))).toBe(canonicalJson(value));
        expect(JSON.parse(canonicalJson(value))).toEqual(value);
      }),
      { numRuns: 300 },
    );
  });

  test('leaves out undefined fields and refuses non-integer numbers', () => {
    expect(canonicalJson({ a: 1, b: undefined } as unknown as JsonObject)).toBe('{"a":1}');
    expect(() => canonicalJson({ amount: 10.5 })).toThrow(TypeError);
    expect(() => canonicalJson(Number.MAX_SAFE_INTEGER + 1)).toThrow(TypeError);
  });

  test('refuses, at any depth, every value it cannot write exactly (a bigint, a function, a symbol, a non-finite number, a Date, Map or Set, undefined itself) instead of writing {} or null', () => {
    const inexpressible: unknown[] = [1n, 0n, -(2n ** 80n), () => 1, function named() {}, Symbol('x'), Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0.5, new Date(0), new Map([['a', 1]]), new Set([1])];
    for (const value of inexpressible) {
      const name = typeof value === 'symbol' ? 'symbol' : String(value);
      expect(() => canonicalJson(value as JsonValue), name).toThrow(TypeError);
      expect(() => canonicalJson({ a: 'x', nested: { value } } as unknown as JsonObject), `nested ${name}`).toThrow(TypeError);
      expect(() => canonicalJson([1, value] as unknown as JsonValue), `in an array ${name}`).toThrow(TypeError);
    }
    expect(() => canonicalJson(undefined as unknown as JsonValue)).toThrow(TypeError);
  });

  test('inside a value, undefined is written as JSON.stringify writes it: left out of an object, null in an array', () => {
    const value = { a: [1, undefined, 2], b: undefined, c: { d: undefined } } as unknown as JsonObject;
    expect(canonicalJson(value)).toBe('{"a":[1,null,2],"c":{}}');
    expect(canonicalJson(value)).toBe(JSON.stringify(value));
  });

  test('the event hash does not depend on the key order a store returns', () => {
    const reordered: StoredEvent = { ...transferPosted, data: { metadata: { k: 'v' }, reference: 'inv-1', postings: transferPosted.data['postings'] as JsonValue, transferId: 't1' } };
    expect(canonicalEncoding(reordered)).toBe(canonicalEncoding(transferPosted));
    expect(hashEvent(reordered)).toBe(transferPosted.hash);
  });
});

describe('canonicalDataJson (the fast path for transfer-like data)', () => {
  const text = fc.string({ unit: 'binary', maxLength: 12 });
  const posting = fc.oneof(
    { weight: 4, arbitrary: fc.record({ accountId: text, side: fc.constantFrom('debit', 'credit'), amount: fc.stringMatching(/^\d{1,6}(\.\d{1,2})?$/), currency: fc.constantFrom('EUR', 'USD', 'JPY') }) },
    // Shapes the fast path must hand to the generic walk: an extra key, a missing key, a number.
    { weight: 1, arbitrary: fc.record({ accountId: text, side: text, amount: text, currency: text, extra: text }) },
    { weight: 1, arbitrary: fc.record({ accountId: text, amount: text, currency: text }) },
    { weight: 1, arbitrary: fc.record({ accountId: text, side: text, amount: fc.maxSafeInteger(), currency: text }) },
  );
  const data = fc.record(
    {
      transferId: text,
      pendingId: text,
      postings: fc.array(posting, { maxLength: 4 }),
      metadata: fc.dictionary(text, text, { maxKeys: 4 }),
      reference: text,
      reversalOf: text,
      timeoutMs: fc.maxSafeInteger(),
      other: text,
    },
    { requiredKeys: [] },
  );

  test('property: gives exactly the bytes of canonicalJson for transfer-like data, well-formed or not, in any key order', () => {
    fc.assert(
      fc.property(data, fc.boolean(), (value, reversed) => {
        const ordered = reversed ? Object.fromEntries(Object.entries(value).reverse()) : value;
        expect(canonicalDataJson(ordered as JsonObject)).toBe(canonicalJson(value as JsonObject));
      }),
      { numRuns: 1_000 },
    );
  });

  test('takes data that is not an object (a tampered event) as canonicalJson does', () => {
    for (const value of [null, 'text', 7, [1, 2]]) expect(canonicalDataJson(value as unknown as JsonObject)).toBe(canonicalJson(value as JsonValue));
    // Absent data, which canonicalJson refuses, is written null as it always was: its hash stays.
    expect(canonicalDataJson(undefined as unknown as JsonObject)).toBe('null');
  });

  test('reads own keys only, as canonicalJson does: a prototype cannot add a field or a posting key', () => {
    const posting = Object.assign(Object.create({ side: 'debit' }) as Record<string, string>, { accountId: 'a', amount: '1.00', currency: 'EUR', extra: 'x' });
    const data = Object.assign(Object.create({ reference: 'from-prototype' }) as Record<string, JsonValue>, { transferId: 't', postings: [posting], metadata: {} });
    expect(canonicalDataJson(data)).toBe(canonicalJson(data));
    expect(canonicalDataJson(data)).not.toContain('from-prototype');
  });

  test('refuses what canonicalJson refuses (a fractional number)', () => {
    expect(() => canonicalDataJson({ postings: [], timeoutMs: 1.5 })).toThrow(TypeError);
  });
});

describe('verifyChain', () => {
  test('a chain written by the codec verifies, reporting its length and last link', async () => {
    const result = await verifyChain(stream);
    expect(result).toEqual({ ok: true, eventCount: stream.length, lastHash: (stream.at(-1) as StoredEvent).hash, lastVersion: stream.length });
  });

  test('a chain streamed as an async iterable verifies the same way', async () => {
    async function* pages(): AsyncGenerator<StoredEvent> {
      for (const event of stream) yield event;
    }
    expect(await verifyChain(pages())).toMatchObject({ ok: true, eventCount: stream.length });
  });

  test('verification can start from a trusted version and hash instead of the genesis', async () => {
    const start = stream[4] as StoredEvent;
    expect(await verifyChain(stream.slice(5), { version: start.ledgerVersion, hash: start.hash })).toMatchObject({ ok: true, eventCount: stream.length - 5 });
    expect(await verifyChain(stream.slice(5))).toMatchObject({ ok: false, brokenAt: { ledgerVersion: 6, reason: 'version_gap' } });
  });

  test('altering an event’s data is reported as hash_mismatch at that event', async () => {
    const tampered = stream.map((event) => (event.ledgerVersion === 7 ? { ...event, data: { ...event.data, reference: 'inv-2' } } : event));
    const result = await verifyChain(tampered);
    expect(result).toMatchObject({ ok: false, eventCount: 6, brokenAt: { ledgerVersion: 7, reason: 'hash_mismatch', actual: transferPosted.hash } });
  });

  test('altering an envelope field, such as the recorded time, is reported as hash_mismatch', async () => {
    const tampered = stream.map((event) => (event.ledgerVersion === 3 ? { ...event, recordedAt: new Date(T0 + 2_001).toISOString() } : event));
    expect(await verifyChain(tampered)).toMatchObject({ ok: false, brokenAt: { ledgerVersion: 3, reason: 'hash_mismatch' } });
  });

  test('an event re-hashed after being altered breaks the next link with previous_hash_mismatch', async () => {
    const tampered = stream.map((event) => (event.ledgerVersion === 7 ? rehashed(event, { data: { ...event.data, reference: 'inv-2' } }) : event));
    const result = await verifyChain(tampered);
    expect(result).toMatchObject({
      ok: false,
      eventCount: 7,
      brokenAt: { ledgerVersion: 8, reason: 'previous_hash_mismatch', expected: (tampered[6] as StoredEvent).hash, actual: transferPosted.hash },
    });
  });

  test('a removed event is reported as version_gap at the event after it', async () => {
    const result = await verifyChain([...stream.slice(0, 4), ...stream.slice(5)]);
    expect(result).toMatchObject({ ok: false, eventCount: 4, brokenAt: { ledgerVersion: 6, reason: 'version_gap', expected: '5', actual: '6' } });
  });

  test('two events swapped are reported at the first one out of place', async () => {
    const swapped = [...stream];
    [swapped[2], swapped[3]] = [swapped[3] as StoredEvent, swapped[2] as StoredEvent];
    expect(await verifyChain(swapped)).toMatchObject({ ok: false, brokenAt: { ledgerVersion: 4, reason: 'version_gap' } });
  });

  test('an event whose first hash does not start from the genesis is reported as previous_hash_mismatch', async () => {
    const first = rehashed(stream[0] as StoredEvent, { previousHash: 'f'.repeat(64) });
    expect(await verifyChain([first])).toMatchObject({ ok: false, brokenAt: { ledgerVersion: 1, reason: 'previous_hash_mismatch', expected: GENESIS_HASH } });
  });

  test('an event that cannot even be encoded (a float in its data) is reported as hash_mismatch, not thrown', async () => {
    const tampered = stream.map((event) => (event.ledgerVersion === 2 ? { ...event, data: { ...event.data, amount: 1.5 } } : event));
    expect(await verifyChain(tampered)).toMatchObject({ ok: false, brokenAt: { ledgerVersion: 2, reason: 'hash_mismatch', expected: '<unencodable>' } });
  });

  test('an empty stream verifies, ending where it started', async () => {
    expect(await verifyChain([])).toEqual({ ok: true, eventCount: 0, lastHash: GENESIS_HASH, lastVersion: 0 });
  });

  test('arguments of the wrong shape reject with InvalidInputError at the argument, not a TypeError', async () => {
    const pathOf = async (run: () => Promise<unknown>): Promise<unknown> => {
      const error = await run().then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(InvalidInputError);
      return (error as InvalidInputError).issues.map((issue) => issue.path);
    };
    const start = stream[4] as StoredEvent;
    for (const bad of [null, 'genesis', 0]) expect(await pathOf(() => verifyChain(stream, bad as never)), String(bad)).toEqual([['start']]);
    for (const version of [-1, 1.5, '5', undefined, Number.NaN]) {
      expect(await pathOf(() => verifyChain(stream.slice(5), { version, hash: start.hash } as never)), String(version)).toEqual([['start', 'version']]);
    }
    for (const hash of [undefined, null, 7, 'abc', start.hash.toUpperCase(), `${start.hash}0`]) {
      expect(await pathOf(() => verifyChain(stream.slice(5), { version: start.ledgerVersion, hash } as never)), String(hash)).toEqual([['start', 'hash']]);
    }
    for (const events of [null, undefined, 42, 'events', {}]) expect(await pathOf(() => verifyChain(events as never)), String(events)).toEqual([['events']]);
    expect(await pathOf(() => verifyChain([stream[0] as StoredEvent, null as never]))).toEqual([['events', 1]]);
    // The explicit genesis is the default.
    expect(await verifyChain(stream, { version: 0, hash: GENESIS_HASH })).toMatchObject({ ok: true, eventCount: stream.length });
  });
});

describe('canonicalEncoding', () => {
  test('is byte-identical to canonicalJson of the envelope object without the hashes', () => {
    fc.assert(
      fc.property(
        fc.record({
          eventId: fc.uuid(),
          tenantId: fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/),
          ledgerId: fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/),
          ledgerVersion: fc.integer({ min: 1, max: 1_000_000 }),
          type: fc.constantFrom('TransferPosted', 'AccountOpened'),
          schemaVersion: fc.integer({ min: 1, max: 3 }),
          data: fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null))),
          recordedAt: fc.constant('2026-01-01T00:00:00.000Z'),
          effectiveAt: fc.constant('2025-12-31T23:59:59.999Z'),
          correlationId: fc.option(fc.string(), { nil: null }),
          causationId: fc.option(fc.string(), { nil: null }),
          metadata: fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string()),
          previousHash: fc.constant('0'.repeat(64)),
        }),
        (event) => {
          const { previousHash: _previousHash, ...envelope } = event;
          expect(canonicalEncoding(event)).toBe(canonicalJson(envelope));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('hashEvent and dataJsonOf', () => {
  test('hashEvent is sha256 of the previous hash bytes then the canonical encoding, for long events and non-hex previous hashes too', async () => {
    const { createHash } = await import('node:crypto');
    const reference = (event: Omit<StoredEvent, 'hash'>): string =>
      createHash('sha256').update(Buffer.from(event.previousHash, 'hex')).update(canonicalEncoding(event)).digest('hex');
    fc.assert(
      fc.property(
        fc.record({
          eventId: fc.uuid(),
          tenantId: fc.constant('acme'),
          ledgerId: fc.constant('main'),
          ledgerVersion: fc.integer({ min: 1, max: 1_000_000 }),
          type: fc.constant('TransferPosted'),
          schemaVersion: fc.constant(2),
          // Up to ~100 kB of text, beyond the reused hashing buffer, with non-ASCII characters.
          data: fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ unit: 'grapheme' }), fc.string({ minLength: 20_000, maxLength: 100_000 }), fc.integer())),
          recordedAt: fc.constant('2026-01-01T00:00:00.000Z'),
          effectiveAt: fc.constant('2026-01-01T00:00:00.000Z'),
          correlationId: fc.constant(null),
          causationId: fc.constant(null),
          metadata: fc.constant({}),
          previousHash: fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.string({ maxLength: 70 })),
        }),
        (event) => {
          expect(hashEvent(event)).toBe(reference(event));
        },
      ),
      { numRuns: 200 },
    );
  });

  test('an event this process encoded decodes to the event it was encoded from, and a copy of it (as read back from a store) decodes to an equal one', () => {
    const opened: LedgerEvent = {
      type: 'AccountOpened',
      accountId: 'till',
      currency: 'EUR',
      accountType: 'asset',
      flags: { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: false },
      metadata: {},
    };
    const stored = chain([{ event: opened, effectiveAtMs: T0 }])[0] as StoredEvent;
    const fromMemory = codec.decode(stored);
    expect(fromMemory.event).toBe(opened);
    const fromStore = codec.decode(JSON.parse(JSON.stringify(stored)) as StoredEvent);
    expect(fromStore).toEqual(fromMemory);
    expect(fromStore.event).not.toBe(opened);
  });

  test('dataJsonOf gives the codec’s canonical text for an event it encoded, JSON.stringify otherwise, and both parse back to the same value', () => {
    const opened: LedgerEvent = {
      type: 'AccountOpened',
      accountId: 'cash',
      currency: 'EUR',
      accountType: 'asset',
      flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false },
      metadata: { owner: 'Zoë' },
    };
    const stored = chain([{ event: opened, effectiveAtMs: T0 }])[0] as StoredEvent;
    expect(dataJsonOf(stored)).toBe(canonicalJson(stored.data));
    expect(JSON.parse(dataJsonOf(stored))).toEqual(stored.data);
    // A copy (as a store returns it) is a plain object: no private text, the same fields.
    const copy = { ...stored };
    expect(copy).toEqual(stored);
    expect(JSON.stringify(copy)).toBe(JSON.stringify(stored));
    expect(dataJsonOf(copy)).toBe(JSON.stringify(copy.data));
  });
});
