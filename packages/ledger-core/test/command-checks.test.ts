import fc from 'fast-check';
import { describe, expect, it, test } from 'vitest';
import {
  AMOUNT_MINOR_MAX,
  CurrencyRegistry,
  InMemoryEventStore,
  InvalidInputError,
  LedgerWriter,
  UnknownCurrencyError,
  parseCommand,
  parseInstantMs,
  type CommandContext,
  type CommandResult,
  type LedgerCommand,
} from '@ledgerkit/ledger-core';

// A command built in code (not by parseCommand) goes through the writer's admission check: one
// that could only become an event the ledger cannot read back is refused with a typed error
// before it is queued; nothing of it is written and the commands batched with it go ahead.

const TENANT = 'acme';
const LEDGER = 'main';
const T0 = Date.parse('2025-06-01T12:00:00.000Z');
const currencies = new CurrencyRegistry();

/** A writer over a fresh store, with accounts `cash` and `alice`, a posted `p1` and an open hold `h1`. */
async function seededWriter(): Promise<{ store: InMemoryEventStore; writer: LedgerWriter }> {
  const store = new InMemoryEventStore();
  let now = T0;
  const writer = await LedgerWriter.open({ store, tenantId: TENANT, ledgerId: LEDGER, clock: () => (now += 1), currencies });
  for (const input of [
    { accountId: 'cash', currency: 'EUR', type: 'asset' },
    { accountId: 'alice', currency: 'EUR', type: 'liability' },
  ]) {
    expect((await writer.submit(parseCommand.openAccount(input, currencies))).ok).toBe(true);
  }
  expect((await writer.submit(transfer('p1'))).ok).toBe(true);
  expect((await writer.submit({ ...transfer('h1'), pending: { timeoutMs: 3_600_000 } })).ok).toBe(true);
  return { store, writer };
}

function transfer(transferId: string): Extract<LedgerCommand, { kind: 'transfer' }> {
  return parseCommand.transfer({ transferId, debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' }, currencies);
}

/** Valid commands of every kind a caller may build, against {@link seededWriter}'s ledger. */
function validCommands(): Record<string, LedgerCommand> {
  return {
    transfer: transfer('t-new'),
    hold: { ...transfer('h-new'), pending: { timeoutMs: 60_000 } },
    postPending: { kind: 'postPending', transferId: 'pp-new', pendingId: 'h1', amount: undefined, currency: undefined, effectiveAtMs: undefined, metadata: {} },
    voidPending: { kind: 'voidPending', transferId: 'v-new', pendingId: 'h1', effectiveAtMs: undefined, metadata: {} },
    reverseTransfer: { kind: 'reverseTransfer', transferId: 'r-new', reversalOf: 'p1', effectiveAtMs: undefined, reference: undefined, metadata: {} },
    openAccount: { kind: 'openAccount', accountId: 'bob', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: false }, metadata: {} },
    freezeAccount: { kind: 'freezeAccount', accountId: 'alice', reason: 'review' },
    unfreezeAccount: { kind: 'unfreezeAccount', accountId: 'alice' },
    closeAccount: { kind: 'closeAccount', accountId: 'alice' },
    linked: { kind: 'linked', commands: [transfer('l-1'), transfer('l-2')] },
  };
}

/** Reopens the ledger from its store (every event decoded again) and compares it with the writer. */
async function expectReadableAgain(store: InMemoryEventStore, writer: LedgerWriter): Promise<void> {
  await writer.close();
  const reopened = await LedgerWriter.open({ store, tenantId: TENANT, ledgerId: LEDGER, currencies, snapshotEveryEvents: 0 });
  try {
    expect(reopened.version).toBe(writer.version);
    expect(reopened.lastHash).toBe(writer.lastHash);
    expect(reopened.accounts()).toEqual(writer.accounts());
  } finally {
    await reopened.close();
  }
}

const PROTO_METADATA = JSON.parse('{"__proto__":"x","k":"v"}') as Record<string, string>;
const SEVENTEEN_KEYS = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));

