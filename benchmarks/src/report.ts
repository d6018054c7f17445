/**
 * Turns measurements into the report: one JSON document for machines, Markdown tables and an
 * SVG chart for people, console tables while it runs; and writes them to the results folder.
 * Scenarios come in groups; a scenario's ratios are to its peers measured in the same run: the
 * raw ceiling of its workload and, where there is one, the Emmett event store doing the same.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { renderChart } from './chart.js';
import type { MachineInfo, VersionInfo } from './environment.js';
import type { LatencySummary, Measurement, SeriesPoint, Target } from './measurement.js';
import type { PostgresServerInfo } from './postgres-database.js';
import { summariseThroughput } from './stats.js';

/**
 * Version of the report's JSON shape; bump it when a field changes meaning or goes away.
 * 3: groups are listed with their method and settings; every scenario reports `latencyMs` (of
 * what `latencyOf` says), `opsPerSecOverall`, its peers' ratios (`ratioToRawCeiling`,
 * `ratioToEmmett`), `misses`, `loadAverage1m`, `series` and `details`; `latencyNs` is gone.
 * Added within 3 (no field changed meaning): `notJudged`, and `meetsTarget: null` with a target
 * when the scenario ran on a smaller history than the target names.
 */
export const REPORT_SCHEMA_VERSION = 3;

/** Short mode for CI, the full run, or either with options changed. */
export type RunMode = 'full' | 'ci' | 'custom';

/** How a group of scenarios was measured. */
export interface GroupInfo {
  /** Stable id, e.g. `core`, `postgres`, `writer-batch`. */
  readonly id: string;
  readonly title: string;
  /** The group's raw ceiling, or `null` when the group has none. */
  readonly rawCeiling: string | null;
  /** One or two sentences: how its windows or rounds were scheduled and what a sample is. */
  readonly method: string;
  readonly settings: Readonly<Record<string, number | string | boolean>>;
}

/** Whether the Emmett peer ran, and on what. */
export interface EmmettInfo {
  readonly available: boolean;
  /** Package version, when it loaded. */
  readonly version: string | null;
  /** `synchronous_commit` on Emmett's connections. */
  readonly synchronousCommit: string | null;
  /** Why it did not run, when it did not. */
  readonly reason: string | null;
}

/** The PostgreSQL server the run measured, and the Emmett peer on it. */
export interface PostgresSection {
  readonly server: PostgresServerInfo;
  readonly emmett: EmmettInfo;
}

/** What a scenario is in the comparison. */
export type ScenarioRole = 'ours' | 'raw-ceiling' | 'peer';

/** One scenario's results. */
export interface ScenarioResult {
  readonly name: string;
  readonly group: string;
  readonly role: ScenarioRole;
  readonly description: string;
  /** What one operation is counted as, e.g. `transfers`, `opens`. */
  readonly opsUnit: string;
  /** Median of the throughput samples (per round, window or interval: see `sampleOf`). */
  readonly opsPerSecMedian: number;
  /** All operations ÷ all timed seconds. */
  readonly opsPerSecOverall: number;
  /** Throughput samples' slow tail: pN is the rate N % of samples reached or beat, so p95 ≤ p50. */
  readonly opsPerSec: { readonly p50: number; readonly p95: number; readonly p99: number; readonly min: number; readonly max: number };
  readonly samples: number;
  readonly sampleOf: string;
  /** What one latency sample times. */
  readonly latencyOf: string;
  /** Latency of one operation as `latencyOf` says, ms, from an HDR histogram (3 significant digits). */
  readonly latencyMs: LatencySummary;
  /** Latency of one batch, ms, where operations went in batches; else `null`. */
  readonly batchLatencyMs: LatencySummary | null;
  readonly latencySamples: number;
  readonly ops: number;
  /** Operations that were rejected or threw; any non-zero value means the figures are invalid. */
  readonly errors: number;
  /** Process CPU time ÷ wall time while timed. */
  readonly cpuPerWall: number;
  /** 1-minute load average at the start of the scenario's first measured window and the end of its last. */
  readonly loadAverage1m: { readonly start: number; readonly end: number };
  /** The raw ceiling this scenario is compared with, and median ÷ its median; `null` if none ran. */
  readonly rawCeiling: string | null;
  readonly ratioToRawCeiling: number | null;
  /** The Emmett peer this scenario is compared with, and median ÷ its median; `null` if none ran. */
  readonly emmettPeer: string | null;
  readonly ratioToEmmett: number | null;
  readonly target: Target | null;
  /**
   * Whether every part of the target was met (and no operation failed); `null` without a target,
   * or when the target was not judged (see `notJudged`).
   */
  readonly meetsTarget: boolean | null;
  /** Why a target was not judged (e.g. the history was smaller than the target names); else `null`. */
  readonly notJudged: string | null;
  /** The parts of the target that were missed, as sentences (empty when met, not judged or without target). */
  readonly misses: readonly string[];
  readonly series: readonly SeriesPoint[] | null;
  readonly details: Readonly<Record<string, number | string | boolean>>;
}

