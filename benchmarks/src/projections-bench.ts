/**
 * Projections and read models on PostgreSQL (issue 4), measured on a throwaway database:
 *
 * - balance read latency, one request in flight, with 10 events of history and with a large
 *   history (1,000,000 events; 100,000 in CI mode): the read must stay flat in history length;
 * - balance "as of" a version, recorded time or effective time, at the large history;
 * - the async runner's catch-up rate (events projected per second) over the large history;
 * - the runner following a writer at its sustained rate: projected rate and lag;
 * - inline balances against async: the writer's rate with the hook in the append transaction,
 *   and how soon a balance read sees an append (inline: at once; async: after the runner).
 *
 * Run alone: `tsx --tsconfig tsconfig.json src/projections-bench.ts [--ci] [--history N] [--out FILE]`
 * (JSON on stdout, progress on stderr). The suite can call {@link runProjectionsBenchmark}.
 * The history is built fast: pre-encoded, hash-chained events appended 1,000 per call through
 * `PostgresEventStore.append`, as a writer would have written them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CurrencyRegistry, EventCodec, GENESIS_HASH, LedgerWriter, type CommandResult, type LedgerEvent, type StoredEvent, type TransferCommand } from '@ledgerkit/ledger-core';
import { balancesProjection, historyProjection, inlineBalances, migrateReadModels, ProjectionRunner, ReadModels } from '@ledgerkit/projections';
import { migrate, PostgresEventStore, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';
import pg from 'pg';

/** How much to measure. */
export interface ProjectionsBenchSettings {
  readonly mode: 'full' | 'ci' | 'custom';
  /** Events of the large history (accounts opened first, then transfers). */
  readonly historyEvents: number;
  /** Accounts of every benchmark ledger. */
  readonly accounts: number;
  /** Timed balance reads per history size; a tenth as many again warm up first. */
  readonly balanceReads: number;
  /** Timed "as of" reads at the large history. */
  readonly asOfReads: number;
  /** How long the writer runs while the runner follows it, ms (once flat out, once at `pacedEventsPerSec`). */
  readonly sustainedWindowMs: number;
  /** The paced writer's rate, events/s, in batches of 1,000. */
  readonly pacedEventsPerSec: number;
  /** How long each of inline and async appends, ms. */
  readonly inlineWindowMs: number;
}

export const PROJECTIONS_FULL_SETTINGS: ProjectionsBenchSettings = {
  mode: 'full',
  historyEvents: 1_000_000,
  accounts: 1_000,
  balanceReads: 20_000,
  asOfReads: 5_000,
  sustainedWindowMs: 20_000,
  pacedEventsPerSec: 5_000,
  inlineWindowMs: 10_000,
};

export const PROJECTIONS_CI_SETTINGS: ProjectionsBenchSettings = {
  mode: 'ci',
  historyEvents: 100_000,
  accounts: 1_000,
  balanceReads: 5_000,
  asOfReads: 2_000,
  sustainedWindowMs: 5_000,
  pacedEventsPerSec: 5_000,
  inlineWindowMs: 3_000,
};

