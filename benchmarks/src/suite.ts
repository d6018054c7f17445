/**
 * The benchmark suite: every scenario, run with one set of settings, reported together. Later
 * benchmarks join by adding their scenarios to {@link suiteScenarios}.
 */
import { coreDecideEvolveScenarios, RAW_CEILING } from './core-decide-evolve.js';
import { machineInfo, versionInfo } from './environment.js';
import { gcBetweenRounds, measureScenarios, type MeasureSettings, type RoundListener, type Scenario } from './harness.js';
import { buildReport, type BenchmarkReport, type ReportSettings } from './report.js';

/** What a suite run needs besides the measurement settings. */
export interface SuiteSettings extends MeasureSettings {
  readonly mode: ReportSettings['mode'];
  /** Accounts in each fixture ledger; even. */
  readonly accounts: number;
  /** Seed of the generated transfer streams. */
  readonly seed: number;
  /** Run only scenarios with these names (the raw ceiling always runs, for the ratios). */
  readonly only: readonly string[] | undefined;
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
};

/** `pnpm bench:ci`: the same scenarios, short enough for CI (well under a minute). */
export const CI_SETTINGS: SuiteSettings = {
  ...FULL_SETTINGS,
  mode: 'ci',
  rounds: 5,
  warmupRounds: 2,
  opsPerRound: 50_000,
};

/** Every scenario of the suite, in report order; the raw ceiling comes first. */
export function suiteScenarios(settings: Pick<SuiteSettings, 'accounts' | 'seed'>): Scenario[] {
  return [...coreDecideEvolveScenarios({ accounts: settings.accounts, seed: settings.seed })];
}

/** Runs the suite and returns its report. */
export function runSuite(settings: SuiteSettings, onRound?: RoundListener): BenchmarkReport {
  const startedAt = new Date();
  const machine = machineInfo();
  const all = suiteScenarios(settings);
  const unknown = (settings.only ?? []).filter((name) => !all.some((scenario) => scenario.name === name));
  if (unknown.length > 0) throw new RangeError(`unknown scenario ${unknown.join(', ')}; known: ${all.map((s) => s.name).join(', ')}`);
  const selected = all.filter((scenario) => settings.only === undefined || scenario.name === RAW_CEILING || settings.only.includes(scenario.name));
  const measurements = measureScenarios(selected, settings, onRound);
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
    measurements,
  });
}
