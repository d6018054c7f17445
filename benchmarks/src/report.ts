/**
 * Turns measurements into the report: one JSON document for machines, a Markdown table for
 * people, and a console table. Also writes them to the results folder.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MachineInfo, VersionInfo } from './environment.js';
import type { MeasureSettings, ScenarioMeasurement, Target } from './harness.js';
import { summariseThroughput } from './stats.js';

/** Version of the report's JSON shape; bump it when a field changes meaning or goes away. */
export const REPORT_SCHEMA_VERSION = 1;

/** How a run was set up. */
export interface ReportSettings extends MeasureSettings {
  readonly mode: 'full' | 'ci' | 'custom';
  readonly accounts: number;
  readonly seed: number;
  readonly gcBetweenRounds: boolean;
  /** What the scenarios imported as `@ledgerkit/ledger-core`. */
  readonly ledgerCoreSource: string;
}

/** One scenario's results. */
export interface ScenarioResult {
  readonly name: string;
  readonly description: string;
  readonly opsPerSecMedian: number;
  /** Per-round throughput; pN is the rate N % of rounds reached or beat, so p95 ≤ p50. */
  readonly opsPerSec: { readonly p50: number; readonly p95: number; readonly p99: number; readonly min: number; readonly max: number };
  /** Per-operation time in ns, each sample a batch's time divided by its size. */
  readonly latencyNs: { readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number };
  readonly latencySamples: number;
  readonly rounds: number;
  readonly ops: number;
  /** Operations that were rejected or threw; any non-zero value means the fixture is broken. */
  readonly errors: number;
  /** Process CPU time ÷ wall time while timed: ≥ ~1 alone on a core, well below 1 when it shared one. */
  readonly cpuPerWall: number;
  /** Median throughput divided by the raw ceiling's median from the same run. */
  readonly ratioToRawCeiling: number | null;
  readonly target: Target | null;
  /** Whether the median throughput reached the target; `null` without one. */
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
  readonly rawCeiling: string;
  readonly scenarios: readonly ScenarioResult[];
}

/** Everything a report is made of. */
export interface ReportInput {
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly machine: MachineInfo;
  readonly versions: VersionInfo;
  readonly settings: ReportSettings;
  readonly rawCeiling: string;
  readonly measurements: readonly ScenarioMeasurement[];
}

/** Builds the report; ratios are to the scenario named `rawCeiling`, `null` if it did not run. */
export function buildReport(input: ReportInput): BenchmarkReport {
  const ceiling = input.measurements.find((m) => m.scenario.name === input.rawCeiling);
  const ceilingMedian = ceiling === undefined ? undefined : summariseThroughput(ceiling.roundOpsPerSec).median;
  const scenarios = input.measurements.map((m): ScenarioResult => {
    const throughput = summariseThroughput(m.roundOpsPerSec);
    const target = m.scenario.target ?? null;
    return {
      name: m.scenario.name,
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
      latencySamples: m.latencySamples,
      rounds: m.roundOpsPerSec.length,
      ops: m.ops,
      errors: m.errors,
      cpuPerWall: Math.round(m.cpuPerWall * 100) / 100,
      ratioToRawCeiling: ceilingMedian === undefined ? null : round4(throughput.median / ceilingMedian),
      target,
      meetsTarget: target === null ? null : throughput.median >= target.opsPerSec,
    };
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
    scenarios,
  };
}

const COLUMNS = ['scenario', 'median ops/s', 'p95 ops/s', 'min ops/s', 'max ops/s', 'p50 ns/op', 'p99 ns/op', 'max ns/op', 'errors', 'cpu/wall', '× raw', 'target ops/s', 'meets'] as const;

function rowsOf(report: BenchmarkReport): string[][] {
  return report.scenarios.map((s) => [
    s.name,
    int(s.opsPerSecMedian),
    int(s.opsPerSec.p95),
    int(s.opsPerSec.min),
    int(s.opsPerSec.max),
    int(s.latencyNs.p50),
    int(s.latencyNs.p99),
    int(s.latencyNs.max),
    int(s.errors),
    s.cpuPerWall.toFixed(2),
    s.ratioToRawCeiling === null ? '–' : s.ratioToRawCeiling.toFixed(4),
    s.target === null ? '–' : int(s.target.opsPerSec),
    s.meetsTarget === null ? '–' : s.meetsTarget ? 'yes' : 'NO',
  ]);
}

/** A plain-text table for the console. */
export function formatTable(report: BenchmarkReport): string {
  const rows = [[...COLUMNS], ...rowsOf(report)];
  const widths = COLUMNS.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)));
  const line = (row: readonly string[]): string =>
    row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0] ?? []), rule, ...rows.slice(1).map(line), '', describeRun(report)].join('\n');
}

/** The same table in Markdown, with the run's context. */
export function formatMarkdown(report: BenchmarkReport): string {
  const header = `| ${COLUMNS.join(' | ')} |`;
  const align = `|${COLUMNS.map((_, c) => (c === 0 ? ' --- ' : ' ---: ')).join('|')}|`;
  const body = rowsOf(report).map((row) => `| ${row.map((cell, c) => (c === 0 ? `\`${cell}\`` : cell)).join(' | ')} |`);
  const scenarioNotes = report.scenarios.map((s) => `- \`${s.name}\`: ${s.description}.`);
  return [
    `# Benchmark results — ${report.startedAt}`,
    '',
    describeRun(report),
    '',
    header,
    align,
    ...body,
    '',
    ...scenarioNotes,
    '',
    'Throughput columns are per-round ops/s over the measured rounds; p95 is the rate that 95 % of rounds reached.',
    'ns/op columns are per-operation times from batch samples (batch time ÷ batch size).',
    '"cpu/wall" is process CPU time over wall time while timed: well below 1 means the run shared its core and the figures are pessimistic.',
    '"× raw" is the median divided by the raw ceiling\'s median from the same run; "meets" compares the median with the target.',
    '',
  ].join('\n');
}

function describeRun(report: BenchmarkReport): string {
  const { machine, settings, versions } = report;
  return [
    `${settings.mode} run: ${settings.rounds} rounds × ${int(settings.opsPerRound)} ops (+${settings.warmupRounds} warm-up), batches of ${int(settings.batchSize)}, ${int(settings.accounts)} accounts, seed ${settings.seed}; single-threaded, not pinned to a core.`,
    `Machine: ${machine.cpus} × ${machine.model}, ${machine.platform}, Node ${machine.node}, load average ${machine.loadAverage1mAtStart.toFixed(2)} at start.`,
    `ledger-core ${versions.ledgerCore} (${settings.ledgerCoreSource}), commit ${versions.gitCommit ?? 'unknown'}${versions.gitDirty === true ? ' + uncommitted changes' : ''}; took ${(report.durationMs / 1000).toFixed(1)} s.`,
  ].join('\n');
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

function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