/** Latency percentiles, milliseconds. */
export interface LatencyMs {
  readonly samples: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/** A target of the issue and whether this run met it. */
export interface TargetCheck {
  readonly statement: string;
  readonly measured: number;
  readonly limit: number;
  readonly met: boolean;
}

/** A writer appending while a live runner follows it. */
export interface Sustained {
  readonly seconds: number;
  readonly writtenEvents: number;
  readonly writeEventsPerSec: number;
  readonly projectedEventsPerSec: Readonly<Record<string, number>>;
  readonly maxLagEvents: Readonly<Record<string, number>>;
  readonly maxLagSeconds: Readonly<Record<string, number>>;
  readonly drainMs: number;
}

/** What {@link runProjectionsBenchmark} reports (JSON-safe). */
export interface ProjectionsBenchReport {
  readonly settings: ProjectionsBenchSettings;
  readonly server: { readonly source: 'embedded' | 'DATABASE_URL'; readonly version: string; readonly synchronousCommit: string; readonly fsync: string };
  readonly history: { readonly events: number; readonly buildSeconds: number; readonly appendEventsPerSec: number; readonly entriesRows: number; readonly databaseMb: number };
  readonly balanceRead: { readonly history10: LatencyMs; readonly historyLarge: LatencyMs; readonly ratioP99: number };
  readonly balanceAsOf: { readonly all: LatencyMs; readonly ledgerVersion: LatencyMs; readonly recordedAt: LatencyMs; readonly effectiveAt: LatencyMs };
  readonly catchUp: { readonly events: number; readonly seconds: Readonly<Record<string, number>>; readonly eventsPerSec: Readonly<Record<string, number>> };
  /** The writer flat out (its sustained rate), then paced; the runner follows both. */
  readonly sustained: Sustained;
  readonly paced: Sustained;
  readonly inline: {
    readonly asyncAppendEventsPerSec: number;
    readonly inlineAppendEventsPerSec: number;
    /** Append resolved → balance read shows it: inline. */
    readonly inlineVisibleMs: LatencyMs;
    /** Append resolved → balance read shows it: async runner (live, NOTIFY). */
    readonly asyncVisibleMs: LatencyMs;
  };
  readonly targets: readonly TargetCheck[];
}

const CURRENCIES = new CurrencyRegistry();
const CODEC = new EventCodec({ currencies: CURRENCIES });
const APPEND_BATCH = 1_000;
const DAY_MS = 24 * 60 * 60 * 1000;

/** Runs every measurement on a fresh database and drops it. */
export async function runProjectionsBenchmark(settings: ProjectionsBenchSettings, say: (message: string) => void = () => undefined): Promise<ProjectionsBenchReport> {
  const database = await openDatabase();
  try {
    const { app } = database;
    const store = await PostgresEventStore.open({ pool: app, horizonWaitMs: 5_000 });
    const models = new ReadModels({ pool: app, currencies: CURRENCIES });
    say(`PostgreSQL ${database.server.version.split(' on ')[0] ?? ''} (${database.server.source}), synchronous_commit=${database.server.synchronousCommit}`);

    // 10 events of history.
    const small = { tenantId: 'bench-small', ledgerId: 'eur' };
    await appendHistory(store, small.tenantId, small.ledgerId, 10, 4, Date.now() - DAY_MS);
    await catchUp(app, store, small.tenantId);

    // The large history, appended, then projected by the runner from zero: the catch-up rate.
    const large = { tenantId: 'bench-large', ledgerId: 'eur' };
    say(`building ${settings.historyEvents.toLocaleString('en-US')} events of history`);
    const historyStartMs = Date.now() - 30 * DAY_MS;
    const built = await appendHistory(store, large.tenantId, large.ledgerId, settings.historyEvents, settings.accounts, historyStartMs, (done) => say(`  appended ${done.toLocaleString('en-US')}`));
    // What autovacuum would have done by now on a table this size: the global read's plan needs it.
    await database.admin.query('ANALYZE');
    say(`projecting it (balances and history side by side)`);
    const catchUpResult = await measureCatchUp(app, store, large.tenantId, built.events, say);
    const sizes = await database.admin.query<{ entries: string; mb: string }>(
      `SELECT (SELECT count(*) FROM ledgerkit.rm_account_entries) AS entries, (pg_database_size(current_database()) / 1048576)::text AS mb`,
    );
    // Steady state, as autovacuum leaves it after a bulk load: no vacuum running under the reads.
    await database.admin.query('VACUUM (ANALYZE)');

    say('balance reads, one in flight');
    const smallAccounts = accountIds(4);
    const largeAccounts = accountIds(settings.accounts);
    // Interleaved, one read of each history in turn, so background noise falls on both alike.
    const small10: number[] = [];
    const largeN: number[] = [];
    await timeSequential(
      2 * settings.balanceReads,
      (i) =>
        i % 2 === 0
          ? models.balance(small.tenantId, small.ledgerId, smallAccounts[(i >> 1) % smallAccounts.length] as string)
          : models.balance(large.tenantId, large.ledgerId, largeAccounts[((i >> 1) * 7_919) % largeAccounts.length] as string),
      (i, ms) => (i % 2 === 0 ? small10 : largeN).push(ms),
    );
    const read10 = summarise(small10);
    const readLarge = summarise(largeN);

    say('balance as-of reads at the large history');
    const span = built.lastRecordedMs - historyStartMs;
    const kinds = ['ledgerVersion', 'recordedAt', 'effectiveAt'] as const;
    const byKind = new Map<string, number[]>(kinds.map((kind) => [kind, []]));
    const asOfAll = await timeSequential(settings.asOfReads, (i) => {
      const kind = kinds[i % 3] as (typeof kinds)[number];
      const fraction = ((i * 2_654_435_761) % 1_000_003) / 1_000_003;
      const account = largeAccounts[(i * 104_729) % largeAccounts.length] as string;
      const asOf =
        kind === 'ledgerVersion'
          ? { ledgerVersion: Math.floor(fraction * built.events) }
          : kind === 'recordedAt'
            ? { recordedAt: new Date(historyStartMs + fraction * span) }
            : { effectiveAt: new Date(historyStartMs + fraction * span) };
      return models.balanceAt(large.tenantId, large.ledgerId, account, asOf);
    }, (i, ms) => byKind.get(kinds[i % 3] as string)?.push(ms));

    say(`the runner following a writer for ${settings.sustainedWindowMs / 1_000} s, flat out, then at ${settings.pacedEventsPerSec} events/s`);
    const sustained = await measureSustained(app, store, settings, 'bench-live');
    const paced = await measureSustained(app, store, settings, 'bench-paced', settings.pacedEventsPerSec);

    say('inline against async balances');
    const inline = await measureInline(database.app, settings);

    const ratio = readLarge.p99 / read10.p99;
    const targets: TargetCheck[] = [
      check('balance read p99 ≤ 1 ms with one request in flight (large history)', readLarge.p99, 1),
      check(`balance read p99 at ${settings.historyEvents.toLocaleString('en-US')} events ≤ 1.5 × p99 at 10 events`, ratio, 1.5),
      check(`balance as-of p99 ≤ 5 ms at ${settings.historyEvents.toLocaleString('en-US')} events`, asOfAll.p99, 5),
      ...Object.entries(sustained.maxLagSeconds).map(([name, lag]) => check(`${name}: lag stays bounded with the writer flat out (max lag ≤ 5 s)`, lag, 5)),
      ...Object.entries(sustained.projectedEventsPerSec).map(([name, rate]) =>
        check(`${name}: projects at least the writer's sustained rate (write ÷ projected ≤ 1.05)`, sustained.writeEventsPerSec / rate, 1.05),
      ),
      ...Object.entries(paced.maxLagSeconds).map(([name, lag]) => check(`${name}: lag stays bounded with the writer at ${settings.pacedEventsPerSec} events/s (max lag ≤ 2 s)`, lag, 2)),
    ];
    return {
      settings,
      server: database.server,
      history: {
        events: built.events,
        buildSeconds: built.seconds,
        appendEventsPerSec: built.events / built.seconds,
        entriesRows: Number(sizes.rows[0]?.entries ?? 0),
        databaseMb: Number(sizes.rows[0]?.mb ?? 0),
      },
      balanceRead: { history10: read10, historyLarge: readLarge, ratioP99: ratio },
      balanceAsOf: {
        all: asOfAll,
        ledgerVersion: summarise(byKind.get('ledgerVersion') ?? []),
        recordedAt: summarise(byKind.get('recordedAt') ?? []),
        effectiveAt: summarise(byKind.get('effectiveAt') ?? []),
      },
      catchUp: catchUpResult,
      sustained,
      paced,
      inline,
      targets,
    };
  } finally {
    await database.close();
  }
}

/** Account ids of a benchmark ledger. */
function accountIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `acc-${i}`);
}