/** [case, command, context, path of the issue] */
const REFUSED: readonly [string, (valid: Record<string, LedgerCommand>) => unknown, CommandContext | undefined, readonly (string | number)[]][] = [
  ['transfer id off its pattern', (v) => ({ ...v['transfer'], transferId: 'has space' }), undefined, ['transferId']],
  ['transfer id of 129 characters', (v) => ({ ...v['transfer'], transferId: 'x'.repeat(129) }), undefined, ['transferId']],
  ['no postings', (v) => ({ ...v['transfer'], postings: [] }), undefined, ['postings']],
  ['33 postings', (v) => ({ ...v['transfer'], postings: Array.from({ length: 33 }, () => (v['transfer'] as unknown as { postings: unknown[] }).postings[0]) }), undefined, ['postings']],
  ['a posting side that is neither', (v) => ({ ...v['transfer'], postings: [{ accountId: 'cash', side: 'up', amount: 1n, currency: 'EUR' }] }), undefined, ['postings', 0, 'side']],
  ['a number amount', (v) => ({ ...v['transfer'], postings: [{ accountId: 'cash', side: 'debit', amount: 100, currency: 'EUR' }] }), undefined, ['postings', 0, 'amount']],
  [
    'a balanced transfer of AMOUNT_MINOR_MAX + 1 minor units (its event would be refused as too_large when read back)',
    (v) => ({
      ...v['transfer'],
      postings: [
        { accountId: 'cash', side: 'debit', amount: AMOUNT_MINOR_MAX + 1n, currency: 'EUR' },
        { accountId: 'alice', side: 'credit', amount: AMOUNT_MINOR_MAX + 1n, currency: 'EUR' },
      ],
    }),
    undefined,
    ['postings', 0, 'amount'],
  ],
  ['a lower-case currency', (v) => ({ ...v['transfer'], postings: [{ accountId: 'cash', side: 'debit', amount: 1n, currency: 'eur' }] }), undefined, ['postings', 0, 'currency']],
  ['a posting account off its pattern', (v) => ({ ...v['transfer'], postings: [{ accountId: '', side: 'debit', amount: 1n, currency: 'EUR' }] }), undefined, ['postings', 0, 'accountId']],
  ['a hold timeout of 0', (v) => ({ ...v['hold'], pending: { timeoutMs: 0 } }), undefined, ['pending', 'timeoutMs']],
  ['a hold timeout past a year', (v) => ({ ...v['hold'], pending: { timeoutMs: 367 * 86_400_000 } }), undefined, ['pending', 'timeoutMs']],
  ['effectiveAtMs NaN', (v) => ({ ...v['transfer'], effectiveAtMs: Number.NaN }), undefined, ['effectiveAtMs']],
  ['effectiveAtMs fractional', (v) => ({ ...v['transfer'], effectiveAtMs: T0 + 0.5 }), undefined, ['effectiveAtMs']],
  ['a reference of 257 characters', (v) => ({ ...v['transfer'], reference: 'r'.repeat(257) }), undefined, ['reference']],
  ['metadata undefined', (v) => ({ ...v['transfer'], metadata: undefined }), undefined, ['metadata']],
  ['a metadata value that is a number', (v) => ({ ...v['transfer'], metadata: { a: 5 } }), undefined, ['metadata', 'a']],
  ['17 metadata keys', (v) => ({ ...v['transfer'], metadata: SEVENTEEN_KEYS }), undefined, ['metadata']],
  ['a metadata key __proto__', (v) => ({ ...v['transfer'], metadata: PROTO_METADATA }), undefined, ['metadata', '__proto__']],
  ['metadata of a class', (v) => ({ ...v['transfer'], metadata: new Date(T0) }), undefined, ['metadata']],
  ['a partial amount that is a string', (v) => ({ ...v['postPending'], amount: '1.00', currency: 'EUR' }), undefined, ['amount']],
  ['a partial amount without its currency', (v) => ({ ...v['postPending'], amount: 40n, currency: undefined }), undefined, ['currency']],
  ['a full post that names a currency', (v) => ({ ...v['postPending'], amount: undefined, currency: 'EUR' }), undefined, ['currency']],
  ['a pending id off its pattern', (v) => ({ ...v['voidPending'], pendingId: '-h1' }), undefined, ['pendingId']],
  ['a reversal of nothing', (v) => ({ ...v['reverseTransfer'], reversalOf: undefined }), undefined, ['reversalOf']],
  ['an account type that is none', (v) => ({ ...v['openAccount'], type: 'savings' }), undefined, ['type']],
  ['a flag that is not a boolean', (v) => ({ ...v['openAccount'], flags: { debitsMustNotExceedCredits: 'yes', creditsMustNotExceedDebits: false } }), undefined, ['flags', 'debitsMustNotExceedCredits']],
  ['a freeze reason of 257 characters', (v) => ({ ...v['freezeAccount'], reason: 'x'.repeat(257) }), undefined, ['reason']],
  ['a linked group with a broken member', (v) => ({ kind: 'linked', commands: [transfer('l-1'), { ...transfer('l-2'), transferId: '' }] }), undefined, ['commands', 1, 'transferId']],
  ['a linked group inside a linked group', (v) => ({ kind: 'linked', commands: [v['linked']] }), undefined, ['commands', 0, 'kind']],
  ['an empty linked group', () => ({ kind: 'linked', commands: [] }), undefined, ['commands']],
  // parseCommand.linked refuses these too: the second member would be taken as a retry of the first.
  ['a linked group whose two transfers share a transfer id', () => ({ kind: 'linked', commands: [transfer('l-1'), transfer('l-1')] }), undefined, ['commands', 1, 'transferId']],
  ['a linked group whose void reuses its hold\'s transfer id', (v) => ({ kind: 'linked', commands: [v['hold'], transfer('l-2'), { ...v['voidPending'], transferId: 'h-new', pendingId: 'h-new' }] }), undefined, ['commands', 2, 'transferId']],
  ['an unknown kind', () => ({ kind: 'teleport' }), undefined, ['kind']],
  ['no command at all', () => null, undefined, []],
  ['a correlation id of 129 characters', (v) => v['transfer'], { correlationId: 'c'.repeat(129) }, ['context', 'correlationId']],
  ['a causation id that is a number', (v) => v['transfer'], { causationId: 7 as unknown as string }, ['context', 'causationId']],
  ['context metadata with an empty key', (v) => v['transfer'], { metadata: { '': 'x' } }, ['context', 'metadata', '']],
  // Text PostgreSQL would refuse (NUL) or rewrite (an unpaired surrogate becomes U+FFFD, and the
  // event no longer matches its hash).
  ['a NUL in a reference', (v) => ({ ...v['transfer'], reference: 'inv\u00001' }), undefined, ['reference']],
  ['an unpaired surrogate in a reference', (v) => ({ ...v['transfer'], reference: 'inv\ud8001' }), undefined, ['reference']],
  ['a NUL in a metadata value', (v) => ({ ...v['transfer'], metadata: { note: 'a\u0000b' } }), undefined, ['metadata', 'note']],
  ['an unpaired surrogate in a metadata key', (v) => ({ ...v['openAccount'], metadata: { 'k\udc00': 'v' } }), undefined, ['metadata', 'k\udc00']],
  ['a NUL in a freeze reason', (v) => ({ ...v['freezeAccount'], reason: 'x\u0000' }), undefined, ['reason']],
  ['an unpaired surrogate in a correlation id', (v) => v['transfer'], { correlationId: 'req-\udc00' }, ['context', 'correlationId']],
  ['a NUL in a causation id', (v) => v['transfer'], { causationId: 'req-\u0000' }, ['context', 'causationId']],
  ['a NUL in context metadata', (v) => v['transfer'], { metadata: { 'api.client': 'c\u0000' } }, ['context', 'metadata', 'api.client']],
];

