/**
 * Turns measurements into the report: one JSON document for machines, Markdown tables for
 * people, and console tables. Also writes them to the results folder. Scenarios come in groups
 * (the in-memory core, PostgreSQL); each group has its own raw ceiling, and every ratio is to the
 * ceiling of the scenario's own group, measured in the same run.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MachineInfo, VersionInfo } from './environment.js';
import type { LatencySummary, MeasureSettings, ScenarioMeasurement, Target } from './harness.js';
import type { PostgresServerInfo } from './postgres-database.js';
import { summariseThroughput } from './stats.js';

/**
 * Version of the report's JSON shape; bump it when a field changes meaning or goes away.
 * 2: scenarios carry `group`, `rawCeiling` and `batchLatencyMs`; `target.opsPerSec` is optional
 * next to `target.ratioToRawCeiling`; `postgres` describes the PostgreSQL group.
 */
export const REPORT_SCHEMA_VERSION = 2;

/** Which group a scenario belongs to; it is compared to that group's raw ceiling. */
export type ScenarioGroup = 'core' | 'postgres';

/** How the run was set up; the measurement fields are the core group's. */
export interface ReportSettings extends MeasureSettings {
  readonly mode: 'full' | 'ci' | 'custom';
  readonly accounts: number;
  readonly seed: number;
  readonly gcBetweenRounds: boolean;
  /** What the scenarios imported as `@ledgerkit/ledger-core`. */
  readonly ledgerCoreSource: string;
}

/** How the PostgreSQL group was measured and on what. */
export interface PostgresSection {
  readonly settings: {
    readonly rounds: number;
    readonly warmupRounds: number;
    /** Appends per round and scenario. */
    readonly batchesPerRound: number;
    /** Transfers (events, rows) per append. */
    readonly batchSize: number;
    readonly opsPerRound: number;
    /** Accounts in each round's fixture ledger. */
    readonly accounts: number;
  };
  readonly rawCeiling: string;
  readonly server: PostgresServerInfo;
}

/** One scenario's results. */
export interface ScenarioResult {
  readonly name: string;
  readonly group: ScenarioGroup;
  readonly description: string;
  readonly opsPerSecMedian: number;
  /** Per-round throughput; pN is the rate N % of rounds reached or beat, so p95 ≤ p50. */
  readonly opsPerSec: { readonly p50: number; readonly p95: number; readonly p99: number; readonly min: number; readonly max: number };
  /** Per-operation time in ns, each sample a batch's time divided by its size. */
  readonly latencyNs: LatencySummary;
  /** Whole-batch time in ms (3 decimals); for a PostgreSQL scenario one batch is one append and its commit. */
  readonly batchLatencyMs: LatencySummary;
  readonly latencySamples: number;
  readonly rounds: number;
  readonly ops: number;
  /** Operations that were rejected or threw; any non-zero value means the fixture is broken. */
  readonly errors: number;
  /** Process CPU time ÷ wall time while timed: ≥ ~1 alone on a core, well below 1 when it shared one or waited for a server. */
  readonly cpuPerWall: number;
  /** The scenario this one's ratio is taken to: its group's raw ceiling. */
  readonly rawCeiling: string;
  /** Median throughput divided by the raw ceiling's median from the same run; `null` if it did not run. */
  readonly ratioToRawCeiling: number | null;
  readonly target: Target | null;
  /** Whether the median reached every part of the target; `null` without one. */
  readonly meetsTarget: boolean | null;
}

/** The whole report, as written to `results/*.json`. */
export interface BenchmarkReport {
  readonly schemaVersion: number;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  readonly singleThreaded: true;
  readonly machine: MachineInfo;
  readonly versions: VersionInfo;
  readonly settings: ReportSettings;
  /** The core group's raw ceiling. */
  readonly rawCeiling: string;
  /** The PostgreSQL group's settings and server; `null` when none of its scenarios ran. */
  readonly postgres: PostgresSection | null;
  /** The core group's scenarios, then the PostgreSQL group's. */
  readonly scenarios: readonly ScenarioResult[];
}

/** One group's measurements and the name of its ceiling among them. */
export interface MeasuredGroup {
  readonly group: ScenarioGroup;
  readonly rawCeiling: string;
  readonly measurements: readonly ScenarioMeasurement[];
}

/** Everything a report is made of. */
export interface ReportInput {
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly machine: MachineInfo;
  readonly versions: VersionInfo;
  readonly settings: ReportSettings;
  readonly rawCeiling: string;
  readonly postgres: PostgresSection | null;
  readonly groups: readonly MeasuredGroup[];
}

