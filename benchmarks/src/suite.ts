/**
 * The benchmark suite: a registry of scenario groups, run in order with one set of settings and
 * reported together. Each group measures its scenarios next to its own peers (a raw ceiling, and
 * Emmett where it applies) in the same run; the PostgreSQL groups share one throwaway database.
 *
 * To add a group, write a module that exports a {@link SuiteGroup} (its scenarios may use the
 * round harness in `harness.ts` or the windowed one in `load-harness.ts`) and add it to
 * {@link SUITE_GROUPS}; if it needs settings of its own, add a section to {@link SuiteSettings}
 * and to both presets.
 */
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { coreDecideEvolveScenarios, RAW_CEILING } from './core-decide-evolve.js';
import { openEmmettPeer, type EmmettPeer } from './emmett-peer.js';
import { machineInfo, versionInfo } from './environment.js';
import { gcBetweenRounds, measureScenarios, type MeasureSettings, type RoundListener } from './harness.js';
import { interleavedSchedule, INTERVAL_MS, runLoadSchedule, sandwichSchedule, type WindowListener } from './load-harness.js';
import { PG_BATCH_SIZE, PG_RAW_CEILING, postgresAppendScenarios, POSTGRES_SCENARIO_NAMES } from './postgres-append.js';
import {
  measureProjections,
  PROJECTION_OPS_UNITS,
  PROJECTION_SCENARIO_NAMES,
  PROJECTIONS_CI_SETTINGS,
  PROJECTIONS_FULL_SETTINGS,
  type ProjectionsBenchSettings,
} from './projections-bench.js';
import { openBenchDatabase, type BenchDatabase } from './postgres-database.js';
import { buildReport, type BenchmarkReport, type EmmettInfo, type MeasuredGroup, type RunMode } from './report.js';
import { createRawTable } from './raw-insert.js';
import { firstErrorReporter, type ErrorReporter } from './scenario-util.js';
import {
  batchScenarios,
  callerScenarios,
  EMMETT_BATCH,
  EMMETT_CALLERS,
  encodedRing,
  fixedRateScenario,
  LOAD_BATCH_SIZE,
  RAW_BATCH,
  RAW_CALLERS,
  WRITER_BATCH,
  WRITER_CALLERS,
  WRITER_FIXED_RATE,
  WRITER_HOT,
  type WriterLoadOptions,
} from './writer-load.js';
import { measureWriterStartup, WRITER_STARTUP } from './writer-startup.js';

/** The in-memory core group: rounds of a fixed number of decisions. */
export interface CoreSuiteSettings extends MeasureSettings {
  /** Accounts in each fixture ledger; even. */
  readonly accounts: number;
}

/** The PostgreSQL append group: rounds of appends of {@link PG_BATCH_SIZE} transfers. */
export interface PostgresSuiteSettings {
  readonly rounds: number;
  readonly warmupRounds: number;
  /** Appends per round and scenario. */
  readonly batchesPerRound: number;
  /** Accounts in each round's fixture ledger; even. */
  readonly accounts: number;
}

/** The writer groups on PostgreSQL: time windows of callers, and the start-up. */
export interface WriterSuiteSettings {
  /** Accounts in each fixture ledger; even. */
  readonly accounts: number;
  /** Concurrent callers of the caller scenarios. */
  readonly callers: number;
  /** The writer's continuous window of batches of 1,000. */
  readonly sustainedWindowMs: number;
  /** Each of a batch peer's two windows (one before the writer's, one after). */
  readonly peerWindowMs: number;
  /** One unrecorded window per scenario first: JIT, connections and the server's caches warm up. */
  readonly warmupWindowMs: number;
  /** Rounds of the caller group (one window per scenario each, interleaved). */
  readonly callerRounds: number;
  readonly callerWindowMs: number;
  /** Arrival rate of the fixed-rate scenario, transfers/s, and its window. */
  readonly fixedRatePerSec: number;
  readonly fixedRateWindowMs: number;
  /** Events in the start-up ledger, and how many of them come after its snapshot. */
  readonly startupHistoryEvents: number;
  readonly startupTailEvents: number;
  /** Timed start-ups. */
  readonly startupOpens: number;
}