/**
 * Appends `events` events to a new ledger: `accounts` accounts opened (assets and liabilities in
 * turn), then simple transfers between pseudo-random pairs, recorded evenly from `startMs` to
 * now, one in a hundred back-dated by up to an hour. Pre-encoded and hash-chained, 1,000 per append.
 */
async function appendHistory(
  store: PostgresEventStore,
  tenantId: string,
  ledgerId: string,
  events: number,
  accounts: number,
  startMs: number,
  progress?: (done: number) => void,
): Promise<{ events: number; seconds: number; lastRecordedMs: number }> {
  const started = process.hrtime.bigint();
  const stepMs = Math.max(1, Math.floor((Date.now() - 60_000 - startMs) / Math.max(events, 1)));
  let previousHash = GENESIS_HASH;
  let version = 0;
  let lastRecordedMs = startMs;
  let seed = 12_345;
  const next = (): number => (seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0);
  while (version < events) {
    const batch: StoredEvent[] = [];
    const count = Math.min(APPEND_BATCH, events - version);
    for (let k = 0; k < count; k += 1) {
      const ledgerVersion = version + k + 1;
      const recordedAtMs = startMs + ledgerVersion * stepMs;
      let event: LedgerEvent;
      let effectiveAtMs = recordedAtMs;
      if (ledgerVersion <= accounts) {
        const id = ledgerVersion - 1;
        event = {
          type: 'AccountOpened',
          accountId: `acc-${id}`,
          currency: 'EUR',
          accountType: id % 2 === 0 ? 'asset' : 'liability',
          flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false },
          metadata: {},
        };
      } else {
        const from = next() % accounts;
        const to = (from + 1 + (next() % (accounts - 1))) % accounts;
        const amount = BigInt(1 + (next() % 100_000));
        event = {
          type: 'TransferPosted',
          transferId: `t-${ledgerVersion}`,
          postings: [
            { accountId: `acc-${from}`, side: 'debit', amount, currency: 'EUR' },
            { accountId: `acc-${to}`, side: 'credit', amount, currency: 'EUR' },
          ],
          reference: undefined,
          reversalOf: undefined,
          metadata: {},
        };
        const openedMs = startMs + accounts * stepMs;
        if (next() % 100 === 0) effectiveAtMs = Math.max(openedMs, recordedAtMs - (next() % 3_600_000));
      }
      const stored = CODEC.encode(
        { event, effectiveAtMs },
        { eventId: randomUUID(), tenantId, ledgerId, ledgerVersion, recordedAtMs, correlationId: null, causationId: null, metadata: {}, previousHash },
      );
      previousHash = stored.hash;
      lastRecordedMs = recordedAtMs;
      batch.push(stored);
    }
    await store.append({ tenantId, ledgerId, expectedVersion: version, events: batch });
    version += count;
    if (progress !== undefined && version % 100_000 === 0) progress(version);
  }
  return { events, seconds: Number(process.hrtime.bigint() - started) / 1e9, lastRecordedMs };
}