describe('LedgerWriter.submit refuses commands that could not be read back', () => {
  it.each(REFUSED)('%s: InvalidInputError at its path, nothing written, the batch goes ahead', async (_name, build, context, path) => {
    const { store, writer } = await seededWriter();
    const before = writer.version;
    const refused = writer.submit(build(validCommands()) as LedgerCommand, context);
    const good = writer.submit(transfer('neighbour'));
    await expect(refused).rejects.toBeInstanceOf(InvalidInputError);
    const error = (await refused.catch((e: unknown) => e)) as InvalidInputError;
    expect(error.code).toBe('invalid_input');
    expect(error.issues[0]?.path).toEqual(path);
    expect((await good).ok).toBe(true);
    expect(writer.version).toBe(before + 1);
    await expectReadableAgain(store, writer);
  });

  it('takes a transfer of exactly AMOUNT_MINOR_MAX minor units, the largest amount an event can be read back with', async () => {
    const { store, writer } = await seededWriter();
    const largest = {
      ...transfer('t-largest'),
      postings: [
        { accountId: 'cash', side: 'debit', amount: AMOUNT_MINOR_MAX, currency: 'EUR' },
        { accountId: 'alice', side: 'credit', amount: AMOUNT_MINOR_MAX, currency: 'EUR' },
      ],
    } as const;
    expect(await writer.submit(largest)).toMatchObject({ ok: true, duplicate: false });
    expect(writer.account('alice')?.creditsPosted).toBe(AMOUNT_MINOR_MAX + 100n);
    await expectReadableAgain(store, writer);
  });

  it('refuses an account in a currency the registry lacks with UnknownCurrencyError', async () => {
    const { store, writer } = await seededWriter();
    const before = writer.version;
    const refused = writer.submit({ ...(validCommands()['openAccount'] as Extract<LedgerCommand, { kind: 'openAccount' }>), currency: 'ZZZ9' });
    await expect(refused).rejects.toBeInstanceOf(UnknownCurrencyError);
    expect(writer.version).toBe(before);
    await expectReadableAgain(store, writer);
  });

  it('takes every valid kind of command as before', async () => {
    const valid = validCommands();
    for (const [kind, command] of Object.entries(valid)) {
      const { store, writer } = await seededWriter();
      const result: CommandResult = await writer.submit(command, { correlationId: 'c1', causationId: 'c0', metadata: { 'api.client': 'tests' } });
      // closeAccount of an account with a balance is a business rejection, not an input error.
      if (kind === 'closeAccount') expect(result).toMatchObject({ ok: false, code: 'account_not_empty' });
      else if (kind === 'unfreezeAccount') expect(result).toMatchObject({ ok: false, code: 'account_not_frozen' });
      else expect(result.ok).toBe(true);
      await expectReadableAgain(store, writer);
    }
  });
});