/** What a suite run needs. A group whose section is `undefined` is left out. */
export interface SuiteSettings {
  readonly mode: RunMode;
  /** Seed of the generated transfer streams. */
  readonly seed: number;
  /**
   * Run only these scenarios (and the peers their ratios need). A group runs when any of its
   * scenarios is named; the writer groups then run whole, since their scenarios are each other's peers.
   */
  readonly only: readonly string[] | undefined;
  readonly core: CoreSuiteSettings | undefined;
  /** Leaving both PostgreSQL sections out starts no server. */
  readonly postgres: PostgresSuiteSettings | undefined;
  readonly writer: WriterSuiteSettings | undefined;
  /**
   * The projections group (issue 4) on a database of its own on the same server. It runs only
   * with the PostgreSQL groups (`--no-pg` leaves it out too).
   */
  readonly projections: ProjectionsBenchSettings | undefined;
  /** Whether to run the Emmett peer (when it cannot be loaded the run says why and goes on without it). */
  readonly emmett: boolean;
}

/** `pnpm bench`: every scenario at full length (8–11 minutes on a 2-core machine: recorded runs took 498–676 s). */
export const FULL_SETTINGS: SuiteSettings = {
  mode: 'full',
  seed: 42,
  only: undefined,
  core: { rounds: 15, warmupRounds: 3, opsPerRound: 200_000, batchSize: 1_000, accounts: 10_000 },
  postgres: { rounds: 10, warmupRounds: 2, batchesPerRound: 20, accounts: 1_000 },
  writer: {
    accounts: 1_000,
    callers: 64,
    sustainedWindowMs: 60_000,
    peerWindowMs: 10_000,
    warmupWindowMs: 2_000,
    callerRounds: 5,
    callerWindowMs: 5_000,
    fixedRatePerSec: 5_000,
    fixedRateWindowMs: 10_000,
    startupHistoryEvents: 1_000_000,
    startupTailEvents: 25_000,
    startupOpens: 5,
  },
  projections: PROJECTIONS_FULL_SETTINGS,
  emmett: true,
};

/**
 * `pnpm bench:ci`: the same scenarios, short (about 2 minutes on a 2-core machine, the server's
 * start included: 119 s recorded). The start-up runs on 100,000 events of history and the
 * projections on 20,000, so the targets stated at 1,000,000 events are reported as not judged.
 */
export const CI_SETTINGS: SuiteSettings = {
  ...FULL_SETTINGS,
  mode: 'ci',
  core: { rounds: 5, warmupRounds: 2, opsPerRound: 50_000, batchSize: 1_000, accounts: 10_000 },
  postgres: { rounds: 3, warmupRounds: 1, batchesPerRound: 5, accounts: 1_000 },
  writer: {
    ...(FULL_SETTINGS.writer as WriterSuiteSettings),
    sustainedWindowMs: 10_000,
    peerWindowMs: 3_000,
    warmupWindowMs: 1_000,
    callerRounds: 3,
    callerWindowMs: 2_000,
    fixedRateWindowMs: 5_000,
    startupHistoryEvents: 100_000,
    startupOpens: 3,
  },
  projections: PROJECTIONS_CI_SETTINGS,
};

/** Listeners of a suite run. */
export interface SuiteListeners {
  /** After each measured round of a round-based group. */
  readonly onRound?: RoundListener;
  /** After each recorded window of a windowed group. */
  readonly onWindow?: WindowListener;
  /** Steps worth a line: the server starting, a scenario's first error, progress of long set-ups. */
  readonly onMessage?: (message: string) => void;
}

/** What the PostgreSQL groups share: one database, one store, Emmett (when it runs) and the peers' rows. */
export interface PostgresShared {
  readonly database: BenchDatabase;
  readonly store: PostgresEventStore;
  readonly emmett: EmmettPeer | undefined;
  readonly emmettInfo: EmmettInfo;
}

/** What a group gets to measure with. */
export interface SuiteContext {
  readonly settings: SuiteSettings;
  readonly listeners: SuiteListeners;
  /** Passes on each scenario's first error. */
  readonly report: ErrorReporter;
  /** Whether a scenario was asked for (always true without `--only`); groups whose scenarios are each other's peers run whole. */
  readonly selected: (name: string) => boolean;
  /** Opens the shared PostgreSQL resources on first use. */
  readonly postgres: () => Promise<PostgresShared>;
}