/** The whole report, as written to `results/*.json`. */
export interface BenchmarkReport {
  readonly schemaVersion: number;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  readonly mode: RunMode;
  readonly singleThreaded: true;
  readonly machine: MachineInfo;
  readonly versions: VersionInfo;
  /** Settings shared by the groups (seed, whether rounds start from a collected heap, …). */
  readonly settings: Readonly<Record<string, number | string | boolean>>;
  /** The server and the Emmett peer; `null` when no PostgreSQL scenario ran. */
  readonly postgres: PostgresSection | null;
  readonly groups: readonly GroupInfo[];
  readonly scenarios: readonly ScenarioResult[];
}

/** One group's measurements, as a group hands them over. */
export interface MeasuredGroup {
  readonly info: GroupInfo;
  readonly measurements: readonly Measurement[];
  /** What one operation of the group's scenarios is counted as, by scenario name; default `transfers`. */
  readonly opsUnits?: Readonly<Record<string, string>>;
}

/** Everything a report is made of. */
export interface ReportInput {
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly mode: RunMode;
  readonly machine: MachineInfo;
  readonly versions: VersionInfo;
  readonly settings: Readonly<Record<string, number | string | boolean>>;
  readonly postgres: PostgresSection | null;
  readonly groups: readonly MeasuredGroup[];
}

/**
 * Builds the report: medians, ratios to the peers that ran, and each target's verdict. Ratios and
 * verdicts are taken from the figures as reported (rounded), so a reader recomputing them from
 * the document (as `validate.ts` does) gets the same answer.
 */
export function buildReport(input: ReportInput): BenchmarkReport {
  const medians = new Map<string, number>();
  const p99s = new Map<string, number>();
  for (const group of input.groups) {
    for (const m of group.measurements) {
      medians.set(m.name, roundRate(summariseThroughput(nonEmpty(m.opsPerSecSamples, m.opsPerSecOverall)).median));
      p99s.set(m.name, roundLatency(m.latencyMs).p99);
    }
  }
  const rawNames = new Set<string>();
  const peerNames = new Set<string>();
  for (const group of input.groups) {
    if (group.info.rawCeiling !== null) rawNames.add(group.info.rawCeiling);
    for (const m of group.measurements) {
      if (m.peers.rawCeiling !== undefined) rawNames.add(m.peers.rawCeiling);
      if (m.peers.emmett !== undefined) peerNames.add(m.peers.emmett);
    }
  }
  const ratio = (name: string, to: string | null): number | null => {
    if (to === null) return null;
    const mine = medians.get(name);
    const theirs = medians.get(to);
    return mine === undefined || theirs === undefined || theirs <= 0 ? null : round4(mine / theirs);
  };

  const scenarios = input.groups.flatMap((group) =>
    group.measurements.map((m): ScenarioResult => {
      const throughput = summariseThroughput(nonEmpty(m.opsPerSecSamples, m.opsPerSecOverall));
      const rawCeiling = m.peers.rawCeiling ?? group.info.rawCeiling;
      const rawRan = rawCeiling !== null && medians.has(rawCeiling);
      const emmettRan = m.peers.emmett !== undefined && medians.has(m.peers.emmett);
      const ratioToRawCeiling = rawRan ? ratio(m.name, rawCeiling) : null;
      const target = m.target ?? null;
      const latencyMs = roundLatency(m.latencyMs);
      const notJudged = target === null ? null : notJudgedReason(target, m.details);
      const latencyRatioTo = (to: string): number | null => {
        const theirs = p99s.get(to);
        return theirs === undefined || theirs <= 0 ? null : round4(latencyMs.p99 / theirs);
      };
      const misses =
        target === null || notJudged !== null
          ? []
          : missesOf(target, { median: roundRate(throughput.median), overall: roundRate(m.opsPerSecOverall), latencyMs, errors: m.errors }, ratioToRawCeiling, (to) => ratio(m.name, to), latencyRatioTo);
      return {
        name: m.name,
        group: group.info.id,
        role: rawNames.has(m.name) ? 'raw-ceiling' : peerNames.has(m.name) ? 'peer' : 'ours',
        description: m.description,
        opsUnit: group.opsUnits?.[m.name] ?? 'transfers',
        opsPerSecMedian: roundRate(throughput.median),
        opsPerSecOverall: roundRate(m.opsPerSecOverall),
        opsPerSec: {
          p50: roundRate(throughput.p50),
          p95: roundRate(throughput.p95),
          p99: roundRate(throughput.p99),
          min: roundRate(throughput.min),
          max: roundRate(throughput.max),
        },
        samples: Math.max(1, m.opsPerSecSamples.length),
        // A window shorter than one interval yields no interval sample; its whole-run rate stands in.
        sampleOf: m.opsPerSecSamples.length > 0 ? m.sampleOf : 'whole run (shorter than one sample)',
        latencyOf: m.latencyOf,
        latencyMs,
        batchLatencyMs: m.batchLatencyMs === null ? null : roundLatency(m.batchLatencyMs),
        latencySamples: m.latencySamples,
        ops: m.ops,
        errors: m.errors,
        cpuPerWall: Math.round(m.cpuPerWall * 100) / 100,
        loadAverage1m: m.loadAverage1m,
        rawCeiling: rawRan ? rawCeiling : null,
        ratioToRawCeiling,
        emmettPeer: emmettRan ? (m.peers.emmett ?? null) : null,
        ratioToEmmett: emmettRan ? ratio(m.name, m.peers.emmett ?? null) : null,
        target,
        meetsTarget: target === null || notJudged !== null ? null : misses.length === 0,
        notJudged,
        misses,
        series: m.series === null ? null : m.series.map((p) => ({ atSec: p.atSec, opsPerSec: Math.round(p.opsPerSec), p99Ms: Math.round(p.p99Ms * 1000) / 1000 })),
        details: m.details,
      };
    }),
  );
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
    durationMs: input.finishedAt.getTime() - input.startedAt.getTime(),
    mode: input.mode,
    singleThreaded: true,
    machine: input.machine,
    versions: input.versions,
    settings: input.settings,
    postgres: input.postgres,
    groups: input.groups.map((group) => group.info),
    scenarios,
  };
}