describe('LedgerWriter.open refuses ids that every event would carry', () => {
  it.each([
    ['tenantId', { tenantId: 'bad tenant', ledgerId: LEDGER }],
    ['tenantId', { tenantId: 't'.repeat(129), ledgerId: LEDGER }],
    ['ledgerId', { tenantId: TENANT, ledgerId: '-main' }],
    ['ledgerId', { tenantId: TENANT, ledgerId: '' }],
  ] as const)('%s %j: InvalidInputError, nothing written', async (field, ids) => {
    const store = new InMemoryEventStore();
    const opening = LedgerWriter.open({ store, ...ids });
    await expect(opening).rejects.toBeInstanceOf(InvalidInputError);
    expect(((await opening.catch((e: unknown) => e)) as InvalidInputError).issues[0]?.path).toEqual([field]);
    const writer = await LedgerWriter.open({ store, tenantId: TENANT, ledgerId: LEDGER });
    expect(writer.version).toBe(0);
    await writer.close();
  });
});

/** Values a broken field may take: wrong types, off-pattern and over-limit strings, odd numbers. */
const junkArb = fc.oneof(
  fc.constantFrom<unknown>(
    undefined,
    null,
    '',
    ' ',
    'x'.repeat(129),
    'r'.repeat(257),
    'has space',
    '-lead',
    'eur',
    'EUR',
    'debit',
    'credit',
    'asset',
    0,
    -1,
    1.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    2 ** 53,
    T0,
    T0 - 0.5,
    8.64e15 + 1,
    0n,
    -5n,
    1n,
    10n ** 70n,
    true,
    [],
    {},
    { timeoutMs: 0 },
    { timeoutMs: 1_000 },
    [{ accountId: 'cash', side: 'debit', amount: 1n, currency: 'EUR' }],
    [{ accountId: 'cash', side: 'debit', amount: 1n, currency: 'EUR' }, { accountId: 'alice', side: 'credit', amount: 1n, currency: 'EUR' }],
    PROTO_METADATA,
    SEVENTEEN_KEYS,
    { a: 'x'.repeat(513) },
    Object.create({ inherited: 'x' }) as object,
    new Date(T0),
  ),
  fc.anything(),
  fc.dictionary(fc.string({ maxLength: 70 }), fc.oneof(fc.string({ maxLength: 600 }), fc.anything()), { maxKeys: 18 }),
);