/** A group of scenarios measured together. */
export interface SuiteGroup {
  readonly id: string;
  /** Whether it needs the PostgreSQL server. */
  readonly needsPostgres: boolean;
  /** Every scenario the group can report, in report order. */
  scenarioNames(settings: SuiteSettings): readonly string[];
  /** Whether the settings include the group. */
  enabled(settings: SuiteSettings): boolean;
  measure(context: SuiteContext): Promise<MeasuredGroup>;
}

const coreGroup: SuiteGroup = {
  id: 'core',
  needsPostgres: false,
  scenarioNames: () => [RAW_CEILING, 'decide-evolve-prevalidated', 'validate-decide-evolve'],
  enabled: (settings) => settings.core !== undefined,
  async measure(context) {
    const core = context.settings.core as CoreSuiteSettings;
    const all = coreDecideEvolveScenarios({ accounts: core.accounts, seed: context.settings.seed });
    const scenarios = all.filter((s) => s.name === RAW_CEILING || context.selected(s.name));
    return {
      info: {
        id: 'core',
        title: 'In memory: decide + evolve (no store)',
        rawCeiling: RAW_CEILING,
        method: `${core.rounds} rounds × ${int(core.opsPerRound)} transfers per scenario (+${core.warmupRounds} warm-up), interleaved with a rotating order; one sample per round; latency is a batch of ${int(core.batchSize)} timed together ÷ its size.`,
        settings: { ...core },
      },
      measurements: await measureScenarios(scenarios, core, context.listeners.onRound),
    };
  },
};

const postgresAppendGroup: SuiteGroup = {
  id: 'postgres',
  needsPostgres: true,
  scenarioNames: () => POSTGRES_SCENARIO_NAMES,
  enabled: (settings) => settings.postgres !== undefined,
  async measure(context) {
    const pg = context.settings.postgres as PostgresSuiteSettings;
    const { database } = await context.postgres();
    const all = await postgresAppendScenarios({ app: database.app, accounts: pg.accounts, seed: context.settings.seed, onError: context.report });
    const scenarios = all.filter((s) => s.name === PG_RAW_CEILING || context.selected(s.name));
    const measure: MeasureSettings = { rounds: pg.rounds, warmupRounds: pg.warmupRounds, opsPerRound: pg.batchesPerRound * PG_BATCH_SIZE, batchSize: PG_BATCH_SIZE };
    return {
      info: {
        id: 'postgres',
        title: 'PostgreSQL: appends of 1,000 (rounds)',
        rawCeiling: PG_RAW_CEILING,
        method: `${pg.rounds} rounds × ${pg.batchesPerRound} appends of ${int(PG_BATCH_SIZE)} per scenario (+${pg.warmupRounds} warm-up), interleaved with a rotating order; one sample per round; latency is one append and its commit.`,
        settings: { ...pg, batchSize: PG_BATCH_SIZE },
      },
      measurements: await measureScenarios(scenarios, measure, context.listeners.onRound),
    };
  },
};

const writerBatchGroup: SuiteGroup = {
  id: 'writer-batch',
  needsPostgres: true,
  scenarioNames: (settings) => [RAW_BATCH, ...(settings.emmett ? [EMMETT_BATCH] : []), WRITER_BATCH],
  enabled: (settings) => settings.writer !== undefined,
  async measure(context) {
    const writer = context.settings.writer as WriterSuiteSettings;
    const { main, peers } = batchScenarios(await writerLoadOptions(context));
    const measurements = await runLoadSchedule(sandwichSchedule(main, peers, writer.sustainedWindowMs, writer.peerWindowMs, writer.warmupWindowMs), context.listeners.onWindow);
    return {
      info: {
        id: 'writer-batch',
        title: 'PostgreSQL: batches of 1,000 through the writer, sustained',
        rawCeiling: RAW_BATCH,
        method:
          `The writer runs one continuous ${seconds(writer.sustainedWindowMs)} window; each peer runs ${seconds(writer.peerWindowMs)} before it and ${seconds(writer.peerWindowMs)} after it (peers in order, writer, peers in reverse), after a ${seconds(writer.warmupWindowMs)} warm-up window each. ` +
          `A throughput sample is one ${INTERVAL_MS / 1_000} s interval; latency is one batch of ${int(LOAD_BATCH_SIZE)} (all its transfers acknowledged, i.e. durably committed).`,
        settings: { sustainedWindowMs: writer.sustainedWindowMs, peerWindowMs: writer.peerWindowMs, warmupWindowMs: writer.warmupWindowMs, batchSize: LOAD_BATCH_SIZE, accounts: writer.accounts },
      },
      measurements,
    };
  },
};