/**
 * Why `target` cannot be judged on this measurement, or `null` when it can: a target stated at a
 * history size is not judged on a smaller history (a CI run builds less than the full one).
 */
function notJudgedReason(target: Target, details: Measurement['details']): string | null {
  if (target.historyEvents === undefined) return null;
  const history = details['historyEvents'];
  if (typeof history !== 'number') return `the history it ran on is not reported; the target is stated at ${int(target.historyEvents)} events`;
  return history < target.historyEvents ? `history ${int(history)} events, the target is stated at ${int(target.historyEvents)}` : null;
}

/** Every part of `target` that the figures miss, as a sentence; empty when all are met. Failed operations are a miss. */
function missesOf(
  target: Target,
  figures: { readonly median: number; readonly overall: number; readonly latencyMs: LatencySummary; readonly errors: number },
  ratioToRawCeiling: number | null,
  ratioTo: (scenario: string) => number | null,
  latencyRatioTo: (scenario: string) => number | null,
): string[] {
  const misses: string[] = [];
  if (figures.errors > 0) misses.push(`${int(figures.errors)} operations failed`);
  if (target.opsPerSec !== undefined) {
    const basis = target.basis ?? 'median';
    const rate = basis === 'overall' ? figures.overall : figures.median;
    if (rate < target.opsPerSec) misses.push(`${basis === 'overall' ? 'sustained' : 'median'} ${int(rate)} ops/s < ${int(target.opsPerSec)}`);
  }
  if (target.ratioToRawCeiling !== undefined) {
    if (ratioToRawCeiling === null) misses.push('its raw ceiling did not run');
    else if (ratioToRawCeiling < target.ratioToRawCeiling) misses.push(`${ratioToRawCeiling.toFixed(2)} × raw ceiling < ${target.ratioToRawCeiling}`);
  }
  if (target.ratioTo !== undefined) {
    const value = ratioTo(target.ratioTo.scenario);
    if (value === null) misses.push(`${target.ratioTo.scenario} did not run`);
    else if (value < target.ratioTo.min) misses.push(`${value.toFixed(2)} × ${target.ratioTo.scenario} < ${target.ratioTo.min}`);
  }
  if (target.latencyP99MsMax !== undefined && figures.latencyMs.p99 > target.latencyP99MsMax) {
    misses.push(`p99 ${formatMs(figures.latencyMs.p99)} > ${target.latencyP99MsMax} ms`);
  }
  if (target.latencyP50MsMax !== undefined && figures.latencyMs.p50 > target.latencyP50MsMax) {
    misses.push(`median ${formatMs(figures.latencyMs.p50)} > ${int(target.latencyP50MsMax)} ms`);
  }
  if (target.latencyP99RatioTo !== undefined) {
    const value = latencyRatioTo(target.latencyP99RatioTo.scenario);
    if (value === null) misses.push(`${target.latencyP99RatioTo.scenario} did not run`);
    else if (value > target.latencyP99RatioTo.max) misses.push(`p99 ${value.toFixed(2)} × ${target.latencyP99RatioTo.scenario}'s > ${target.latencyP99RatioTo.max}`);
  }
  return misses;
}