/** Where a command may be broken: a top-level field, a field of a posting, or the context. */
const breakArb = fc.record({
  kind: fc.constantFrom('transfer', 'hold', 'postPending', 'voidPending', 'reverseTransfer', 'openAccount', 'freezeAccount', 'unfreezeAccount', 'closeAccount', 'linked'),
  where: fc.constantFrom('command', 'posting', 'context', 'member'),
  field: fc.constantFrom(
    'kind',
    'transferId',
    'pendingId',
    'reversalOf',
    'accountId',
    'postings',
    'pending',
    'effectiveAtMs',
    'reference',
    'metadata',
    'amount',
    'currency',
    'type',
    'flags',
    'reason',
    'commands',
    'side',
    'correlationId',
    'causationId',
  ),
  value: junkArb,
});

type Mutable = Record<string, unknown>;

function broken(spec: { kind: string; where: string; field: string; value: unknown }): { command: unknown; context: unknown } {
  const command = structuredClone(validCommands()[spec.kind]) as unknown as Mutable;
  let context: unknown = { correlationId: 'c1', metadata: { 'api.client': 'tests' } };
  if (spec.where === 'context') context = { ...(context as Mutable), [spec.field]: spec.value };
  else if (spec.where === 'posting' && Array.isArray(command['postings'])) (command['postings'] as Mutable[])[0] = { ...(command['postings'] as Mutable[])[0], [spec.field]: spec.value };
  else if (spec.where === 'member' && Array.isArray(command['commands'])) (command['commands'] as Mutable[])[1] = { ...(command['commands'] as Mutable[])[1], [spec.field]: spec.value };
  else command[spec.field] = spec.value;
  return { command, context };
}

describe('the admission check and decide together never let an unreadable event through', () => {
  test('a randomly broken command is refused, rejected or applied, and the ledger reads back the same', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(breakArb, { minLength: 1, maxLength: 4 }), async (specs) => {
        const { store, writer } = await seededWriter();
        let applied = 0;
        const outcomes = await Promise.allSettled(
          specs.map((spec) => {
            const { command, context } = broken(spec);
            return writer.submit(command as LedgerCommand, context as CommandContext);
          }),
        );
        for (const outcome of outcomes) {
          if (outcome.status === 'rejected') {
            // Only the admission check's typed errors; never a failed batch.
            expect(outcome.reason instanceof InvalidInputError || outcome.reason instanceof UnknownCurrencyError).toBe(true);
          } else if (outcome.value.ok && !outcome.value.duplicate) {
            applied += 1;
          }
        }
        expect(writer.version).toBeGreaterThanOrEqual(4 + applied);
        await expectReadableAgain(store, writer);
      }),
      { numRuns: 300 },
    );
  });
});