const writerCallersGroup: SuiteGroup = {
  id: 'writer-callers',
  needsPostgres: true,
  scenarioNames: (settings) => [RAW_CALLERS, ...(settings.emmett ? [EMMETT_CALLERS] : []), WRITER_CALLERS, WRITER_HOT],
  enabled: (settings) => settings.writer !== undefined,
  async measure(context) {
    const writer = context.settings.writer as WriterSuiteSettings;
    const scenarios = callerScenarios(await writerLoadOptions(context));
    const measurements = await runLoadSchedule(interleavedSchedule(scenarios, writer.callerRounds, writer.callerWindowMs, writer.warmupWindowMs), context.listeners.onWindow);
    return {
      info: {
        id: 'writer-callers',
        title: `PostgreSQL: ${writer.callers} concurrent callers, one transfer at a time`,
        rawCeiling: RAW_CALLERS,
        method: `${writer.callerRounds} rounds of one ${seconds(writer.callerWindowMs)} window per scenario (+ a ${seconds(writer.warmupWindowMs)} warm-up window each), interleaved with a rotating order; a throughput sample is one window; latency is one transfer, from send to acknowledgement.`,
        settings: { callers: writer.callers, rounds: writer.callerRounds, windowMs: writer.callerWindowMs, warmupWindowMs: writer.warmupWindowMs, accounts: writer.accounts },
      },
      measurements,
    };
  },
};

const writerFixedRateGroup: SuiteGroup = {
  id: 'writer-fixed-rate',
  needsPostgres: true,
  scenarioNames: () => [WRITER_FIXED_RATE],
  enabled: (settings) => settings.writer !== undefined,
  async measure(context) {
    const writer = context.settings.writer as WriterSuiteSettings;
    const scenario = fixedRateScenario(await writerLoadOptions(context));
    const windows = [
      { scenario, round: -1, durationMs: writer.warmupWindowMs },
      { scenario, round: 0, durationMs: writer.fixedRateWindowMs },
    ];
    return {
      info: {
        id: 'writer-fixed-rate',
        title: `PostgreSQL: ${int(writer.fixedRatePerSec)} transfers/s at fixed arrival times`,
        rawCeiling: null,
        method: `One ${seconds(writer.fixedRateWindowMs)} window (after a ${seconds(writer.warmupWindowMs)} warm-up) of an open-loop generator: transfer i is due at start + i ÷ rate and sent when due, whether or not earlier ones have completed; latency is from the due time to the acknowledgement, so a stall is charged to every transfer it delays (coordinated omission corrected). A throughput sample is one ${INTERVAL_MS / 1_000} s interval.`,
        settings: { ratePerSec: writer.fixedRatePerSec, windowMs: writer.fixedRateWindowMs, accounts: writer.accounts },
      },
      measurements: await runLoadSchedule(windows, context.listeners.onWindow),
    };
  },
};

const writerStartupGroup: SuiteGroup = {
  id: 'writer-startup',
  needsPostgres: true,
  scenarioNames: () => [WRITER_STARTUP],
  enabled: (settings) => settings.writer !== undefined,
  async measure(context) {
    const writer = context.settings.writer as WriterSuiteSettings;
    const { store } = await context.postgres();
    const measurement = await measureWriterStartup({
      store,
      historyEvents: writer.startupHistoryEvents,
      tailEvents: writer.startupTailEvents,
      opens: writer.startupOpens,
      accounts: writer.accounts,
      seed: context.settings.seed,
      onMessage: context.listeners.onMessage ?? (() => undefined),
    });
    return {
      info: {
        id: 'writer-startup',
        title: `PostgreSQL: writer start-up with ${int(writer.startupHistoryEvents)} events of history`,
        rawCeiling: null,
        method: `History appended untimed as pre-encoded, hash-chained batches; the writer's own snapshot saved ${int(writer.startupTailEvents)} events before the end (a writer opened once with no snapshot — the cold start in the details — saved it); then ${writer.startupOpens} timed LedgerWriter.open calls, each checked to end at the last event's version and hash. A sample is one open.`,
        settings: { historyEvents: writer.startupHistoryEvents, tailEvents: writer.startupTailEvents, opens: writer.startupOpens, accounts: writer.accounts },
      },
      measurements: [measurement],
      opsUnits: { [WRITER_STARTUP]: 'opens' },
    };
  },
};

