/**
 * The benchmark suite: every scenario, run with one set of settings, reported together. Scenarios
 * come in groups, each measured with its own settings next to its own raw ceiling: the in-memory
 * core first, then PostgreSQL on a throwaway database. Later benchmarks join by adding their
 * scenarios to a group (or a group of their own).
 */
import { coreDecideEvolveScenarios, RAW_CEILING } from './core-decide-evolve.js';
import { machineInfo, versionInfo } from './environment.js';
import { gcBetweenRounds, measureScenarios, type MeasureSettings, type RoundListener, type Scenario, type ScenarioMeasurement } from './harness.js';
import { PG_BATCH_SIZE, PG_RAW_CEILING, postgresAppendScenarios, POSTGRES_SCENARIO_NAMES } from './postgres-append.js';
import { openBenchDatabase } from './postgres-database.js';
import { buildReport, type BenchmarkReport, type MeasuredGroup, type PostgresSection, type ReportSettings } from './report.js';

/** How the PostgreSQL group is measured. */
export interface PostgresSuiteSettings {
  /** Measured rounds per scenario. */
  readonly rounds: number;
  /** Unrecorded rounds per scenario first: JIT, connections and the server's caches warm up. */
  readonly warmupRounds: number;
  /** Appends of {@link PG_BATCH_SIZE} transfers per round and scenario. */
  readonly batchesPerRound: number;
  /** Accounts in each round's fixture ledger; even. */
  readonly accounts: number;
}

/** What a suite run needs; the measurement settings are the core group's. */
export interface SuiteSettings extends MeasureSettings {
  readonly mode: ReportSettings['mode'];
  /** Accounts in each core fixture ledger; even. */
  readonly accounts: number;
  /** Seed of the generated transfer streams. */
  readonly seed: number;
  /**
   * Run only scenarios with these names. A group runs when any of its scenarios is named, and
   * then its raw ceiling runs too, for the ratios.
   */
  readonly only: readonly string[] | undefined;
  /** The PostgreSQL group's settings; `undefined` leaves the group out (no server is started). */
  readonly postgres: PostgresSuiteSettings | undefined;
}

/** `pnpm bench`: long enough for stable medians on a quiet machine (a few minutes). */
export const FULL_SETTINGS: SuiteSettings = {
  mode: 'full',
  rounds: 15,
  warmupRounds: 3,
  opsPerRound: 200_000,
  batchSize: 1_000,
  accounts: 10_000,
  seed: 42,
  only: undefined,
  postgres: { rounds: 10, warmupRounds: 2, batchesPerRound: 20, accounts: 1_000 },
};

/** `pnpm bench:ci`: the same scenarios, short enough for CI (well under a minute with the embedded server's start). */
export const CI_SETTINGS: SuiteSettings = {
  ...FULL_SETTINGS,
  mode: 'ci',
  rounds: 5,
  warmupRounds: 2,
  opsPerRound: 50_000,
  postgres: { rounds: 3, warmupRounds: 1, batchesPerRound: 5, accounts: 1_000 },
};

/** Listeners of a suite run. */
export interface SuiteListeners {
  /** After each measured round. */
  readonly onRound?: RoundListener;
  /** Steps worth a line: the server starting, a scenario's first error. */
  readonly onMessage?: (message: string) => void;
}

/** The core group's scenarios, in report order; the raw ceiling comes first. */
export function coreScenarios(settings: Pick<SuiteSettings, 'accounts' | 'seed'>): Scenario[] {
  return [...coreDecideEvolveScenarios({ accounts: settings.accounts, seed: settings.seed })];
}

/** Every scenario name of the suite, in report order. */
export function suiteScenarioNames(settings: Pick<SuiteSettings, 'accounts' | 'seed'>): string[] {
  return [...coreScenarios(settings).map((scenario) => scenario.name), ...POSTGRES_SCENARIO_NAMES];
}