interface Column {
  readonly title: string;
  readonly cell: (s: ScenarioResult) => string;
}

const COLUMNS: readonly Column[] = [
  { title: 'scenario', cell: (s) => s.name },
  { title: 'median ops/s', cell: (s) => rate(s.opsPerSecMedian) },
  { title: 'overall ops/s', cell: (s) => rate(s.opsPerSecOverall) },
  { title: 'slowest sample', cell: (s) => rate(s.opsPerSec.min) },
  { title: 'latency of', cell: (s) => s.latencyOf },
  { title: 'p50', cell: (s) => formatMs(s.latencyMs.p50) },
  { title: 'p95', cell: (s) => formatMs(s.latencyMs.p95) },
  { title: 'p99', cell: (s) => formatMs(s.latencyMs.p99) },
  { title: 'max', cell: (s) => formatMs(s.latencyMs.max) },
  { title: 'errors', cell: (s) => int(s.errors) },
  { title: '× raw', cell: (s) => (s.ratioToRawCeiling === null ? '–' : s.ratioToRawCeiling.toFixed(3)) },
  { title: '× Emmett', cell: (s) => (s.ratioToEmmett === null ? '–' : s.ratioToEmmett.toFixed(2)) },
  { title: 'target', cell: (s) => formatTarget(s.target) },
  { title: 'meets', cell: (s) => verdict(s, 'NO') },
  { title: 'load', cell: (s) => `${s.loadAverage1m.start.toFixed(1)}→${s.loadAverage1m.end.toFixed(1)}` },
];

function rowsOf(report: BenchmarkReport, group: GroupInfo): string[][] {
  return report.scenarios.filter((s) => s.group === group.id).map((s) => COLUMNS.map((column) => column.cell(s)));
}