/** Builds the report; each ratio is to the ceiling of the scenario's group, `null` if that did not run. */
export function buildReport(input: ReportInput): BenchmarkReport {
  const scenarios = input.groups.flatMap((group) => {
    const ceiling = group.measurements.find((m) => m.scenario.name === group.rawCeiling);
    const ceilingMedian = ceiling === undefined ? undefined : summariseThroughput(ceiling.roundOpsPerSec).median;
    return group.measurements.map((m): ScenarioResult => {
      const throughput = summariseThroughput(m.roundOpsPerSec);
      const target = m.scenario.target ?? null;
      const ratio = ceilingMedian === undefined ? null : round4(throughput.median / ceilingMedian);
      return {
        name: m.scenario.name,
        group: group.group,
        description: m.scenario.description,
        opsPerSecMedian: Math.round(throughput.median),
        opsPerSec: {
          p50: Math.round(throughput.p50),
          p95: Math.round(throughput.p95),
          p99: Math.round(throughput.p99),
          min: Math.round(throughput.min),
          max: Math.round(throughput.max),
        },
        latencyNs: m.latencyNs,
        batchLatencyMs: {
          p50: nsToMs(m.batchLatencyNs.p50),
          p95: nsToMs(m.batchLatencyNs.p95),
          p99: nsToMs(m.batchLatencyNs.p99),
          max: nsToMs(m.batchLatencyNs.max),
        },
        latencySamples: m.latencySamples,
        rounds: m.roundOpsPerSec.length,
        ops: m.ops,
        errors: m.errors,
        cpuPerWall: Math.round(m.cpuPerWall * 100) / 100,
        rawCeiling: group.rawCeiling,
        ratioToRawCeiling: ratio,
        target,
        meetsTarget: target === null ? null : meetsTarget(target, throughput.median, ratio),
      };
    });
  });
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
    durationMs: input.finishedAt.getTime() - input.startedAt.getTime(),
    singleThreaded: true,
    machine: input.machine,
    versions: input.versions,
    settings: input.settings,
    rawCeiling: input.rawCeiling,
    postgres: input.postgres,
    scenarios,
  };
}

function meetsTarget(target: Target, medianOpsPerSec: number, ratio: number | null): boolean {
  const rateMet = target.opsPerSec === undefined || medianOpsPerSec >= target.opsPerSec;
  // Without its ceiling in the run, a ratio target cannot be shown to be met.
  const ratioMet = target.ratioToRawCeiling === undefined || (ratio !== null && ratio >= target.ratioToRawCeiling);
  return rateMet && ratioMet;
}

interface Column {
  readonly title: string;
  readonly cell: (s: ScenarioResult) => string;
}

const leadColumns: readonly Column[] = [
  { title: 'scenario', cell: (s) => s.name },
  { title: 'median ops/s', cell: (s) => int(s.opsPerSecMedian) },
  { title: 'p95 ops/s', cell: (s) => int(s.opsPerSec.p95) },
  { title: 'min ops/s', cell: (s) => int(s.opsPerSec.min) },
  { title: 'max ops/s', cell: (s) => int(s.opsPerSec.max) },
];

const tailColumns: readonly Column[] = [
  { title: 'errors', cell: (s) => int(s.errors) },
  { title: 'cpu/wall', cell: (s) => s.cpuPerWall.toFixed(2) },
  { title: '× raw', cell: (s) => (s.ratioToRawCeiling === null ? '–' : s.ratioToRawCeiling.toFixed(4)) },
  { title: 'target', cell: (s) => formatTarget(s.target) },
  { title: 'meets', cell: (s) => (s.meetsTarget === null ? '–' : s.meetsTarget ? 'yes' : 'NO') },
];

/** In-memory loops: per-operation times in ns. */
const CORE_COLUMNS: readonly Column[] = [
  ...leadColumns,
  { title: 'p50 ns/op', cell: (s) => int(s.latencyNs.p50) },
  { title: 'p99 ns/op', cell: (s) => int(s.latencyNs.p99) },
  { title: 'max ns/op', cell: (s) => int(s.latencyNs.max) },
  ...tailColumns,
];

/** Appends: the time of a whole batch (one append, one commit) in ms. */
const POSTGRES_COLUMNS: readonly Column[] = [
  ...leadColumns,
  { title: 'p50 ms/batch', cell: (s) => s.batchLatencyMs.p50.toFixed(2) },
  { title: 'p95 ms/batch', cell: (s) => s.batchLatencyMs.p95.toFixed(2) },
  { title: 'p99 ms/batch', cell: (s) => s.batchLatencyMs.p99.toFixed(2) },
  { title: 'max ms/batch', cell: (s) => s.batchLatencyMs.max.toFixed(2) },
  ...tailColumns,
];

interface Table {
  readonly columns: readonly Column[];
  readonly rows: string[][];
}

function tablesOf(report: BenchmarkReport): Table[] {
  const tables: Table[] = [];
  for (const [group, columns] of [['core', CORE_COLUMNS], ['postgres', POSTGRES_COLUMNS]] as const) {
    const scenarios = report.scenarios.filter((s) => s.group === group);
    if (scenarios.length > 0) tables.push({ columns, rows: scenarios.map((s) => columns.map((column) => column.cell(s))) });
  }
  return tables;
}