const projectionsGroup: SuiteGroup = {
  id: 'projections',
  needsPostgres: true,
  scenarioNames: () => PROJECTION_SCENARIO_NAMES,
  // `--no-pg` (run.ts) leaves out the PostgreSQL sections it knows; this one goes with them.
  enabled: (settings) => settings.projections !== undefined && (settings.postgres !== undefined || settings.writer !== undefined),
  async measure(context) {
    const projections = context.settings.projections as ProjectionsBenchSettings;
    const { database } = await context.postgres();
    const measurements = await measureProjections({
      settings: projections,
      serverUrl: serverUrlOf(database.adminUrl),
      selected: context.selected,
      say: context.listeners.onMessage ?? (() => undefined),
    });
    return {
      info: {
        id: 'projections',
        title: 'PostgreSQL: projections and read models (issue 4)',
        // Only the follow scenarios are compared with the writer (their own peer); the reads have no ceiling.
        rawCeiling: null,
        method:
          `On a database of its own on the same server. A writer appends batches of 1,000 transfers back to back for ${seconds(projections.followWindowMs)} while a live runner in a process of its own (batches of up to ${int(projections.batchSize)}) follows it: with balances and history side by side, then with each alone (a fresh ledger each time); the writer's rate is the ceiling each projection's rate is compared with (× raw = projected ÷ written, each projection timed from its first batch after the writer started), and a latency sample is one writer batch's lag, from its acknowledgement to the commit of the projection batch that applied it. ` +
          `Then ${int(projections.historyEvents)} events of history are appended untimed and projected from zero (a latency sample is one batch); balance reads alternate between a 10-event and that history, one in flight (${int(projections.balanceReads)} each after ${int(projections.balanceReads / 10)} warm-up reads). Then 64 concurrent readers read balances at that history, batched (the default) and one statement per read (its peer, the "× raw" column), in 6 alternating rounds of ${int(projections.concurrentReads / 6)} reads each; a throughput sample is one round. Throughput samples are 1 s intervals (the whole run for a scenario shorter than one).`,
        settings: { ...projections },
      },
      measurements,
      opsUnits: PROJECTION_OPS_UNITS,
    };
  },
};

/** Every group, in the order they run and are reported. Add new groups here. */
export const SUITE_GROUPS: readonly SuiteGroup[] = [coreGroup, postgresAppendGroup, writerBatchGroup, writerCallersGroup, writerFixedRateGroup, writerStartupGroup, projectionsGroup];

/** Every scenario name the settings can produce, in report order. */
export function suiteScenarioNames(settings: SuiteSettings): string[] {
  return SUITE_GROUPS.flatMap((group) => [...group.scenarioNames(settings)]);
}