/** Plain-text tables for the console, one per group, then the run's context and any misses. */
export function formatTable(report: BenchmarkReport): string {
  const blocks = report.groups.map((group) => {
    const titles = COLUMNS.map((column) => column.title);
    const all = [titles, ...rowsOf(report, group)];
    const widths = titles.map((_, c) => Math.max(...all.map((row) => (row[c] ?? '').length)));
    const line = (row: readonly string[]): string => row.map((cell, c) => (c === 0 || c === 4 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join('  ');
    return [`${group.title}`, line(titles), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
  });
  return [...blocks.flatMap((block) => [block, '']), describeRun(report), '', ...formatMisses(report)].join('\n').trimEnd();
}

/** One line per missed target (or a line saying every judged target was met), then one per target not judged. */
export function formatMisses(report: BenchmarkReport): string[] {
  const missed = report.scenarios.filter((s) => s.meetsTarget === false);
  const unjudged = report.scenarios.filter((s) => s.target !== null && s.meetsTarget === null);
  const lines =
    missed.length === 0
      ? [unjudged.length === 0 ? 'Every target was met.' : 'Every judged target was met.']
      : [`TARGETS MISSED (${missed.length}):`, ...missed.map((s) => `  ✗ ${s.name}: ${s.misses.join('; ')} — target: ${s.target?.statement ?? ''}`)];
  if (unjudged.length > 0) {
    lines.push(`TARGETS NOT JUDGED (${unjudged.length}):`, ...unjudged.map((s) => `  – ${s.name}: ${s.notJudged ?? 'not judged'} — target: ${s.target?.statement ?? ''}`));
  }
  return lines;
}

/** The "meets" cell: yes, `no` (with `missed` as the word), "not judged (history N)" or – without a target. */
export function verdict(s: ScenarioResult, missed: string): string {
  if (s.target === null) return '–';
  if (s.meetsTarget === null) {
    const history = s.details['historyEvents'];
    return typeof history === 'number' ? `not judged (history ${int(history)})` : 'not judged';
  }
  return s.meetsTarget ? 'yes' : missed;
}

/** The tables in Markdown, with a headline comparison, the run's context and the notes. */
export function formatMarkdown(report: BenchmarkReport): string {
  const lines: string[] = [`# Benchmark results — ${report.startedAt}`, '', describeRun(report), ''];
  const headline = report.scenarios.filter((s) => s.role === 'ours' && s.group !== 'core');
  if (headline.length > 0) {
    lines.push(
      '## Ours next to the peers',
      '',
      '| scenario | median | p99 | raw ceiling (median) | × raw | Emmett (median) | × Emmett | target | meets |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | :---: |',
    );
    const medianOf = (name: string | null): string => {
      const found = name === null ? undefined : report.scenarios.find((s) => s.name === name);
      return found === undefined ? '–' : `${rate(found.opsPerSecMedian)} (\`${found.name}\`)`;
    };
    for (const s of headline) {
      lines.push(
        `| \`${s.name}\` | ${rate(s.opsPerSecMedian)} ${s.opsUnit}/s | ${formatMs(s.latencyMs.p99)} per ${s.latencyOf} | ${medianOf(s.rawCeiling)} | ${s.ratioToRawCeiling?.toFixed(3) ?? '–'} | ${medianOf(s.emmettPeer)} | ${s.ratioToEmmett?.toFixed(2) ?? '–'} | ${s.target?.statement ?? '–'} | ${verdict(s, `**NO**: ${s.misses.join('; ')}`)} |`,
      );
    }
    lines.push('');
  }
  for (const group of report.groups) {
    lines.push(`## ${group.title}`, '', group.method, '');
    lines.push(`| ${COLUMNS.map((column) => column.title).join(' | ')} |`, `|${COLUMNS.map((_, c) => (c === 0 || c === 4 ? ' --- ' : ' ---: ')).join('|')}|`);
    for (const row of rowsOf(report, group)) lines.push(`| ${row.map((cell, c) => (c === 0 ? `\`${cell}\`` : cell)).join(' | ')} |`);
    lines.push('');
    for (const s of report.scenarios.filter((x) => x.group === group.id)) {
      const details = Object.entries(s.details)
        .map(([key, value]) => `${key} ${typeof value === 'number' ? value.toLocaleString('en-US') : String(value)}`)
        .join(', ');
      lines.push(`- \`${s.name}\`: ${s.description}.${details === '' ? '' : ` (${details})`}`);
    }
    lines.push('');
  }
  lines.push(
    '## Notes',
    '',
    ...formatMisses(report).map((line) => (line.startsWith('  ') ? `- ${line.trim()}` : line)),
    '',
    '- Throughput: "median" is the median of the samples (rounds, windows or 1 s intervals, per group); "overall" is all operations ÷ all timed seconds; "slowest sample" is the slowest round, window or interval.',
    '- Latency: p50/p95/p99/max of one operation as "latency of" says, from an HDR histogram (3 significant digits). For the fixed-rate scenario it is counted from each transfer\'s due time (coordinated omission corrected); its details give the uncorrected figures too.',
    '- "× raw" and "× Emmett" are this median ÷ the peer\'s median from the same run, same machine, same PostgreSQL; "meets" checks every part of the target, and a scenario with a failed operation never meets it; a target stated at a history size (e.g. 1,000,000 events) is "not judged" on a smaller history (the CI run). "load" is the 1-minute load average at the start and end of the scenario (2 cores: above ~2 the machine was shared).',
    '',
  );
  return lines.join('\n');
}