describe('parseCommand refuses metadata and text no store could keep as given', () => {
  const body = (extra: string): unknown => JSON.parse(`{"transferId":"t1","debitAccountId":"cash","creditAccountId":"alice","amount":"1.00","currency":"EUR"${extra}}`);

  it.each([
    ['transfer', () => parseCommand.transfer(body(',"metadata":{"__proto__":"x"}'), currencies), ['metadata', '__proto__']],
    ['hold', () => parseCommand.hold(body(',"timeoutMs":1000,"metadata":{"a":"b","__proto__":"x"}'), currencies), ['metadata', '__proto__']],
    ['openAccount', () => parseCommand.openAccount(JSON.parse('{"accountId":"a","currency":"EUR","type":"asset","metadata":{"__proto__":"x"}}')), ['metadata', '__proto__']],
    [
      'a linked member',
      () => parseCommand.linked([{ kind: 'transfer', input: body(',"metadata":{"__proto__":"x"}') }], currencies),
      [0, 'input', 'metadata', '__proto__'],
    ],
    ['a NUL in a reference', () => parseCommand.transfer(body(',"reference":"a\\u0000b"'), currencies), ['reference']],
    ['an unpaired surrogate in a metadata value', () => parseCommand.transfer(body(',"metadata":{"note":"\\ud800"}'), currencies), ['metadata', 'note']],
    ['a NUL in a metadata key', () => parseCommand.hold(body(',"metadata":{"a\\u0000":"b"}'), currencies), ['metadata', 'a\u0000']],
    ['a NUL in a freeze reason', () => parseCommand.freezeAccount({ accountId: 'a', reason: 'r\u0000' }), ['reason']],
    // Date.parse would roll these into another day; the command would be placed on a day its text does not say.
    ['an effectiveAt of 30 February', () => parseCommand.transfer(body(',"effectiveAt":"2025-02-30T00:00:00Z"'), currencies), ['effectiveAt']],
    ['an effectiveAt of 29 February in a common year', () => parseCommand.hold(body(',"effectiveAt":"2025-02-29T10:00:00.000Z"'), currencies), ['effectiveAt']],
    ['an effectiveAt at hour 24', () => parseCommand.postPending({ transferId: 'p', pendingId: 'h', effectiveAt: '2025-03-01T24:00:00Z' }, currencies), ['effectiveAt']],
    ['an effectiveAt of 31 April', () => parseCommand.voidPending({ transferId: 'v', pendingId: 'h', effectiveAt: '2025-04-31T00:00:00+02:00' }), ['effectiveAt']],
    ['an effectiveAt at second 60', () => parseCommand.reverse({ transferId: 'r', reversalOf: 't', effectiveAt: '2025-06-30T23:59:60Z' }), ['effectiveAt']],
    // Each branch of the simple-or-multi-posting union names its own field at fault.
    ['a number metadata value in a simple transfer', () => parseCommand.transfer(body(',"metadata":{"a":5}'), currencies), ['metadata', 'a']],
    [
      'a bad side in a multi-posting hold',
      () =>
        parseCommand.hold(
          { transferId: 'h', postings: [{ accountId: 'a', side: 'up', amount: '1', currency: 'EUR' }, { accountId: 'b', side: 'credit', amount: '1', currency: 'EUR' }] },
          currencies,
        ),
      ['postings', 0, 'side'],
    ],
  ] as const)('%s', (_name, parse, path) => {
    let thrown: unknown;
    try {
      parse();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidInputError);
    expect((thrown as InvalidInputError).issues[0]?.path).toEqual(path);
  });

  it('a well-formed surrogate pair and other control characters are kept', () => {
    const metadata = { emoji: '\ud83d\udcb8', tab: 'a\tb', bell: '\u0007' };
    expect(parseCommand.transfer(body(`,"reference":"\\ud83d\\udcb8","metadata":${JSON.stringify(metadata)}`), currencies)).toMatchObject({ reference: '\ud83d\udcb8', metadata });
  });

  it('still keeps every other key of the same metadata', () => {
    expect(parseCommand.transfer(body(',"metadata":{"a":"b","proto":"x"}'), currencies).metadata).toEqual({ a: 'b', proto: 'x' });
  });
});