async function catchUp(app: pg.Pool, store: PostgresEventStore, tenantId: string): Promise<void> {
  const runner = new ProjectionRunner({ pool: app, store, tenantIds: [tenantId], projections: [balancesProjection(), historyProjection()], currencies: CURRENCIES });
  runner.start();
  try {
    await runner.whenCaughtUp(600_000);
  } finally {
    await runner.stop();
  }
}

/** Projects a history from zero and times each projection until it has applied every event. */
async function measureCatchUp(app: pg.Pool, store: PostgresEventStore, tenantId: string, events: number, say: (message: string) => void): Promise<ProjectionsBenchReport['catchUp']> {
  const runner = new ProjectionRunner({ pool: app, store, tenantIds: [tenantId], projections: [balancesProjection(), historyProjection()], currencies: CURRENCIES, batchSize: 1_000 });
  const started = Date.now();
  const seconds: Record<string, number> = {};
  runner.start();
  try {
    let reported = 0;
    while (Object.keys(seconds).length < 2) {
      await sleep(200);
      for (const status of await runner.status()) {
        if (seconds[status.projection] === undefined && status.eventsApplied >= events) seconds[status.projection] = (Date.now() - started) / 1_000;
        if (status.lastError !== null && status.state === 'failed') throw new Error(`${status.projection} failed: ${status.lastError.message}`);
      }
      if (Date.now() - reported > 10_000) {
        reported = Date.now();
        say(`  ${(await runner.status()).map((status) => `${status.projection} ${status.eventsApplied.toLocaleString('en-US')}`).join(', ')}`);
      }
    }
  } finally {
    await runner.stop();
  }
  const eventsPerSec = Object.fromEntries(Object.entries(seconds).map(([name, s]) => [name, events / s]));
  return { events, seconds, eventsPerSec };
}