/** Runs the suite and returns its report. */
export async function runSuite(settings: SuiteSettings, listeners: SuiteListeners = {}): Promise<BenchmarkReport> {
  const startedAt = new Date();
  const machine = machineInfo();
  const known = suiteScenarioNames(settings);
  const unknown = (settings.only ?? []).filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new RangeError(`unknown scenario ${unknown.join(', ')}; known: ${known.join(', ')}`);
  const say = listeners.onMessage ?? (() => undefined);
  const report = firstErrorReporter((name, error) => say(`error in ${name}: ${error instanceof Error ? error.message : String(error)}`));
  const wanted = SUITE_GROUPS.filter(
    (group) => group.enabled(settings) && (settings.only === undefined || group.scenarioNames(settings).some((name) => settings.only?.includes(name))),
  );
  if (wanted.length === 0) throw new RangeError('no scenario selected');

  let shared: Promise<PostgresShared> | undefined;
  const interrupted = (signal: NodeJS.Signals): void => {
    say(`${signal}: dropping the benchmark database`);
    void closeShared(shared).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const groups: MeasuredGroup[] = [];
  try {
    for (const group of wanted) {
      const selected = (name: string): boolean => settings.only === undefined || settings.only.includes(name);
      say(`— ${group.id}`);
      groups.push(
        await group.measure({
          settings,
          listeners,
          report,
          selected,
          postgres: () => (shared ??= openShared(settings, say)),
        }),
      );
    }
    const postgres = shared === undefined ? null : await shared;
    return buildReport({
      startedAt,
      finishedAt: new Date(),
      mode: settings.mode,
      machine,
      versions: versionInfo(postgres?.emmett?.version),
      settings: { seed: settings.seed, gcBetweenRounds, only: settings.only?.join(',') ?? '', ledgerCoreSource: 'packages/*/src (TypeScript sources via tsconfig paths)' },
      postgres: postgres === null ? null : { server: postgres.database.info, emmett: postgres.emmettInfo },
      groups,
    });
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await closeShared(shared);
  }
}

/** Options of the writer's load scenarios, from the shared PostgreSQL resources. */
async function writerLoadOptions(context: SuiteContext): Promise<WriterLoadOptions> {
  const writer = context.settings.writer as WriterSuiteSettings;
  const { database, store, emmett } = await context.postgres();
  return {
    store,
    app: database.app,
    emmett,
    accounts: writer.accounts,
    callers: writer.callers,
    fixedRatePerSec: writer.fixedRatePerSec,
    seed: context.settings.seed,
    ring: sharedRing(writer.accounts, context.settings.seed),
    report: context.report,
  };
}

let ringCache: { readonly key: string; readonly ring: ReturnType<typeof encodedRing> } | undefined;

function sharedRing(accounts: number, seed: number): ReturnType<typeof encodedRing> {
  const key = `${accounts}:${seed}`;
  if (ringCache?.key !== key) ringCache = { key, ring: encodedRing(accounts, seed) };
  return ringCache.ring;
}

/** Starts (or reaches) the server, creates the database and opens the store and, when asked for, Emmett. */
async function openShared(settings: SuiteSettings, say: (message: string) => void): Promise<PostgresShared> {
  say(process.env['DATABASE_URL'] ? 'PostgreSQL: creating a database on the server at DATABASE_URL' : 'PostgreSQL: starting an embedded server (durable settings)');
  const database = await openBenchDatabase();
  try {
    const { info } = database;
    // openBenchDatabase has refused a server with synchronous_commit, fsync or full_page_writes off.
    say(`PostgreSQL: ${info.version.split(' on ')[0] ?? info.version}, database ${info.database}, synchronous_commit=${info.synchronousCommit}, fsync=${info.fsync}, full_page_writes=${info.fullPageWrites}`);
    const store = await PostgresEventStore.open({ pool: database.app });
    await createRawTable(database.admin, database.app);
    let emmett: EmmettPeer | undefined;
    let emmettInfo: EmmettInfo = { available: false, version: null, synchronousCommit: null, reason: 'left out (--no-emmett)' };
    const writerGroupsRun = settings.writer !== undefined;
    if (settings.emmett && writerGroupsRun) {
      try {
        emmett = await openEmmettPeer(database.adminUrl);
        emmettInfo = { available: true, version: emmett.version, synchronousCommit: emmett.synchronousCommit, reason: null };
        say(`Emmett: @event-driven-io/emmett-postgresql ${emmett.version}, schema created, synchronous_commit=${emmett.synchronousCommit}`);
        if (emmett.synchronousCommit !== 'on') throw new Error(`synchronous_commit is '${emmett.synchronousCommit}' on Emmett's connections`);
      } catch (error) {
        const reason = `could not run: ${error instanceof Error ? error.message : String(error)}`;
        await emmett?.close().catch(() => undefined);
        emmett = undefined;
        emmettInfo = { available: false, version: null, synchronousCommit: null, reason };
        say(`Emmett ${reason}; going on with the raw ceiling only`);
      }
    } else if (!writerGroupsRun) {
      emmettInfo = { available: false, version: null, synchronousCommit: null, reason: 'no writer group ran' };
    }
    return { database, store, emmett, emmettInfo };
  } catch (error) {
    await database.close();
    throw error;
  }
}

async function closeShared(shared: Promise<PostgresShared> | undefined): Promise<void> {
  if (shared === undefined) return;
  const opened = await shared.catch(() => undefined);
  if (opened === undefined) return;
  await opened.emmett?.close().catch(() => undefined);
  await opened.database.close();
}

/** The superuser URL of the server a database URL points at (its `postgres` database). */
function serverUrlOf(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  url.pathname = '/postgres';
  return url.toString();
}

function int(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function seconds(ms: number): string {
  return `${ms / 1_000} s`;
}