/** Runs the suite and returns its report. */
export async function runSuite(settings: SuiteSettings, listeners: SuiteListeners = {}): Promise<BenchmarkReport> {
  const startedAt = new Date();
  const machine = machineInfo();
  const known = suiteScenarioNames(settings);
  const unknown = (settings.only ?? []).filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new RangeError(`unknown scenario ${unknown.join(', ')}; known: ${known.join(', ')}`);
  const wanted = (names: readonly string[]): boolean => settings.only === undefined || names.some((name) => settings.only?.includes(name));
  const selectedIn = <T extends { readonly name: string }>(all: readonly T[], ceiling: string): T[] =>
    all.filter((scenario) => settings.only === undefined || scenario.name === ceiling || settings.only.includes(scenario.name));

  const groups: MeasuredGroup[] = [];
  const core = coreScenarios(settings);
  if (wanted(core.map((scenario) => scenario.name))) {
    groups.push({ group: 'core', rawCeiling: RAW_CEILING, measurements: await measureScenarios(selectedIn(core, RAW_CEILING), settings, listeners.onRound) });
  }
  let postgres: PostgresSection | null = null;
  if (settings.postgres !== undefined && wanted(POSTGRES_SCENARIO_NAMES)) {
    const measured = await measurePostgres(settings, settings.postgres, (all) => selectedIn(all, PG_RAW_CEILING), listeners);
    groups.push({ group: 'postgres', rawCeiling: PG_RAW_CEILING, measurements: measured.measurements });
    postgres = measured.section;
  }
  if (groups.length === 0) throw new RangeError('no scenario selected');
  return buildReport({
    startedAt,
    finishedAt: new Date(),
    machine,
    versions: versionInfo(),
    settings: {
      mode: settings.mode,
      rounds: settings.rounds,
      warmupRounds: settings.warmupRounds,
      opsPerRound: settings.opsPerRound,
      batchSize: settings.batchSize,
      accounts: settings.accounts,
      seed: settings.seed,
      gcBetweenRounds,
      ledgerCoreSource: 'packages/ledger-core/src (TypeScript sources via tsconfig paths)',
    },
    rawCeiling: RAW_CEILING,
    postgres,
    groups,
  });
}

/**
 * Opens a fresh database, measures the selected PostgreSQL scenarios there and drops it, also
 * when a scenario throws or the run is interrupted.
 */
async function measurePostgres(
  settings: SuiteSettings,
  pg: PostgresSuiteSettings,
  select: (all: readonly Scenario[]) => Scenario[],
  listeners: SuiteListeners,
): Promise<{ measurements: ScenarioMeasurement[]; section: PostgresSection }> {
  const say = listeners.onMessage ?? (() => undefined);
  say(process.env['DATABASE_URL'] ? 'PostgreSQL: creating a database on the server at DATABASE_URL' : 'PostgreSQL: starting an embedded server (durable settings)');
  const database = await openBenchDatabase();
  const interrupted = (signal: NodeJS.Signals): void => {
    say(`${signal}: dropping the benchmark database`);
    void database.close().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const { info } = database;
    say(`PostgreSQL: ${info.version.split(' on ')[0] ?? info.version}, database ${info.database}, synchronous_commit=${info.synchronousCommit}, fsync=${info.fsync}`);
    if (info.fsync !== 'on') say('warning: fsync is off on this server: commits cost nothing durable and the figures flatter both sides');
    const all = await postgresAppendScenarios({
      app: database.app,
      admin: database.admin,
      accounts: pg.accounts,
      seed: settings.seed,
      onError: (name, error) => say(`error in ${name}: ${error instanceof Error ? error.message : String(error)}`),
    });
    const measure: MeasureSettings = {
      rounds: pg.rounds,
      warmupRounds: pg.warmupRounds,
      opsPerRound: pg.batchesPerRound * PG_BATCH_SIZE,
      batchSize: PG_BATCH_SIZE,
    };
    const measurements = await measureScenarios(select(all), measure, listeners.onRound);
    return {
      measurements,
      section: {
        settings: { rounds: pg.rounds, warmupRounds: pg.warmupRounds, batchesPerRound: pg.batchesPerRound, batchSize: PG_BATCH_SIZE, opsPerRound: measure.opsPerRound, accounts: pg.accounts },
        rawCeiling: PG_RAW_CEILING,
        server: info,
      },
    };
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await database.close();
  }
}