/**
 * A writer submits 1,000 transfers at a time and awaits them, back to back (its sustained rate),
 * or one batch every 1,000 / `eventsPerSec` s when paced, while a live runner follows; lag is
 * sampled from the runner's status every 250 ms.
 */
async function measureSustained(app: pg.Pool, store: PostgresEventStore, settings: ProjectionsBenchSettings, tenantId: string, eventsPerSec?: number): Promise<Sustained> {
  const writer = await openFundedWriter(store, tenantId, settings.accounts);
  const runner = new ProjectionRunner({ pool: app, store, tenantIds: [tenantId], projections: [balancesProjection(), historyProjection()], currencies: CURRENCIES, batchSize: 1_000 });
  runner.start();
  await runner.whenCaughtUp();
  const baseline = new Map((await runner.status()).map((status) => [status.projection, status.eventsApplied]));
  const startVersion = writer.version;
  const maxLagEvents: Record<string, number> = {};
  const maxLagSeconds: Record<string, number> = {};
  let writing = true;
  const sampler = (async () => {
    while (writing) {
      for (const status of await runner.status()) {
        maxLagEvents[status.projection] = Math.max(maxLagEvents[status.projection] ?? 0, status.lagEvents ?? 0);
        maxLagSeconds[status.projection] = Math.max(maxLagSeconds[status.projection] ?? 0, status.lagSeconds);
      }
      await sleep(250);
    }
  })();
  const started = Date.now();
  let n = 0;
  while (Date.now() - started < settings.sustainedWindowMs) {
    await submitTransfers(writer, settings.accounts, `s-${n}`, 1_000);
    n += 1;
    if (eventsPerSec !== undefined) await sleep(Math.max(0, started + (n * 1_000_000) / eventsPerSec - Date.now()));
  }
  const writeSeconds = (Date.now() - started) / 1_000;
  writing = false;
  await sampler;
  const statuses = await runner.status();
  const projectedEventsPerSec = Object.fromEntries(statuses.map((status) => [status.projection, (status.eventsApplied - (baseline.get(status.projection) ?? 0)) / writeSeconds]));
  const drainStarted = Date.now();
  await runner.whenCaughtUp(300_000);
  const drainMs = Date.now() - drainStarted;
  await runner.stop();
  const writtenEvents = writer.version - startVersion;
  await writer.close();
  return { seconds: writeSeconds, writtenEvents, writeEventsPerSec: writtenEvents / writeSeconds, projectedEventsPerSec, maxLagEvents, maxLagSeconds, drainMs };
}

/**
 * The writer's sustained rate through a store without and with the inline balances hook, then
 * how soon a balance read sees a single transfer: inline (at once) and async (runner live on NOTIFY).
 */