/** Plain-text tables for the console, one per group. */
export function formatTable(report: BenchmarkReport): string {
  const blocks = tablesOf(report).map(({ columns, rows }) => {
    const titles = columns.map((column) => column.title);
    const all = [titles, ...rows];
    const widths = titles.map((_, c) => Math.max(...all.map((row) => (row[c] ?? '').length)));
    const line = (row: readonly string[]): string =>
      row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join('  ');
    const rule = widths.map((w) => '-'.repeat(w)).join('  ');
    return [line(titles), rule, ...rows.map(line)].join('\n');
  });
  return [...blocks.flatMap((block) => [block, '']), describeRun(report)].join('\n');
}

/** The same tables in Markdown, with the run's context. */
export function formatMarkdown(report: BenchmarkReport): string {
  const blocks = tablesOf(report).flatMap(({ columns, rows }) => [
    `| ${columns.map((column) => column.title).join(' | ')} |`,
    `|${columns.map((_, c) => (c === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map((row) => `| ${row.map((cell, c) => (c === 0 ? `\`${cell}\`` : cell)).join(' | ')} |`),
    '',
  ]);
  const scenarioNotes = report.scenarios.map((s) => `- \`${s.name}\`: ${s.description}.`);
  return [
    `# Benchmark results — ${report.startedAt}`,
    '',
    describeRun(report),
    '',
    ...blocks,
    ...scenarioNotes,
    '',
    'Throughput columns are per-round ops/s over the measured rounds; p95 is the rate that 95 % of rounds reached. One PostgreSQL op is one transfer (one event, one row).',
    'ns/op columns are per-operation times from batch samples (batch time ÷ batch size); ms/batch columns are whole-batch times (one append and its commit).',
    '"cpu/wall" is process CPU time over wall time while timed: for the in-memory loops, well below 1 means the run shared its core and the figures are pessimistic; for PostgreSQL it is mostly time spent waiting for the server.',
    '"× raw" is the median divided by the median of the raw ceiling of the same group from the same run; "meets" compares the median, or that ratio, with the target.',
    '',
  ].join('\n');
}

function describeRun(report: BenchmarkReport): string {
  const { machine, settings, versions, postgres } = report;
  const lines = [
    `${settings.mode} run: ${settings.rounds} rounds × ${int(settings.opsPerRound)} ops (+${settings.warmupRounds} warm-up), batches of ${int(settings.batchSize)}, ${int(settings.accounts)} accounts, seed ${settings.seed}; single-threaded, not pinned to a core.`,
  ];
  if (postgres !== null) {
    const { server, settings: pg } = postgres;
    lines.push(
      `PostgreSQL: ${pg.rounds} rounds × ${pg.batchesPerRound} appends of ${int(pg.batchSize)} transfers (+${pg.warmupRounds} warm-up), ${int(pg.accounts)} accounts; ` +
        `${server.source === 'embedded' ? 'embedded server' : 'server at DATABASE_URL'}, ${server.version.split(' on ')[0] ?? server.version}; ` +
        `synchronous_commit=${server.synchronousCommit}, fsync=${server.fsync}, full_page_writes=${server.fullPageWrites}, wal_sync_method=${server.walSyncMethod}.`,
    );
  }
  lines.push(
    `Machine: ${machine.cpus} × ${machine.model}, ${machine.platform}, Node ${machine.node}, load average ${machine.loadAverage1mAtStart.toFixed(2)} at start.`,
    `ledger-core ${versions.ledgerCore} (${settings.ledgerCoreSource}), commit ${versions.gitCommit ?? 'unknown'}${versions.gitDirty === true ? ' + uncommitted changes' : ''}; took ${(report.durationMs / 1000).toFixed(1)} s.`,
  );
  return lines.join('\n');
}

function formatTarget(target: Target | null): string {
  if (target === null) return '–';
  const parts: string[] = [];
  if (target.opsPerSec !== undefined) parts.push(int(target.opsPerSec));
  if (target.ratioToRawCeiling !== undefined) parts.push(`≥ ${target.ratioToRawCeiling.toFixed(2)} × raw`);
  return parts.join(', ');
}

/** The files one report was written to. */
export interface WrittenReport {
  readonly json: string;
  readonly latestJson: string;
  readonly latestMarkdown: string;
}

/**
 * Writes `<startedAt>.json` (colons as dashes, so the name is valid everywhere), `latest.json`
 * and `latest.md` into `directory`. Each file is written whole and renamed into place, so a
 * reader never sees half a report.
 */
export function writeReport(report: BenchmarkReport, directory: string): WrittenReport {
  mkdirSync(directory, { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const written: WrittenReport = {
    json: path.join(directory, `${report.startedAt.replaceAll(':', '-')}.json`),
    latestJson: path.join(directory, 'latest.json'),
    latestMarkdown: path.join(directory, 'latest.md'),
  };
  writeAtomically(written.json, json);
  writeAtomically(written.latestJson, json);
  writeAtomically(written.latestMarkdown, formatMarkdown(report));
  return written;
}

function writeAtomically(file: string, content: string): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, content);
  renameSync(temporary, file);
}

function int(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function nsToMs(ns: number): number {
  return Math.round(ns / 1_000) / 1_000;
}

function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
