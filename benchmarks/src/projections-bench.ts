/**
 * Projections and read models on PostgreSQL (issue 4), as the suite's `projections` group:
 *
 * - the runner following a writer that appends flat out (its sustained rate): events projected
 *   per second next to the writer's, and the lag of every writer batch (acknowledged → the
 *   batch that applied it committed), per projection;
 * - the runner's catch-up rate over a large history (1,000,000 events; CI: 20,000), from zero;
 * - balance read latency, one request in flight, at 10 events of history and at the large history
 *   (it must stay flat in history length), and balance "as of" a version, recorded or effective time;
 * - inline balances against async: the writer's rate with and without the hook, and how soon a
 *   balance read sees an append.
 *
 * Run alone: `tsx --tsconfig tsconfig.json src/projections-bench.ts [--ci] [--history N] [--out FILE]`
 * (the measurements as JSON on stdout, progress on stderr); the suite calls {@link measureProjections}.
 * The history is built fast: pre-encoded, hash-chained events appended 1,000 per call through
 * `PostgresEventStore.append`, as a writer would have written them.
 */
import { fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Histogram } from 'hdr-histogram-js';
import { CurrencyRegistry, EventCodec, GENESIS_HASH, LedgerWriter, type CommandResult, type LedgerEvent, type StoredEvent, type TransferCommand } from '@ledgerkit/ledger-core';
import { balancesProjection, historyProjection, inlineBalances, migrateReadModels, ProjectionRunner, ReadModels, type BatchCommitted } from '@ledgerkit/projections';
import { migrate, PostgresEventStore, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';
import pg from 'pg';
import { loadAverage1m, newLatencyHistogram, recordNs, summariseMs, type Measurement, type Target } from './measurement.js';
import type { FollowBatchMessage, FollowRunnerMessage } from './follow-runner.js';
import { youngGenerationFlag } from './environment.js';
import { defaultTypeParsers } from './postgres-database.js';
import { summariseThroughput } from './stats.js';

/** How much to measure. */
export interface ProjectionsBenchSettings {
  /** Events of the large history (accounts opened first, then transfers). */
  readonly historyEvents: number;
  /** Accounts of every benchmark ledger. */
  readonly accounts: number;
  /** The runner's batch size (events per read and per transaction). */
  readonly batchSize: number;
  /** Timed balance reads per history size; a tenth as many again warm up first. */
  readonly balanceReads: number;
  /** Timed "as of" reads at the large history. */
  readonly asOfReads: number;
  /** Timed balance reads by 64 concurrent readers, for each of batched and one-statement-per-read, over 6 alternating rounds. */
  readonly concurrentReads: number;
  /** How long the writer appends flat out while the runner follows it, ms. */
  readonly followWindowMs: number;
  /** How long each of the inline and the async writer appends, ms. */
  readonly inlineWindowMs: number;
  /** Appends timed from acknowledgement to a balance read that shows them, for each of inline and async. */
  readonly visibilitySamples: number;
}

/** `pnpm bench`: a history of 1,000,000 events (about 3 minutes on a 2-core machine). */
export const PROJECTIONS_FULL_SETTINGS: ProjectionsBenchSettings = {
  historyEvents: 1_000_000,
  accounts: 1_000,
  batchSize: 1_000,
  balanceReads: 20_000,
  concurrentReads: 120_000,
  asOfReads: 5_000,
  followWindowMs: 30_000,
  inlineWindowMs: 10_000,
  visibilitySamples: 200,
};

/** `pnpm bench:ci`: the same measurements, short (about 20 s). */
export const PROJECTIONS_CI_SETTINGS: ProjectionsBenchSettings = {
  historyEvents: 20_000,
  accounts: 1_000,
  batchSize: 1_000,
  balanceReads: 2_000,
  concurrentReads: 12_000,
  asOfReads: 1_000,
  followWindowMs: 6_000,
  inlineWindowMs: 2_000,
  visibilitySamples: 50,
};

// Scenario names (stable: results are compared across runs by name).
/** The writer's rate while the runner follows it: the ceiling of the follow scenarios. */
export const FOLLOW_WRITER = 'projection-follow-writer';
export const FOLLOW_BALANCES = 'projection-follow-balances';
export const FOLLOW_HISTORY = 'projection-follow-history';
/** The same with a runner that has only the balances projection, then only the history one, each with its writer's rate. */
export const FOLLOW_WRITER_BALANCES_ALONE = 'projection-follow-writer-balances-alone';
export const FOLLOW_BALANCES_ALONE = 'projection-follow-balances-alone';
export const FOLLOW_WRITER_HISTORY_ALONE = 'projection-follow-writer-history-alone';
export const FOLLOW_HISTORY_ALONE = 'projection-follow-history-alone';
export const CATCH_UP_BALANCES = 'projection-catch-up-balances';
export const CATCH_UP_HISTORY = 'projection-catch-up-history';
export const BALANCE_READ_SMALL = 'balance-read-history-10';
export const BALANCE_READ_LARGE = 'balance-read-history-large';
export const BALANCE_AS_OF = 'balance-as-of-large';
/** 64 concurrent readers, reads batched per event-loop turn (the default), and the same one statement per read: its peer. */
export const BALANCE_READ_CONCURRENT = 'balance-read-64-readers';
export const BALANCE_READ_CONCURRENT_SINGLE = 'balance-read-64-readers-one-statement-each';
export const APPEND_ASYNC = 'append-without-inline-balances';
export const APPEND_INLINE = 'append-with-inline-balances';

/** Every scenario of the group, in report order. */
export const PROJECTION_SCENARIO_NAMES: readonly string[] = [
  FOLLOW_WRITER,
  FOLLOW_BALANCES,
  FOLLOW_HISTORY,
  FOLLOW_WRITER_BALANCES_ALONE,
  FOLLOW_BALANCES_ALONE,
  FOLLOW_WRITER_HISTORY_ALONE,
  FOLLOW_HISTORY_ALONE,
  CATCH_UP_BALANCES,
  CATCH_UP_HISTORY,
  BALANCE_READ_SMALL,
  BALANCE_READ_LARGE,
  BALANCE_AS_OF,
  BALANCE_READ_CONCURRENT_SINGLE,
  BALANCE_READ_CONCURRENT,
  APPEND_ASYNC,
  APPEND_INLINE,
];

/** What one operation of each scenario is counted as. */
export const PROJECTION_OPS_UNITS: Readonly<Record<string, string>> = {
  [FOLLOW_WRITER]: 'events',
  [FOLLOW_BALANCES]: 'events',
  [FOLLOW_HISTORY]: 'events',
  [FOLLOW_WRITER_BALANCES_ALONE]: 'events',
  [FOLLOW_BALANCES_ALONE]: 'events',
  [FOLLOW_WRITER_HISTORY_ALONE]: 'events',
  [FOLLOW_HISTORY_ALONE]: 'events',
  [CATCH_UP_BALANCES]: 'events',
  [CATCH_UP_HISTORY]: 'events',
  [BALANCE_READ_SMALL]: 'reads',
  [BALANCE_READ_LARGE]: 'reads',
  [BALANCE_AS_OF]: 'reads',
  [BALANCE_READ_CONCURRENT_SINGLE]: 'reads',
  [BALANCE_READ_CONCURRENT]: 'reads',
  [APPEND_ASYNC]: 'events',
  [APPEND_INLINE]: 'events',
};

/** Options of {@link measureProjections}. */
export interface MeasureProjectionsOptions {
  readonly settings: ProjectionsBenchSettings;
  /** Superuser URL of the server to create the throwaway database on; default DATABASE_URL, else an embedded server. */
  readonly serverUrl?: string;
  /** Which scenarios to measure (the writer runs whenever a follow scenario does); default all. */
  readonly selected?: (name: string) => boolean;
  /** Progress lines. */
  readonly say?: (message: string) => void;
}

const CURRENCIES = new CurrencyRegistry();
const CODEC = new EventCodec({ currencies: CURRENCIES });
const APPEND_BATCH = 1_000;
const DAY_MS = 24 * 60 * 60 * 1000;
const INTERVAL_MS = 1_000;
const LEDGER_ID = 'eur';

/**
 * Measures the group's scenarios on a fresh database (dropped at the end) and returns them in
 * report order. The follow scenarios run first, on an empty database, so that the writer's rate
 * is not that of a database busy with a million-event history's autovacuum.
 */
export async function measureProjections(options: MeasureProjectionsOptions): Promise<Measurement[]> {
  const { settings } = options;
  const selected = options.selected ?? (() => true);
  const say = options.say ?? (() => undefined);
  const any = (...names: string[]): boolean => names.some(selected);
  const database = await openDatabase(options.serverUrl);
  const out = new Map<string, Measurement>();
  try {
    const { app } = database;
    const store = await PostgresEventStore.open({ pool: app, horizonWaitMs: 5_000 });
    const models = new ReadModels({ pool: app, currencies: CURRENCIES });

    for (const phase of FOLLOW_PHASES) {
      if (!any(phase.writer, ...Object.values(phase.projections))) continue;
      say(`  projections: a runner with ${phase.label} following a writer flat out for ${settings.followWindowMs / 1_000} s`);
      for (const m of await measureFollow(database.appUrl, store, settings, phase)) out.set(m.name, m);
    }
    if (any(APPEND_ASYNC, APPEND_INLINE)) {
      say(`  projections: the writer with and without inline balances, ${settings.inlineWindowMs / 1_000} s each`);
      for (const m of await measureInline(app, settings)) out.set(m.name, m);
    }
    if (any(CATCH_UP_BALANCES, CATCH_UP_HISTORY, BALANCE_READ_SMALL, BALANCE_READ_LARGE, BALANCE_AS_OF, BALANCE_READ_CONCURRENT, BALANCE_READ_CONCURRENT_SINGLE)) {
      const small = { tenantId: 'bench-small', ledgerId: LEDGER_ID };
      await appendHistory(store, small.tenantId, small.ledgerId, 10, 4, Date.now() - DAY_MS);
      await catchUp(app, store, small.tenantId, settings.batchSize);
      const large = { tenantId: 'bench-large', ledgerId: LEDGER_ID };
      say(`  projections: building ${int(settings.historyEvents)} events of history`);
      const historyStartMs = Date.now() - 30 * DAY_MS;
      const built = await appendHistory(store, large.tenantId, large.ledgerId, settings.historyEvents, settings.accounts, historyStartMs, (done) =>
        say(`    appended ${int(done)}`),
      );
      say(`    appended ${int(built.events)} in ${built.seconds.toFixed(1)} s (${int(built.events / built.seconds)} events/s)`);
      // What autovacuum would have done by now on a table this size: the global read's plan needs it.
      await database.admin.query('ANALYZE');
      say('  projections: catch-up from zero, balances and history side by side');
      for (const m of await measureCatchUp(app, store, large.tenantId, built.events, settings.batchSize, say)) out.set(m.name, m);
      // Steady state, as autovacuum leaves it after a bulk load: no vacuum running under the reads.
      await database.admin.query('VACUUM (ANALYZE)');
      if (any(BALANCE_READ_SMALL, BALANCE_READ_LARGE)) {
        say('  projections: balance reads, one in flight');
        for (const m of await measureBalanceReads(models, small, large, settings)) out.set(m.name, m);
      }
      if (selected(BALANCE_AS_OF)) {
        say('  projections: balance as-of reads at the large history');
        out.set(BALANCE_AS_OF, await measureAsOf(models, large, settings, historyStartMs, built));
      }
      if (any(BALANCE_READ_CONCURRENT, BALANCE_READ_CONCURRENT_SINGLE)) {
        say(`  projections: balance reads by ${CONCURRENT_READERS} concurrent readers, batched and one statement each, alternating`);
        for (const m of await measureConcurrentReads(app, large, settings)) out.set(m.name, m);
      }
    }
  } finally {
    await database.close();
  }
  return PROJECTION_SCENARIO_NAMES.flatMap((name) => {
    const m = out.get(name);
    return m === undefined ? [] : [m];
  });
}

/** Events per interval and the latency histogram of one scenario, while it runs. */
class Recorder {
  readonly histogram: Histogram = newLatencyHistogram();
  readonly #intervals: number[] = [];
  #startNs = 0n;
  #endNs: bigint | undefined;
  #cpu: NodeJS.CpuUsage | undefined;
  #cpuUs = 0;
  #loadStart = 0;
  #loadEnd = 0;
  /** Time and CPU while paused (another scenario measured in between), left out of the figures. */
  #pausedNs = 0n;
  #pausedCpuUs = 0;
  #pause: { readonly atNs: bigint; readonly cpu: NodeJS.CpuUsage } | undefined;
  ops = 0;
  latencySamples = 0;

  /** Whether `start` was called. */
  get started(): boolean {
    return this.#cpu !== undefined;
  }

  start(): void {
    this.#startNs = process.hrtime.bigint();
    this.#cpu = process.cpuUsage();
    this.#loadStart = loadAverage1m();
  }

  /** Stops the clock until `resume` (for scenarios measured in alternating rounds). */
  pause(): void {
    if (this.#pause === undefined) this.#pause = { atNs: process.hrtime.bigint(), cpu: process.cpuUsage() };
  }

  resume(): void {
    const pause = this.#pause;
    if (pause === undefined) return;
    this.#pause = undefined;
    this.#pausedNs += process.hrtime.bigint() - pause.atNs;
    const cpu = process.cpuUsage(pause.cpu);
    this.#pausedCpuUs += cpu.user + cpu.system;
  }

  /** Counts `ops` completed now (only while the window is open); intervals are of running time, pauses left out. */
  count(ops: number): void {
    if (this.#endNs !== undefined) return;
    const at = Number(process.hrtime.bigint() - this.#startNs - this.#pausedNs) / 1e6;
    const slot = Math.floor(at / INTERVAL_MS);
    while (this.#intervals.length <= slot) this.#intervals.push(0);
    this.#intervals[slot] = (this.#intervals[slot] ?? 0) + ops;
    this.ops += ops;
  }

  latency(ns: number): void {
    recordNs(this.histogram, ns);
    this.latencySamples += 1;
  }

  stop(): void {
    if (this.#endNs !== undefined) return;
    if (!this.started) this.start();
    this.resume();
    this.#endNs = process.hrtime.bigint();
    const cpu = process.cpuUsage(this.#cpu);
    this.#cpuUs = cpu.user + cpu.system - this.#pausedCpuUs;
    this.#loadEnd = loadAverage1m();
  }

  seconds(): number {
    return Number((this.#endNs ?? process.hrtime.bigint()) - this.#startNs - this.#pausedNs) / 1e9;
  }

  /** The measurement; full intervals only are throughput samples (none: the whole run stands in). */
  measurement(fields: {
    name: string;
    description: string;
    latencyOf: string;
    target?: Target;
    rawCeiling?: string;
    sampleOf?: string;
    samples?: readonly number[];
    details?: Readonly<Record<string, number | string | boolean>>;
  }): Measurement {
    const seconds = this.seconds();
    const full = Math.floor((seconds * 1_000) / INTERVAL_MS);
    const samples = fields.samples ?? this.#intervals.slice(0, full).map((ops) => ops / (INTERVAL_MS / 1_000));
    return {
      name: fields.name,
      description: fields.description,
      target: fields.target,
      latencyOf: fields.latencyOf,
      opsPerSecSamples: samples,
      sampleOf: fields.sampleOf ?? `${INTERVAL_MS / 1_000} s interval`,
      opsPerSecOverall: this.ops / Math.max(seconds, 1e-9),
      latencyMs: summariseMs(this.histogram),
      batchLatencyMs: null,
      latencySamples: this.latencySamples,
      ops: this.ops,
      errors: 0,
      cpuPerWall: this.#cpuUs / 1e6 / Math.max(seconds, 1e-9),
      loadAverage1m: { start: this.#loadStart, end: this.#loadEnd },
      peers: fields.rawCeiling === undefined ? {} : { rawCeiling: fields.rawCeiling },
      series: null,
      details: fields.details ?? {},
    };
  }
}

/** One follow measurement: which projections the runner has, and the scenario names. */
interface FollowPhase {
  readonly label: string;
  readonly tenantId: string;
  /** The writer's scenario: the rate the projections are compared with. */
  readonly writer: string;
  /** Scenario name per projection the runner has. */
  readonly projections: Readonly<Partial<Record<'balances' | 'history', string>>>;
}

/** Both projections in one runner (the deployment), then each alone: which one holds the runner back. */
const FOLLOW_PHASES: readonly FollowPhase[] = [
  { label: 'both projections', tenantId: 'bench-follow', writer: FOLLOW_WRITER, projections: { balances: FOLLOW_BALANCES, history: FOLLOW_HISTORY } },
  { label: 'the balances projection alone', tenantId: 'bench-follow-balances', writer: FOLLOW_WRITER_BALANCES_ALONE, projections: { balances: FOLLOW_BALANCES_ALONE } },
  { label: 'the history projection alone', tenantId: 'bench-follow-history', writer: FOLLOW_WRITER_HISTORY_ALONE, projections: { history: FOLLOW_HISTORY_ALONE } },
];

/**
 * A writer submits 1,000 transfers at a time and awaits them, back to back, for the window, while
 * a live runner with the phase's projections follows in a process of its own (as deployed: the
 * writer's event loop is not shared with it). Every writer batch's lag is the time from its
 * acknowledgement to the commit of the projection batch that applied its last event.
 */
async function measureFollow(appUrl: string, store: PostgresEventStore, settings: ProjectionsBenchSettings, phase: FollowPhase): Promise<Measurement[]> {
  const { tenantId } = phase;
  const writer = await openFundedWriter(store, tenantId, settings.accounts);
  const names = phase.projections as Record<string, string>;
  const scenarios = Object.values(names);
  const recorders = new Map<string, Recorder>([[phase.writer, new Recorder()], ...scenarios.map((name) => [name, new Recorder()] as const)]);
  const acked: { readonly lastVersion: number; readonly atNs: bigint }[] = [];
  const applied = new Map<string, { version: number; next: number; atNs: bigint }>();
  let following = false;
  const settle = (scenario: string): void => {
    const state = applied.get(scenario);
    const recorder = recorders.get(scenario);
    if (state === undefined || recorder === undefined) return;
    while (state.next < acked.length && (acked[state.next]?.lastVersion ?? Infinity) <= state.version) {
      const ack = acked[state.next] as { readonly atNs: bigint };
      // A batch the projection had applied before the writer's acknowledgement arrived lags by nothing.
      recorder.latency(Math.max(0, Number(state.atNs - ack.atNs)));
      state.next += 1;
    }
  };
  const onBatch = (batch: FollowBatchMessage): void => {
    const scenario = names[batch.projection];
    if (scenario === undefined || !following) return;
    const state = applied.get(scenario) ?? { version: 0, next: 0, atNs: 0n };
    state.version = Math.max(state.version, batch.ledgerVersion);
    state.atNs = BigInt(batch.atNs);
    applied.set(scenario, state);
    const recorder = recorders.get(scenario);
    // A projection's rate is timed from its first batch after the writer started: by then it is
    // one lag behind the writer, and stays so while it keeps up (timed from the writer's start,
    // that lag would count as slowness).
    if (recorder !== undefined && !recorder.started) recorder.start();
    recorder?.count(batch.events);
    settle(scenario);
  };
  const runner = await startFollowRunner(appUrl, tenantId, settings.batchSize, Object.keys(names), onBatch);
  const startVersion = writer.version;
  for (const scenario of scenarios) applied.set(scenario, { version: startVersion, next: 0, atNs: 0n });
  following = true;
  const writerRecorder = recorders.get(phase.writer) as Recorder;
  let drainMs: number;
  try {
    writerRecorder.start();
    const started = Date.now();
    for (let n = 0; Date.now() - started < settings.followWindowMs; n += 1) {
      const before = writer.version;
      const sentNs = process.hrtime.bigint();
      await submitTransfers(writer, settings.accounts, `f-${n}`, APPEND_BATCH);
      const atNs = process.hrtime.bigint();
      writerRecorder.latency(Number(atNs - sentNs));
      writerRecorder.count(writer.version - before);
      acked.push({ lastVersion: writer.version, atNs });
      for (const scenario of scenarios) settle(scenario);
    }
    for (const recorder of recorders.values()) recorder.stop();
    const drainStarted = Date.now();
    await runner.drain();
    drainMs = Date.now() - drainStarted;
  } finally {
    runner.kill();
    await writer.close();
  }
  const writeRate = writerRecorder.ops / writerRecorder.seconds();
  const lagTarget = 2_000;
  const follow = (scenario: string, projection: string): Measurement => {
    const recorder = recorders.get(scenario) as Recorder;
    return recorder.measurement({
      name: scenario,
      description: `the ${projection} projection following the writer, the runner (with ${phase.label}) in a process of its own: events it applied per second while the writer appended flat out (timed from its first batch after the writer started); latency is each writer batch's lag`,
      latencyOf: 'lag of a writer batch (acknowledged → applied and committed)',
      rawCeiling: phase.writer,
      target: {
        // The writer it follows fills the peer column; the miss names it, not "raw ceiling".
        ratioTo: { scenario: phase.writer, min: 0.95 },
        latencyP99MsMax: lagTarget,
        statement: `issue 4: the async runner keeps up with the writer's sustained rate (≥ 0.95 × its events/s, lag p99 ≤ ${lagTarget / 1_000} s)`,
      },
      details: {
        writerEventsPerSec: Math.round(writeRate),
        projectedOverWritten: Math.round((recorder.ops / Math.max(writerRecorder.ops, 1)) * 1_000) / 1_000,
        writerBatchesLagged: recorder.latencySamples,
        writerBatches: acked.length,
        drainMsAfterWindow: drainMs,
        batchSize: settings.batchSize,
      },
    });
  };
  return [
    writerRecorder.measurement({
      name: phase.writer,
      description: `the writer appending batches of 1,000 transfers back to back while a runner with ${phase.label} follows it: the rate the projections must keep up with`,
      latencyOf: 'append of 1,000 transfers',
      details: { events: writerRecorder.ops, windowMs: settings.followWindowMs },
    }),
    ...Object.entries(names).map(([projection, scenario]) => follow(scenario, projection)),
  ];
}

/** A follow runner in its own process (`follow-runner.ts`), caught up with the log as it stands. */
async function startFollowRunner(
  appUrl: string,
  tenantId: string,
  batchSize: number,
  projections: readonly string[],
  onBatch: (batch: FollowBatchMessage) => void,
): Promise<{ drain(): Promise<void>; kill(): void }> {
  const child = fork(fileURLToPath(new URL('./follow-runner.ts', import.meta.url)), [appUrl, tenantId, String(batchSize), LEDGER_ID, projections.join(',')], {
    // The runner gets the parent's young-generation size (it decodes as many objects as the writer makes).
    execArgv: ['--import', 'tsx', ...[youngGenerationFlag()].filter((flag) => flag !== undefined)],
    env: { ...process.env, TSX_TSCONFIG_PATH: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let drained = false;
  let ready!: () => void;
  const readySignal = new Promise<void>((resolve) => (ready = resolve));
  const exit = new Promise<string>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? String(code))));
  child.on('message', (message: FollowRunnerMessage) => {
    if (message.type === 'batch') onBatch(message);
    else if (message.type === 'ready') ready();
    else drained = true;
  });
  const early = await Promise.race([readySignal.then(() => undefined), exit]);
  if (early !== undefined) throw new Error(`the follow runner exited before it caught up (${early})`);
  return {
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    async drain() {
      child.send({ type: 'drain' });
      const status = await exit;
      if (!drained || status !== '0') throw new Error(`the follow runner did not drain (exit ${status})`);
    },
  };
}

/** Projects a history from zero; each projection's rate is taken until it applied the last event. */
async function measureCatchUp(app: pg.Pool, store: PostgresEventStore, tenantId: string, events: number, batchSize: number, say: (message: string) => void): Promise<Measurement[]> {
  const names = { balances: CATCH_UP_BALANCES, history: CATCH_UP_HISTORY } as Record<string, string>;
  const recorders = new Map<string, Recorder>([
    [CATCH_UP_BALANCES, new Recorder()],
    [CATCH_UP_HISTORY, new Recorder()],
  ]);
  const onBatch = (batch: BatchCommitted): void => {
    const recorder = recorders.get(names[batch.projection] ?? '');
    if (recorder === undefined) return;
    recorder.count(batch.events);
    recorder.latency(batch.durationMs * 1e6);
    if (recorder.ops >= events) recorder.stop();
  };
  const runner = new ProjectionRunner({ pool: app, store, tenantIds: [tenantId], projections: [balancesProjection(), historyProjection()], currencies: CURRENCIES, batchSize, onBatch });
  for (const recorder of recorders.values()) recorder.start();
  await runner.start();
  try {
    await runner.whenCaughtUp(900_000);
  } finally {
    await runner.stop();
  }
  const result: Measurement[] = [];
  for (const [projection, scenario] of Object.entries(names)) {
    const recorder = recorders.get(scenario) as Recorder;
    recorder.stop();
    if (recorder.ops < events) throw new Error(`${projection} applied ${recorder.ops} of ${events} events`);
    say(`    ${projection}: ${int(events)} events in ${recorder.seconds().toFixed(1)} s (${int(events / recorder.seconds())} events/s)`);
    result.push(
      recorder.measurement({
        name: scenario,
        description: `the ${projection} projection catching up from zero over ${int(events)} events (1 in 100 back-dated), side by side with the other`,
        latencyOf: `batch of up to ${int(batchSize)} events (transaction start → commit)`,
        details: { historyEvents: events, seconds: Math.round(recorder.seconds() * 100) / 100, batchSize },
      }),
    );
  }
  return result;
}

/** Balance reads, one in flight, alternating between the 10-event and the large history. */
async function measureBalanceReads(
  models: ReadModels,
  small: { readonly tenantId: string; readonly ledgerId: string },
  large: { readonly tenantId: string; readonly ledgerId: string },
  settings: ProjectionsBenchSettings,
): Promise<Measurement[]> {
  const smallAccounts = accountIds(4);
  const largeAccounts = accountIds(settings.accounts);
  const recorders = [new Recorder(), new Recorder()] as const;
  const read = (i: number): Promise<unknown> =>
    i % 2 === 0
      ? models.balance(small.tenantId, small.ledgerId, smallAccounts[(i >> 1) % smallAccounts.length] as string)
      : models.balance(large.tenantId, large.ledgerId, largeAccounts[((i >> 1) * 7_919) % largeAccounts.length] as string);
  let wallStartNs = 0n;
  // Interleaved, one read of each history in turn, so background noise falls on both alike. Each
  // recorder's clock runs only around its own reads (paused while the other history is read), so
  // each rate is its own reads ÷ its own time, not ÷ the time both took.
  await timeSequential(
    2 * settings.balanceReads,
    read,
    (i, ns) => {
      const recorder = recorders[i % 2] as Recorder;
      recorder.count(1);
      recorder.latency(ns);
      recorder.pause();
    },
    () => {
      wallStartNs = process.hrtime.bigint();
      recorders.forEach((r) => {
        r.start();
        r.pause();
      });
    },
    (i) => (recorders[i % 2] as Recorder).resume(),
  );
  recorders.forEach((r) => r.stop());
  const wallSeconds = Math.round((Number(process.hrtime.bigint() - wallStartNs) / 1e9) * 1_000) / 1_000;
  const [smallReads, largeReads] = recorders;
  const p99Small = summariseMs(smallReads.histogram).p99;
  const p99Large = summariseMs(largeReads.histogram).p99;
  const ratio = Math.round((p99Large / p99Small) * 1_000) / 1_000;
  return [
    smallReads.measurement({
      name: BALANCE_READ_SMALL,
      description: 'ReadModels.balance on a ledger with 10 events of history, one request in flight (interleaved with the large-history reads; its rate is its reads ÷ its own reads\' time)',
      latencyOf: 'balance read',
      details: { historyEvents: 10, timedSeconds: Math.round(smallReads.seconds() * 1_000) / 1_000, interleavedWallSeconds: wallSeconds },
    }),
    largeReads.measurement({
      name: BALANCE_READ_LARGE,
      description: `ReadModels.balance on a ledger with ${int(settings.historyEvents)} events of history and ${int(settings.accounts)} accounts, one request in flight; flat in history length means p99 ≤ 1.5 × the 10-event p99`,
      latencyOf: 'balance read',
      // Both parts are stated at 1,000,000 events (flat = p99 there ≤ 1.5 × at 10), so a smaller history (CI) does not judge them.
      target: {
        latencyP99MsMax: 1,
        latencyP99RatioTo: { scenario: BALANCE_READ_SMALL, max: 1.5 },
        historyEvents: 1_000_000,
        statement: 'issue 4: balance read p99 ≤ 1 ms with one request in flight, flat in history length (p99 at 1,000,000 events ≤ 1.5 × p99 at 10)',
      },
      details: {
        historyEvents: settings.historyEvents,
        p99RatioTo10Events: ratio,
        flatInHistoryLength: ratio <= 1.5,
        timedSeconds: Math.round(largeReads.seconds() * 1_000) / 1_000,
        interleavedWallSeconds: wallSeconds,
      },
    }),
  ];
}

/** Readers of {@link measureConcurrentReads}: as many as the API benchmark's connections. */
const CONCURRENT_READERS = 64;
const CONCURRENT_ROUNDS = 6;

/**
 * Balance reads by 64 concurrent readers at the large history, in alternating rounds of the two
 * ways `ReadModels` can answer them: batched (the reads asked in one turn of the event loop share
 * a statement) and one statement per read (`batchBalanceReads: false`), on the same pool.
 */
async function measureConcurrentReads(pool: pg.Pool, large: { readonly tenantId: string; readonly ledgerId: string }, settings: ProjectionsBenchSettings): Promise<Measurement[]> {
  const accounts = accountIds(settings.accounts);
  const modes = [
    { name: BALANCE_READ_CONCURRENT_SINGLE, models: new ReadModels({ pool, currencies: CURRENCIES, batchBalanceReads: false }), recorder: new Recorder(), samples: [] as number[] },
    { name: BALANCE_READ_CONCURRENT, models: new ReadModels({ pool, currencies: CURRENCIES }), recorder: new Recorder(), samples: [] as number[] },
  ];
  const perRound = Math.max(CONCURRENT_READERS, Math.floor(settings.concurrentReads / CONCURRENT_ROUNDS));
  let seed = 0;
  const round = async (models: ReadModels, reads: number, record: ((ns: number) => void) | undefined): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENT_READERS }, async () => {
        while (next < reads) {
          next += 1;
          seed += 1;
          const started = process.hrtime.bigint();
          const balance = await models.balance(large.tenantId, large.ledgerId, accounts[(seed * 7_919) % accounts.length] as string);
          if (balance === undefined) throw new Error('a benchmark account has no balance');
          record?.(Number(process.hrtime.bigint() - started));
        }
      }),
    );
  };
  for (const mode of modes) await round(mode.models, Math.ceil(perRound / 10), undefined);
  for (let r = 0; r < CONCURRENT_ROUNDS; r += 1) {
    for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
      if (!mode.recorder.started) mode.recorder.start();
      else mode.recorder.resume();
      const startedNs = process.hrtime.bigint();
      await round(mode.models, perRound, (ns) => {
        mode.recorder.count(1);
        mode.recorder.latency(ns);
      });
      mode.samples.push(perRound / (Number(process.hrtime.bigint() - startedNs) / 1e9));
      mode.recorder.pause();
    }
  }
  for (const mode of modes) mode.recorder.stop();
  const [single, batched] = modes as [(typeof modes)[number], (typeof modes)[number]];
  const ratio = Math.round((summariseThroughput(batched.samples).median / summariseThroughput(single.samples).median) * 1_000) / 1_000;
  return [
    single.recorder.measurement({
      name: BALANCE_READ_CONCURRENT_SINGLE,
      description: `ReadModels.balance with batchBalanceReads: false (one statement per read), ${CONCURRENT_READERS} concurrent readers at ${int(settings.historyEvents)} events of history: the peer of ${BALANCE_READ_CONCURRENT}`,
      latencyOf: 'balance read',
      sampleOf: `round of ${int(perRound)} reads`,
      samples: single.samples,
    }),
    batched.recorder.measurement({
      name: BALANCE_READ_CONCURRENT,
      description: `ReadModels.balance, ${CONCURRENT_READERS} concurrent readers at ${int(settings.historyEvents)} events of history: the reads asked in one turn of the event loop share a statement (the default)`,
      latencyOf: 'balance read',
      sampleOf: `round of ${int(perRound)} reads`,
      samples: batched.samples,
      rawCeiling: BALANCE_READ_CONCURRENT_SINGLE,
      details: { readers: CONCURRENT_READERS, rounds: CONCURRENT_ROUNDS, ratioToOneStatementEach: ratio },
    }),
  ];
}

/** Balance as of a version, recorded time or effective time, in turn, at points spread over the history. */
async function measureAsOf(
  models: ReadModels,
  large: { readonly tenantId: string; readonly ledgerId: string },
  settings: ProjectionsBenchSettings,
  historyStartMs: number,
  built: { readonly events: number; readonly lastRecordedMs: number },
): Promise<Measurement> {
  const largeAccounts = accountIds(settings.accounts);
  const span = built.lastRecordedMs - historyStartMs;
  const kinds = ['ledgerVersion', 'recordedAt', 'effectiveAt'] as const;
  const byKind = new Map(kinds.map((kind) => [kind, newLatencyHistogram()]));
  const recorder = new Recorder();
  await timeSequential(
    settings.asOfReads,
    (i) => {
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
    },
    (i, ns) => {
      recorder.count(1);
      recorder.latency(ns);
      recordNs(byKind.get(kinds[i % 3] as (typeof kinds)[number]) as Histogram, ns);
    },
    () => recorder.start(),
  );
  recorder.stop();
  const details: Record<string, number> = { historyEvents: settings.historyEvents };
  for (const [kind, histogram] of byKind) details[`${kind}P99Ms`] = Math.round(summariseMs(histogram).p99 * 1_000) / 1_000;
  return recorder.measurement({
    name: BALANCE_AS_OF,
    description: `ReadModels.balanceAt as of a ledger version, a recorded time and an effective time in turn, at ${int(settings.historyEvents)} events of history, one request in flight`,
    latencyOf: 'balance read as of a point',
    // Judged only at the history the target names (the full run), not on the CI run's 20,000 events.
    target: { latencyP99MsMax: 5, historyEvents: 1_000_000, statement: 'issue 4: balance as of a past instant p99 ≤ 5 ms at 1,000,000 events of history' },
    details,
  });
}

/**
 * The writer's sustained rate through a store without and with the inline balances hook, then
 * how soon a balance read sees a single transfer: inline (at once) and async (runner live on NOTIFY).
 */
async function measureInline(app: pg.Pool, settings: ProjectionsBenchSettings): Promise<Measurement[]> {
  const plain = await PostgresEventStore.open({ pool: app, horizonWaitMs: 5_000 });
  const withHook = await PostgresEventStore.open({ pool: app, horizonWaitMs: 5_000, inline: inlineBalances({ currencies: CURRENCIES }) });
  const models = new ReadModels({ pool: app, currencies: CURRENCIES });
  const rate = async (store: PostgresEventStore, tenantId: string): Promise<Recorder> => {
    const writer = await openFundedWriter(store, tenantId, settings.accounts);
    const recorder = new Recorder();
    recorder.start();
    const started = Date.now();
    for (let n = 0; Date.now() - started < settings.inlineWindowMs; n += 1) {
      const before = writer.version;
      await submitTransfers(writer, settings.accounts, `r-${n}`, APPEND_BATCH);
      recorder.count(writer.version - before);
    }
    recorder.stop();
    await writer.close();
    return recorder;
  };
  const visible = async (store: PostgresEventStore, tenantId: string, recorder: Recorder): Promise<void> => {
    const writer = await openFundedWriter(store, tenantId, 4);
    const runner = new ProjectionRunner({ pool: app, store: plain, tenantIds: [tenantId], projections: [balancesProjection()], currencies: CURRENCIES });
    await runner.start();
    await runner.whenCaughtUp();
    for (let n = 0; n < settings.visibilitySamples; n += 1) {
      const result = await writer.submit(transferCommand(`v-${n}`, 'acc-0', 'acc-1', 1n));
      if (!result.ok) throw new Error(`transfer refused: ${result.code}`);
      const expected = writer.account('acc-1')?.creditsPosted;
      const started = process.hrtime.bigint();
      for (;;) {
        const balance = await models.balance(tenantId, LEDGER_ID, 'acc-1');
        if (balance !== undefined && BigInt(balance.creditsPosted.replace('.', '')) === expected) break;
      }
      recorder.latency(Number(process.hrtime.bigint() - started));
    }
    await runner.stop();
    await writer.close();
  };
  const asyncRecorder = await rate(plain, 'bench-async-rate');
  const inlineRecorder = await rate(withHook, 'bench-inline-rate');
  await visible(withHook, 'bench-inline-visible', inlineRecorder);
  await visible(plain, 'bench-async-visible', asyncRecorder);
  const asyncRate = asyncRecorder.ops / asyncRecorder.seconds();
  const inlineRate = inlineRecorder.ops / inlineRecorder.seconds();
  return [
    asyncRecorder.measurement({
      name: APPEND_ASYNC,
      description: 'the writer appending batches of 1,000 transfers back to back with no inline hook; latency is how soon a balance read sees a single transfer through the async runner (live, woken by NOTIFY)',
      latencyOf: 'append acknowledged → balance read shows it (async runner)',
      details: { windowMs: settings.inlineWindowMs, visibilitySamples: settings.visibilitySamples },
    }),
    inlineRecorder.measurement({
      name: APPEND_INLINE,
      description: 'the same with inlineBalances() in every append transaction (read-your-writes); latency is how soon a balance read sees a single transfer',
      latencyOf: 'append acknowledged → balance read shows it (inline)',
      details: { windowMs: settings.inlineWindowMs, visibilitySamples: settings.visibilitySamples, rateOverAsync: Math.round((inlineRate / asyncRate) * 1_000) / 1_000 },
    }),
  ];
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

async function catchUp(app: pg.Pool, store: PostgresEventStore, tenantId: string, batchSize: number): Promise<void> {
  const runner = new ProjectionRunner({ pool: app, store, tenantIds: [tenantId], projections: [balancesProjection(), historyProjection()], currencies: CURRENCIES, batchSize });
  await runner.start();
  try {
    await runner.whenCaughtUp(600_000);
  } finally {
    await runner.stop();
  }
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

/**
 * Runs `op` `count` times one after another, after a tenth as many unrecorded (`begin` is called
 * between the two), and passes each timed one's latency in ns to `record`.
 */
async function timeSequential(
  count: number,
  op: (i: number) => Promise<unknown>,
  record: (i: number, ns: number) => void,
  begin: () => void,
  before?: (i: number) => void,
): Promise<void> {
  const warmup = Math.max(1, Math.floor(count / 10));
  for (let i = 0; i < warmup; i += 1) await op(count + i);
  begin();
  for (let i = 0; i < count; i += 1) {
    before?.(i);
    const started = process.hrtime.bigint();
    await op(i);
    record(i, Number(process.hrtime.bigint() - started));
  }
}

function int(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Database {
  readonly app: pg.Pool;
  /** The application role's URL, for a runner in another process. */
  readonly appUrl: string;
  readonly admin: pg.Pool;
  close(): Promise<void>;
}

/**
 * A fresh database with the event store and the read models migrated, on the given server,
 * DATABASE_URL's, or an embedded one with durable settings; `close()` drops it (and stops an
 * embedded server). Refuses a server whose commits are not synchronous.
 */
async function openDatabase(givenServerUrl: string | undefined): Promise<Database> {
  const databaseUrl = givenServerUrl ?? process.env['DATABASE_URL'];
  const embedded: EmbeddedPostgresServer | undefined = databaseUrl ? undefined : await startEmbeddedPostgres();
  const serverUrl = databaseUrl ?? (embedded as EmbeddedPostgresServer).connectionString;
  const suffix = randomBytes(5).toString('hex');
  const name = `lk_projbench_${suffix}`;
  const roles = { owner: `lk_pb_${suffix}_owner`, app: `lk_pb_${suffix}_app` };
  const appPassword = randomBytes(18).toString('hex');
  const pools: pg.Pool[] = [];
  const pool = (url: string, max: number): pg.Pool => {
    const created = new pg.Pool({ connectionString: url, max, idleTimeoutMillis: 0, types: defaultTypeParsers() });
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
    const { rows } = await app.query<{ synchronous_commit: string }>(`SELECT current_setting('synchronous_commit') AS synchronous_commit`);
    if (rows[0]?.synchronous_commit !== 'on') throw new Error(`synchronous_commit is '${rows[0]?.synchronous_commit ?? '?'}'; the benchmark measures durable commits`);
    return { app, appUrl: appUrl.toString(), admin, close };
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}

// Run directly: print the measurements as JSON.
if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '\u0000')) {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((arg) => arg !== '--'),
    options: { ci: { type: 'boolean', default: false }, history: { type: 'string' }, out: { type: 'string' } },
    strict: true,
  });
  const base = values.ci ? PROJECTIONS_CI_SETTINGS : PROJECTIONS_FULL_SETTINGS;
  const settings: ProjectionsBenchSettings = values.history === undefined ? base : { ...base, historyEvents: Number(values.history) };
  const measurements = await measureProjections({ settings, say: (message) => process.stderr.write(`${message}\n`) });
  const json = `${JSON.stringify(measurements, null, 2)}\n`;
  process.stdout.write(json);
  if (values.out !== undefined) writeFileSync(values.out, json);
}