async function measureInline(app: pg.Pool, settings: ProjectionsBenchSettings): Promise<ProjectionsBenchReport['inline']> {
  const plain = await PostgresEventStore.open({ pool: app, horizonWaitMs: 5_000 });
  const withHook = await PostgresEventStore.open({ pool: app, horizonWaitMs: 5_000, inline: inlineBalances({ currencies: CURRENCIES }) });
  const models = new ReadModels({ pool: app, currencies: CURRENCIES });
  const rate = async (store: PostgresEventStore, tenantId: string): Promise<number> => {
    const writer = await openFundedWriter(store, tenantId, settings.accounts);
    const from = writer.version;
    const started = Date.now();
    for (let n = 0; Date.now() - started < settings.inlineWindowMs; n += 1) await submitTransfers(writer, settings.accounts, `r-${n}`, 1_000);
    const perSec = (writer.version - from) / ((Date.now() - started) / 1_000);
    await writer.close();
    return perSec;
  };
  const asyncAppendEventsPerSec = await rate(plain, 'bench-async-rate');
  const inlineAppendEventsPerSec = await rate(withHook, 'bench-inline-rate');

  const visible = async (store: PostgresEventStore, tenantId: string): Promise<LatencyMs> => {
    const writer = await openFundedWriter(store, tenantId, 4);
    const runner = new ProjectionRunner({ pool: app, store: plain, tenantIds: [tenantId], projections: [balancesProjection()], currencies: CURRENCIES });
    runner.start();
    await runner.whenCaughtUp();
    const samples: number[] = [];
    for (let n = 0; n < 200; n += 1) {
      const result = await writer.submit(transferCommand(`v-${n}`, 'acc-0', 'acc-1', 1n));
      if (!result.ok) throw new Error(`transfer refused: ${result.code}`);
      const expected = writer.account('acc-1')?.creditsPosted;
      const started = process.hrtime.bigint();
      for (;;) {
        const balance = await models.balance(tenantId, 'eur', 'acc-1');
        if (balance !== undefined && BigInt(balance.creditsPosted.replace('.', '')) === expected) break;
      }
      samples.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    await runner.stop();
    await writer.close();
    return summarise(samples);
  };
  return {
    asyncAppendEventsPerSec,
    inlineAppendEventsPerSec,
    inlineVisibleMs: await visible(withHook, 'bench-inline-visible'),
    asyncVisibleMs: await visible(plain, 'bench-async-visible'),
  };
}

async function openFundedWriter(store: PostgresEventStore, tenantId: string, accounts: number): Promise<LedgerWriter> {
  const writer = await LedgerWriter.open({ store, tenantId, ledgerId: 'eur', currencies: CURRENCIES, batchSizeMax: 1_000, snapshotEveryEvents: 0 });
  const opened = await Promise.all(
    accountIds(accounts).map((accountId, i) =>
      writer.submit({
        kind: 'openAccount',
        accountId,
        currency: 'EUR',
        type: i % 2 === 0 ? 'asset' : 'liability',
        flags: { debitsMustNotExceedCredits: false, creditsMustNotExceedDebits: false },
        metadata: {},
      }),
    ),
  );
  const refused = opened.find((result) => !result.ok);
  if (refused !== undefined) throw new Error(`fixture refused: ${JSON.stringify(refused)}`);
  return writer;
}

function transferCommand(transferId: string, from: string, to: string, amount: bigint): TransferCommand {
  return {
    kind: 'transfer',
    transferId,
    postings: [
      { accountId: from, side: 'debit', amount, currency: 'EUR' },
      { accountId: to, side: 'credit', amount, currency: 'EUR' },
    ],
    pending: undefined,
    effectiveAtMs: undefined,
    reference: undefined,
    metadata: {},
  };
}

/** `count` transfers submitted at once (one writer batch) and awaited. */
async function submitTransfers(writer: LedgerWriter, accounts: number, prefix: string, count: number): Promise<void> {
  const submitted: Promise<CommandResult>[] = [];
  for (let i = 0; i < count; i += 1) {
    const from = (i * 7_919) % accounts;
    const to = (from + 1 + ((i * 104_729) % (accounts - 1))) % accounts;
    submitted.push(writer.submit(transferCommand(`${prefix}-${i}`, `acc-${from}`, `acc-${to}`, BigInt(1 + (i % 5_000)))));
  }
  const results = await Promise.all(submitted);
  const refused = results.find((result) => !result.ok);
  if (refused !== undefined) throw new Error(`transfer refused: ${JSON.stringify(refused)}`);
}

/** Runs `op` `count` times one after another (after a tenth as many unrecorded) and summarises the latencies. */
async function timeSequential(count: number, op: (i: number) => Promise<unknown>, record?: (i: number, ms: number) => void): Promise<LatencyMs> {
  const warmup = Math.max(1, Math.floor(count / 10));
  for (let i = 0; i < warmup; i += 1) await op(count + i);
  const samples = new Array<number>(count);
  for (let i = 0; i < count; i += 1) {
    const started = process.hrtime.bigint();
    await op(i);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    samples[i] = ms;
    record?.(i, ms);
  }
  return summarise(samples);
}

function summarise(samples: readonly number[]): LatencyMs {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (percent: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((percent / 100) * sorted.length) - 1))] ?? Number.NaN;
  return { samples: sorted.length, p50: round(rank(50)), p95: round(rank(95)), p99: round(rank(99)), max: round(sorted[sorted.length - 1] ?? Number.NaN) };
}