function describeRun(report: BenchmarkReport): string {
  const { machine, versions, postgres } = report;
  const lines = [`${report.mode} run; single-threaded load generator and system under test in one Node process, not pinned to a core.`];
  if (postgres !== null) {
    const { server, emmett } = postgres;
    lines.push(
      `PostgreSQL: ${server.source === 'embedded' ? 'embedded server' : 'server at DATABASE_URL'}, ${server.version.split(' on ')[0] ?? server.version}; ` +
        `synchronous_commit=${server.synchronousCommit}, fsync=${server.fsync}, full_page_writes=${server.fullPageWrites}, wal_sync_method=${server.walSyncMethod}, shared_buffers=${server.sharedBuffers}.`,
      emmett.available
        ? `Emmett: @event-driven-io/emmett-postgresql ${emmett.version ?? '?'} on the same server and database, synchronous_commit=${emmett.synchronousCommit ?? '?'}.`
        : `Emmett: did not run (${emmett.reason ?? 'not requested'}).`,
    );
  }
  lines.push(
    `Machine: ${machine.cpus} × ${machine.model}, ${machine.platform}, Node ${machine.node}, load average ${machine.loadAverage1mAtStart.toFixed(2)} at start, node flags ${machine.nodeFlags.length === 0 ? 'none' : machine.nodeFlags.join(' ')}.`,
    `ledger-core ${versions.ledgerCore}, store-postgres ${versions.storePostgres}, pg ${versions.pg}; commit ${versions.gitCommit ?? 'unknown'}${versions.gitDirty === true ? ' + uncommitted changes' : ''}; took ${(report.durationMs / 1000).toFixed(1)} s.`,
  );
  return lines.join('\n');
}

function formatTarget(target: Target | null): string {
  if (target === null) return '–';
  const parts: string[] = [];
  if (target.opsPerSec !== undefined) parts.push(`≥ ${int(target.opsPerSec)}/s${target.basis === 'overall' ? ' sustained' : ''}`);
  if (target.ratioToRawCeiling !== undefined) parts.push(`≥ ${target.ratioToRawCeiling} × raw`);
  if (target.ratioTo !== undefined) parts.push(`≥ ${target.ratioTo.min} × ${target.ratioTo.scenario}`);
  if (target.latencyP99MsMax !== undefined) parts.push(`p99 ≤ ${target.latencyP99MsMax} ms`);
  if (target.latencyP50MsMax !== undefined) parts.push(`median ≤ ${int(target.latencyP50MsMax)} ms`);
  if (target.latencyP99RatioTo !== undefined) parts.push(`p99 ≤ ${target.latencyP99RatioTo.max} × ${target.latencyP99RatioTo.scenario}`);
  if (target.historyEvents !== undefined) parts.push(`at ${int(target.historyEvents)} events`);
  return parts.join(', ');
}

/** A latency in ms with a unit that keeps 3 significant digits readable: ns, µs, ms or s. */
export function formatMs(ms: number): string {
  if (ms < 0.001) return `${(ms * 1e6).toFixed(0)} ns`;
  if (ms < 1) return `${(ms * 1e3).toPrecision(3)} µs`;
  if (ms < 1_000) return `${ms.toPrecision(3)} ms`;
  return `${(ms / 1_000).toPrecision(3)} s`;
}

/** The files one report was written to. */
export interface WrittenReport {
  readonly json: string;
  readonly latestJson: string;
  readonly latestMarkdown: string;
  readonly latestSvg: string;
}

/**
 * Writes `<startedAt>.json` (colons as dashes, so the name is valid everywhere), `latest.json`,
 * `latest.md` and `latest.svg` into `directory`. Each file is written whole and renamed into
 * place, so a reader never sees half a report.
 */
export function writeReport(report: BenchmarkReport, directory: string): WrittenReport {
  mkdirSync(directory, { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const written: WrittenReport = {
    json: path.join(directory, `${report.startedAt.replaceAll(':', '-')}.json`),
    latestJson: path.join(directory, 'latest.json'),
    latestMarkdown: path.join(directory, 'latest.md'),
    latestSvg: path.join(directory, 'latest.svg'),
  };
  writeAtomically(written.json, json);
  writeAtomically(written.latestJson, json);
  writeAtomically(written.latestMarkdown, formatMarkdown(report));
  writeAtomically(written.latestSvg, renderChart(report));
  return written;
}

function writeAtomically(file: string, content: string): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, content);
  renameSync(temporary, file);
}

function nonEmpty(samples: readonly number[], fallback: number): readonly number[] {
  return samples.length > 0 ? samples : [fallback];
}

function roundLatency(latency: LatencySummary): LatencySummary {
  // ns resolution: the in-memory scenarios' per-operation times are fractions of a microsecond.
  const r = (ms: number): number => Math.round(ms * 1e6) / 1e6;
  return { p50: r(latency.p50), p95: r(latency.p95), p99: r(latency.p99), max: r(latency.max) };
}

function int(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** A rate as reported: whole numbers from 100 up, two decimals below (a start-up is about one per second). */
function roundRate(value: number): number {
  return value >= 100 ? Math.round(value) : Math.round(value * 100) / 100;
}

function rate(value: number): string {
  return value >= 100 ? int(value) : value.toFixed(2);
}

function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