describe('parseCommand.openAccount and the balance flags', () => {
  const open = (flags: unknown): unknown => parseCommand.openAccount({ accountId: 'pinned', currency: 'EUR', type: 'asset', flags }, currencies);

  it('refuses both flags at once as malformed input at flags, before any decision', () => {
    let refusal: unknown;
    try {
      open({ debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: true });
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(InvalidInputError);
    expect((refusal as InvalidInputError).issues).toEqual([{ path: ['flags'], message: expect.stringContaining('both debitsMustNotExceedCredits and creditsMustNotExceedDebits') }]);
  });

  it.each([
    [undefined, false, false],
    [{}, false, false],
    [{ debitsMustNotExceedCredits: true }, true, false],
    [{ creditsMustNotExceedDebits: true, debitsMustNotExceedCredits: false }, false, true],
    [{ debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false }, false, false],
  ])('accepts %j as at most one flag', (flags, debits, credits) => {
    expect(open(flags)).toMatchObject({ kind: 'openAccount', flags: { debitsMustNotExceedCredits: debits, creditsMustNotExceedDebits: credits } });
  });
});

describe('parseCommand and parseInstantMs given arguments of the wrong type from JavaScript', () => {
  const simple = { transferId: 't1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' };
  const postPending = { transferId: 'p1', pendingId: 'h1', amount: '0.50', currency: 'EUR' };
  const notRegistries = [undefined, null, {}, 'EUR', { get: 'EUR' }];

  /** The error `run` throws, or undefined. */
  function thrownBy(run: () => unknown): unknown {
    try {
      run();
    } catch (error) {
      return error;
    }
    return undefined;
  }

  function expectInvalidAt(run: () => unknown, path: readonly (string | number)[], label: string): void {
    const error = thrownBy(run);
    expect(error, label).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).issues.map((issue) => issue.path), label).toEqual([path]);
  }

  it.each([
    ['transfer', (registry: unknown, input: unknown) => parseCommand.transfer(input ?? simple, registry as CurrencyRegistry)],
    ['hold', (registry: unknown, input: unknown) => parseCommand.hold(input ?? { ...simple, timeoutMs: 1_000 }, registry as CurrencyRegistry)],
    ['postPending', (registry: unknown, input: unknown) => parseCommand.postPending(input ?? postPending, registry as CurrencyRegistry)],
    ['postPending of the whole hold', (registry: unknown, input: unknown) => parseCommand.postPending(input ?? { transferId: 'p1', pendingId: 'h1' }, registry as CurrencyRegistry)],
    ['linked', (registry: unknown, input: unknown) => parseCommand.linked(input ?? [{ kind: 'transfer', input: simple }], registry as CurrencyRegistry)],
  ] as const)('%s refuses a missing or malformed currency registry with InvalidInputError at currencies, whatever the input', (name, parse) => {
    for (const registry of notRegistries) {
      for (const input of [undefined, {}, null]) expectInvalidAt(() => parse(registry, input), ['currencies'], `${name} ${JSON.stringify(registry)} ${JSON.stringify(input)}`);
    }
    expect(parse(currencies, undefined)).toMatchObject({ kind: name === 'linked' ? 'linked' : name === 'hold' ? 'transfer' : name.split(' ')[0] });
  });

  it.each([
    ['openAccount', (registry: unknown) => parseCommand.openAccount({ accountId: 'a', currency: 'EUR', type: 'asset' }, registry as CurrencyRegistry)],
    ['voidPending', (registry: unknown) => parseCommand.voidPending({ transferId: 'v1', pendingId: 'h1' }, registry as CurrencyRegistry)],
    ['reverse', (registry: unknown) => parseCommand.reverse({ transferId: 'r1', reversalOf: 't1' }, registry as CurrencyRegistry)],
  ] as const)('%s takes its registry left out, but refuses null or one without get at currencies', (name, parse) => {
    for (const registry of notRegistries.slice(1)) expectInvalidAt(() => parse(registry), ['currencies'], `${name} ${JSON.stringify(registry)}`);
    expect(parse(undefined)).toBeDefined();
    expect(parse(currencies)).toBeDefined();
  });

  it('openAccount with a registry still refuses an undeclared currency, and without one takes it', () => {
    const open = { accountId: 'a', currency: 'XXX1', type: 'asset' };
    expect(thrownBy(() => parseCommand.openAccount(open, currencies))).toBeInstanceOf(UnknownCurrencyError);
    expect(parseCommand.openAccount(open)).toMatchObject({ currency: 'XXX1' });
  });

  it('a path prefix that is not an array of strings and numbers is InvalidInputError at prefix, not a TypeError', () => {
    const prefixes = [null, 'ab', 5, {}, [Symbol('x')], [{}]];
    prefixes.forEach((prefix, index) => {
      const bad = prefix as unknown as readonly string[];
      for (const input of [simple, {}]) {
        expectInvalidAt(() => parseCommand.transfer(input, currencies, bad), ['prefix'], `transfer, prefix ${index}`);
        expectInvalidAt(() => parseCommand.hold(input, currencies, bad), ['prefix'], `hold, prefix ${index}`);
        expectInvalidAt(() => parseCommand.postPending(input, currencies, bad), ['prefix'], `postPending, prefix ${index}`);
        expectInvalidAt(() => parseCommand.voidPending(input, undefined, bad), ['prefix'], `voidPending, prefix ${index}`);
        expectInvalidAt(() => parseCommand.reverse(input, undefined, bad), ['prefix'], `reverse, prefix ${index}`);
      }
    });
    // A good prefix still leads the path of the input's errors.
    expectInvalidAt(() => parseCommand.transfer({ ...simple, transferId: '' }, currencies, ['batch', 3]), ['batch', 3, 'transferId'], 'good prefix');
    expect(parseCommand.transfer(simple, currencies, ['batch', 3])).toMatchObject({ transferId: 't1' });
  });

  it('parseInstantMs refuses a field name that is not a string at field, not a TypeError', () => {
    for (const field of [Symbol('asOf'), null, 3]) {
      for (const value of ['2025-03-01T12:00:00Z', 'yesterday']) expectInvalidAt(() => parseInstantMs(value, field as unknown as string), ['field'], `${String(field)} ${value}`);
    }
    expectInvalidAt(() => parseInstantMs('yesterday', 'asOf'), ['asOf'], 'a bad instant');
    expect(parseInstantMs('2025-03-01T12:00:00Z', 'asOf')).toBe(Date.parse('2025-03-01T12:00:00Z'));
  });
});