function check(statement: string, measured: number, limit: number): TargetCheck {
  return { statement, measured: round(measured), limit, met: measured <= limit };
}

function round(value: number): number {
  return Math.round(value * 1_000) / 1_000;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Database {
  readonly app: pg.Pool;
  readonly admin: pg.Pool;
  readonly server: ProjectionsBenchReport['server'];
  close(): Promise<void>;
}

/**
 * A fresh database with the event store and the read models migrated, on DATABASE_URL's server
 * or an embedded one with durable settings; `close()` drops it.
 */
async function openDatabase(): Promise<Database> {
  const databaseUrl = process.env['DATABASE_URL'];
  const embedded: EmbeddedPostgresServer | undefined = databaseUrl ? undefined : await startEmbeddedPostgres();
  const serverUrl = databaseUrl ?? (embedded as EmbeddedPostgresServer).connectionString;
  const suffix = randomBytes(5).toString('hex');
  const name = `lk_projbench_${suffix}`;
  const roles = { owner: `lk_pb_${suffix}_owner`, app: `lk_pb_${suffix}_app` };
  const appPassword = randomBytes(18).toString('hex');
  const pools: pg.Pool[] = [];
  const pool = (url: string, max: number): pg.Pool => {
    const created = new pg.Pool({ connectionString: url, max, idleTimeoutMillis: 0 });
    created.on('error', () => undefined);
    pools.push(created);
    return created;
  };
  const close = async (): Promise<void> => {
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
    const client = new pg.Client({ connectionString: serverUrl });
    try {
      await client.connect();
      for (let polls = 0; polls < 100; polls += 1) {
        const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
        if (rows[0]?.n === 0) break;
        await sleep(20);
      }
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.query(`DROP ROLE IF EXISTS ${roles.app}`);
      await client.query(`DROP ROLE IF EXISTS ${roles.owner}`);
    } finally {
      await client.end().catch(() => undefined);
      await embedded?.stop();
    }
  };
  try {
    const maintenance = new pg.Client({ connectionString: serverUrl });
    await maintenance.connect();
    await maintenance.query(`CREATE DATABASE ${name}`).finally(() => maintenance.end());
    const adminUrl = new URL(serverUrl);
    adminUrl.pathname = `/${name}`;
    const admin = pool(adminUrl.toString(), 2);
    await migrate({ pool: admin, roles, appPassword });
    await migrateReadModels({ pool: admin, roles });
    const appUrl = new URL(adminUrl.toString());
    appUrl.username = roles.app;
    appUrl.password = appPassword;
    const app = pool(appUrl.toString(), 12);
    const { rows } = await app.query<{ version: string; synchronous_commit: string; fsync: string }>(
      `SELECT version() AS version, current_setting('synchronous_commit') AS synchronous_commit, current_setting('fsync') AS fsync`,
    );
    const row = rows[0];
    return {
      app,
      admin,
      server: { source: databaseUrl ? 'DATABASE_URL' : 'embedded', version: row?.version ?? '', synchronousCommit: row?.synchronous_commit ?? '', fsync: row?.fsync ?? '' },
      close,
    };
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}

// Run directly: print the report as JSON.
if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '\u0000')) {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((arg) => arg !== '--'),
    options: { ci: { type: 'boolean', default: false }, history: { type: 'string' }, out: { type: 'string' } },
    strict: true,
  });
  const base = values.ci ? PROJECTIONS_CI_SETTINGS : PROJECTIONS_FULL_SETTINGS;
  const settings: ProjectionsBenchSettings = values.history === undefined ? base : { ...base, mode: 'custom', historyEvents: Number(values.history) };
  const report = await runProjectionsBenchmark(settings, (message) => process.stderr.write(`${message}\n`));
  const json = `${JSON.stringify(report, null, 2)}\n`;
  process.stdout.write(json);
  if (values.out !== undefined) writeFileSync(values.out, json);
  for (const target of report.targets) process.stderr.write(`${target.met ? 'met   ' : 'MISSED'} ${target.statement}: ${target.measured} (limit ${target.limit})\n`);
}
