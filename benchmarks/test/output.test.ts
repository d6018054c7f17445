import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RAW_CEILING } from '../src/core-decide-evolve.js';
import { runtimeFlags } from '../src/environment.js';
import { PG_APPEND, PG_RAW_CEILING, PG_WRITER } from '../src/postgres-append.js';
import { BALANCE_AS_OF, BALANCE_READ_LARGE, BALANCE_READ_SMALL, PROJECTION_SCENARIO_NAMES } from '../src/projections-bench.js';
import { renderChart } from '../src/chart.js';
import { formatMarkdown, formatTable, writeReport, type BenchmarkReport, type ScenarioResult } from '../src/report.js';
import { CI_SETTINGS, runSuite, suiteScenarioNames, type SuiteSettings } from '../src/suite.js';
import { validateReport } from '../src/validate.js';
import { EMMETT_BATCH, EMMETT_CALLERS, RAW_BATCH, RAW_CALLERS, WRITER_BATCH, WRITER_CALLERS, WRITER_FIXED_RATE, WRITER_HOT } from '../src/writer-load.js';
import { WRITER_STARTUP } from '../src/writer-startup.js';

// A tiny run: it checks what the harnesses report and write, never how fast anything is. The
// PostgreSQL groups run on an embedded server (or DATABASE_URL) with windows of a second or less.
const TINY: SuiteSettings = {
  ...CI_SETTINGS,
  mode: 'custom',
  core: { rounds: 2, warmupRounds: 1, opsPerRound: 2_000, batchSize: 500, accounts: 200 },
  postgres: { rounds: 2, warmupRounds: 1, batchesPerRound: 1, accounts: 20 },
  writer: {
    accounts: 20,
    callers: 8,
    sustainedWindowMs: 1_000,
    peerWindowMs: 400,
    warmupWindowMs: 0,
    callerRounds: 1,
    callerWindowMs: 300,
    fixedRatePerSec: 300,
    fixedRateWindowMs: 1_000,
    startupHistoryEvents: 3_000,
    startupTailEvents: 500,
    startupOpens: 1,
  },
  projections: { historyEvents: 2_000, accounts: 20, batchSize: 500, balanceReads: 100, asOfReads: 60, concurrentReads: 600, followWindowMs: 1_000, inlineWindowMs: 300, visibilitySamples: 5 },
};

const EXPECTED = [
  RAW_CEILING,
  'decide-evolve-prevalidated',
  'validate-decide-evolve',
  PG_RAW_CEILING,
  PG_APPEND,
  PG_WRITER,
  RAW_BATCH,
  EMMETT_BATCH,
  WRITER_BATCH,
  RAW_CALLERS,
  EMMETT_CALLERS,
  WRITER_CALLERS,
  WRITER_HOT,
  WRITER_FIXED_RATE,
  WRITER_STARTUP,
  ...PROJECTION_SCENARIO_NAMES,
];

let report: BenchmarkReport;
let outDir: string;

beforeAll(async () => {
  // The run refuses a server with fsync or full_page_writes off, as the test workers' shared
  // servers are (vitest.global-setup.ts): this file measures on an embedded server of its own,
  // with the durable defaults a benchmark run starts.
  const shared = process.env['DATABASE_URL'];
  delete process.env['DATABASE_URL'];
  try {
    report = await runSuite(TINY);
  } finally {
    if (shared !== undefined) process.env['DATABASE_URL'] = shared;
  }
  outDir = mkdtempSync(path.join(os.tmpdir(), 'ledgerkit-bench-'));
});
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

const byName = (name: string): ScenarioResult => {
  const found = report.scenarios.find((s) => s.name === name);
  if (found === undefined) throw new Error(`no scenario ${name}`);
  return found;
};

describe('benchmark output', () => {
  it('runs every scenario of the registry, the peers included, in report order', () => {
    expect(suiteScenarioNames(TINY)).toEqual(EXPECTED);
    expect(report.scenarios.map((s) => s.name)).toEqual(EXPECTED);
  });

  it('every scenario runs its fixture without a single rejected or failed operation', () => {
    for (const s of report.scenarios) expect(s.errors, s.name).toBe(0);
  });

  it('produces a document the validator accepts, also after a round trip through JSON', () => {
    expect(validateReport(report)).toEqual([]);
    expect(validateReport(JSON.parse(JSON.stringify(report)))).toEqual([]);
  });

  it('the validator rejects a document with a missing figure, a wrong schema version or a verdict that contradicts its misses', () => {
    const parsed = JSON.parse(JSON.stringify(report)) as Record<string, unknown> & { scenarios: Record<string, unknown>[] };
    const first = parsed.scenarios[0] as Record<string, unknown>;
    delete first['latencyMs'];
    expect(validateReport(parsed).join('\n')).toMatch(/latencyMs: missing/);
    expect(validateReport({ ...report, schemaVersion: 2 }).join('\n')).toMatch(/schemaVersion/);
    const lying = JSON.parse(JSON.stringify(report)) as { scenarios: Record<string, unknown>[] };
    const withTarget = lying.scenarios.find((s) => s['target'] !== null) as Record<string, unknown>;
    withTarget['meetsTarget'] = !(withTarget['meetsTarget'] as boolean);
    expect(validateReport(lying).join('\n')).toMatch(/meetsTarget/);
    expect(validateReport({ ...report, machine: { ...report.machine, nodeFlags: '--max-semi-space-size=64' } }).join('\n')).toMatch(/machine\.nodeFlags/);
    expect(validateReport('not a report')).not.toEqual([]);
  });

  it('the validator accepts a window in which nothing completed (a stall) but not a scenario that never completed anything', () => {
    const stalled = JSON.parse(JSON.stringify(report)) as { scenarios: Record<string, Record<string, unknown>>[] };
    const rates = stalled.scenarios[0]!['opsPerSec'] as Record<string, number>;
    rates['min'] = 0;
    rates['p99'] = 0;
    expect(validateReport(stalled)).toEqual([]);
    rates['max'] = 0;
    expect(validateReport(stalled).join('\n')).toMatch(/opsPerSec\.max: expected > 0/);
    rates['min'] = -1;
    expect(validateReport(stalled).join('\n')).toMatch(/opsPerSec\.min: expected ≥ 0/);
  });

  it('records the flags the process ran with, without the loaders tsx adds', () => {
    expect(report.machine.nodeFlags).toEqual(runtimeFlags(process.execArgv));
    const underTsx = ['--require', '/x/tsx/dist/preflight.cjs', '--import', 'file:///x/tsx/dist/loader.mjs', '--max-semi-space-size=64', '--expose-gc', '--import=tsx', '--cpu-prof'];
    expect(runtimeFlags(underTsx)).toEqual(['--max-semi-space-size=64', '--expose-gc', '--cpu-prof']);
  });

  it('compares every writer figure with the raw ceiling and the Emmett peer of the same workload, and each ceiling with itself', () => {
    for (const ceiling of [RAW_CEILING, PG_RAW_CEILING, RAW_BATCH, RAW_CALLERS]) {
      expect(byName(ceiling).role, ceiling).toBe('raw-ceiling');
      expect(byName(ceiling).ratioToRawCeiling, ceiling).toBe(1);
    }
    for (const peer of [EMMETT_BATCH, EMMETT_CALLERS]) expect(byName(peer).role, peer).toBe('peer');
    expect(byName(WRITER_BATCH)).toMatchObject({ role: 'ours', rawCeiling: RAW_BATCH, emmettPeer: EMMETT_BATCH });
    expect(byName(WRITER_CALLERS)).toMatchObject({ role: 'ours', rawCeiling: RAW_CALLERS, emmettPeer: EMMETT_CALLERS });
    for (const name of [WRITER_BATCH, WRITER_CALLERS]) {
      const s = byName(name);
      expect(s.ratioToRawCeiling).toBeCloseTo(s.opsPerSecMedian / byName(s.rawCeiling as string).opsPerSecMedian, 2);
      expect(s.ratioToEmmett).toBeCloseTo(s.opsPerSecMedian / byName(s.emmettPeer as string).opsPerSecMedian, 1);
    }
  });

  it("holds the writer scenarios to the issue's targets", () => {
    const targetOf = (name: string): unknown => {
      const { target } = byName(name);
      return target === null ? null : { ...target, statement: undefined };
    };
    expect(targetOf(WRITER_BATCH)).toEqual({ opsPerSec: 50_000, basis: 'overall', statement: undefined });
    expect(targetOf(WRITER_CALLERS)).toEqual({ opsPerSec: 15_000, latencyP99MsMax: 20, statement: undefined });
    expect(targetOf(WRITER_HOT)).toEqual({ ratioTo: { scenario: WRITER_CALLERS, min: 0.8 }, statement: undefined });
    expect(targetOf(WRITER_STARTUP)).toEqual({ latencyP50MsMax: 2_000, historyEvents: 1_000_000, statement: undefined });
    expect(targetOf(BALANCE_AS_OF)).toEqual({ latencyP99MsMax: 5, historyEvents: 1_000_000, statement: undefined });
    expect(targetOf(BALANCE_READ_LARGE)).toEqual({ latencyP99MsMax: 1, latencyP99RatioTo: { scenario: BALANCE_READ_SMALL, max: 1.5 }, historyEvents: 1_000_000, statement: undefined });
    expect(targetOf(PG_APPEND)).toEqual({ ratioToRawCeiling: 0.5, statement: undefined });
    // A follow scenario is held to the writer it follows, and a miss names that writer.
    const follows = report.scenarios.filter((s) => s.name.startsWith('projection-follow-') && s.target !== null);
    expect(follows.length).toBeGreaterThan(0);
    for (const s of follows) {
      expect(targetOf(s.name), s.name).toEqual({ ratioTo: { scenario: s.rawCeiling, min: 0.95 }, latencyP99MsMax: 2_000, statement: undefined });
      expect(s.rawCeiling, s.name).toMatch(/^projection-follow-writer/);
      for (const miss of s.misses) expect(miss, s.name).not.toMatch(/raw ceiling/);
    }
    for (const name of [RAW_BATCH, EMMETT_BATCH, RAW_CALLERS, EMMETT_CALLERS, WRITER_FIXED_RATE]) expect(targetOf(name), name).toBeNull();
  });

  it('a verdict is met exactly when no part of the target is missed, and not judged on a smaller history than the target names', () => {
    for (const s of report.scenarios) {
      if (s.target === null) expect(s.meetsTarget, s.name).toBeNull();
      else if (s.target.historyEvents !== undefined && (s.details['historyEvents'] as number) < s.target.historyEvents) {
        expect(s.meetsTarget, s.name).toBeNull();
        expect(s.notJudged, s.name).toMatch(/history/);
        expect(s.misses, s.name).toEqual([]);
      } else expect(s.meetsTarget, s.name).toBe(s.misses.length === 0);
    }
    // The tiny run's histories are far below the 1,000,000 events these targets name.
    for (const name of [WRITER_STARTUP, BALANCE_AS_OF, BALANCE_READ_LARGE]) expect(byName(name).meetsTarget, name).toBeNull();
    const hot = byName(WRITER_HOT);
    const ratio = hot.opsPerSecMedian / byName(WRITER_CALLERS).opsPerSecMedian;
    expect(hot.meetsTarget).toBe(ratio >= 0.8);
  });

  it('measures with durable commits (synchronous_commit, fsync and full_page_writes on), on our connections and on Emmett’s', () => {
    expect(report.postgres?.server).toMatchObject({ synchronousCommit: 'on', fsync: 'on', fullPageWrites: 'on' });
    expect(report.postgres?.server.source).toBe('embedded');
    expect(report.postgres?.emmett).toMatchObject({ available: true, synchronousCommit: 'on' });
    expect(report.versions.emmettPostgresql).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('sends the fixed-rate transfers at the intended rate, on timer ticks, every one of them completed', () => {
    const fixed = byName(WRITER_FIXED_RATE);
    const { intendedRatePerSec = 0, sentRatePerSec, sendLateMeanMs, sendsPerTick } = fixed.details as Record<string, number>;
    expect(intendedRatePerSec).toBe(TINY.writer?.fixedRatePerSec);
    expect(sentRatePerSec).toBeGreaterThanOrEqual(intendedRatePerSec * 0.99);
    expect(sentRatePerSec).toBeLessThanOrEqual(intendedRatePerSec * 1.01);
    const scheduled = Math.floor(((TINY.writer?.fixedRateWindowMs ?? 0) / 1_000) * intendedRatePerSec);
    expect(fixed.ops).toBeGreaterThanOrEqual(scheduled - 1);
    expect(fixed.ops).toBeLessThanOrEqual(scheduled);
    // A timer tick is at least 1 ms: sends go out a little late, never early, and never one spin per send.
    expect(sendLateMeanMs).toBeGreaterThanOrEqual(0);
    expect(sendLateMeanMs).toBeLessThan(50);
    // At 300/s one is due every 3.3 ms: about one per tick, and a tick that a timer fires a hair early sends none.
    expect(sendsPerTick).toBeGreaterThanOrEqual(0.5);
  });

  it('times each history of the interleaved balance reads on its own reads only', () => {
    const small = byName(BALANCE_READ_SMALL);
    const large = byName(BALANCE_READ_LARGE);
    const wall = small.details['interleavedWallSeconds'] as number;
    const own = [small, large].map((s) => s.details['timedSeconds'] as number);
    // Each recorder's clock ran only around its own reads: together they fit in the wall time, each well inside it.
    expect(own[0]! + own[1]!).toBeLessThanOrEqual(wall * 1.01 + 0.002);
    for (const [i, s] of [small, large].entries()) {
      expect(own[i]!, s.name).toBeLessThan(wall);
      // Its rate is its reads ÷ its own time (timedSeconds is rounded to the ms).
      expect(Math.abs(s.opsPerSecOverall * own[i]! - s.ops), s.name).toBeLessThanOrEqual(s.opsPerSecOverall * 0.001 + 0.5);
    }
  });

  it('reports throughput over time for the continuous windows, and fixed-rate latency from the due time that is never below the latency from the send', () => {
    expect(byName(WRITER_BATCH).series?.length).toBeGreaterThanOrEqual(1);
    expect(byName(WRITER_FIXED_RATE).series?.length).toBeGreaterThanOrEqual(1);
    const fixed = byName(WRITER_FIXED_RATE);
    expect(fixed.latencyMs.p99).toBeGreaterThanOrEqual(fixed.details['uncorrectedLatencyP99Ms'] as number);
    expect(fixed.latencyMs.max).toBeGreaterThanOrEqual(fixed.details['uncorrectedLatencyMaxMs'] as number);
  });

  it('times the start-up on the history it built, with the snapshot the tail behind its end', () => {
    const startup = byName(WRITER_STARTUP);
    expect(startup.details).toMatchObject({ historyEvents: 3_000, snapshotAtVersion: 2_500, tailEvents: 500, coldOpenEvents: 2_500 });
    expect(startup.ops).toBe(1);
    expect(startup.opsUnit).toBe('opens');
  });

  it('writes the timestamped JSON, latest.json with the same content, a Markdown table and an SVG chart naming every scenario', () => {
    const written = writeReport(report, outDir);
    expect(path.basename(written.json)).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}Z\.json$/);
    expect(readFileSync(written.latestJson, 'utf8')).toBe(readFileSync(written.json, 'utf8'));
    expect(validateReport(JSON.parse(readFileSync(written.latestJson, 'utf8')))).toEqual([]);
    const markdown = readFileSync(written.latestMarkdown, 'utf8');
    const svg = readFileSync(written.latestSvg, 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    for (const name of EXPECTED) {
      expect(markdown).toContain(`| \`${name}\` |`);
      expect(svg).toContain(`>${name}`);
    }
    expect(formatMarkdown(report)).toBe(markdown);
  });

  it('prints a console table with one row per scenario and a line for the targets', () => {
    const table = formatTable(report);
    for (const name of EXPECTED) expect(table).toContain(name);
    expect(table).toMatch(/TARGETS MISSED|Every judged target was met/);
    expect(table).toMatch(/TARGETS NOT JUDGED \(3\):/);
  });

  it('shows a target stated at a larger history than the run built as not judged, in the tables and the chart', () => {
    const markdown = formatMarkdown(report);
    const row = markdown.split('\n').find((line) => line.startsWith(`| \`${WRITER_STARTUP}\` |`) && line.includes('not judged'));
    expect(row).toContain('not judged (history 3,000)');
    expect(formatTable(report)).toContain('not judged (history 3,000)');
    expect(renderChart(report)).toContain('target not judged (history 3,000)');
  });
});

describe('the chart', () => {
  /** Target ticks drawn on the bars (the legend draws one more). */
  const ticks = (svg: string): number => (svg.match(/<line [^>]*stroke="#dc2626" stroke-width="2"\/>/g) ?? []).length - 1;
  /** The tiny run's report with one target only, on the sustained batch (a throughput bar and a p99 bar). */
  const withOneTarget = (target: Record<string, unknown>): BenchmarkReport => {
    const doc = copyOf();
    for (const s of doc.scenarios) {
      s['target'] = null;
      s['meetsTarget'] = null;
      s['notJudged'] = null;
      s['misses'] = [];
    }
    scenarioIn(doc, WRITER_BATCH)['target'] = { statement: 'one target', ...target };
    return doc as unknown as BenchmarkReport;
  };

  it('draws a throughput target on the median bar only when the target is on the median', () => {
    expect(ticks(renderChart(withOneTarget({ opsPerSec: 50_000 })))).toBe(1);
    expect(ticks(renderChart(withOneTarget({ opsPerSec: 50_000, basis: 'median' })))).toBe(1);
    // The sustained target is on the whole window's rate: no bar shows it, so no tick; the text names it.
    const sustained = renderChart(withOneTarget({ opsPerSec: 50_000, basis: 'overall' }));
    expect(ticks(sustained)).toBe(0);
    expect(sustained).toContain('target 50.0k/s on the whole window');
  });

  it('draws a latency target on the p99 bar only when the target is a p99', () => {
    expect(ticks(renderChart(withOneTarget({ latencyP99MsMax: 100 })))).toBe(1);
    // A median latency target (the start-up's) has no bar in the chart.
    const median = renderChart(withOneTarget({ latencyP50MsMax: 500 }));
    expect(ticks(median)).toBe(0);
    expect(median).toContain('target median ≤ 500 ms');
  });
});

/** A report as read back from disk, any field open to change. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = { scenarios: Record<string, any>[]; [key: string]: any };

/** A deep copy of the tiny run's report, to break one thing in. */
function copyOf(): Doc {
  return JSON.parse(JSON.stringify(report)) as Doc;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function scenarioIn(doc: Doc, name: string): Record<string, any> {
  const found = doc.scenarios.find((s) => s['name'] === name);
  if (found === undefined) throw new Error(`no scenario ${name}`);
  return found;
}

describe('the validator refuses', () => {
  it('a scenario with failed operations, naming it', () => {
    const doc = copyOf();
    scenarioIn(doc, RAW_BATCH)['errors'] = 3;
    expect(validateReport(doc).join('\n')).toMatch(new RegExp(`scenario ${RAW_BATCH}\\.errors: 3 operations failed`));
  });

  it('a verdict that the figures contradict, in either direction', () => {
    const met = copyOf();
    const callers = scenarioIn(met, WRITER_CALLERS);
    // Thresholds no run can miss: the verdict must be met.
    callers['target'] = { ...callers['target'], opsPerSec: 1, latencyP99MsMax: 1e9 };
    callers['meetsTarget'] = false;
    callers['misses'] = ['median 1 ops/s < 15,000'];
    expect(validateReport(met).join('\n')).toMatch(new RegExp(`scenario ${WRITER_CALLERS}\\.meetsTarget: disagrees with the figures: .*the missed parts are none`));

    const missed = copyOf();
    const batch = scenarioIn(missed, WRITER_BATCH);
    // A threshold no run can reach, on the basis the target names (overall), reported as met.
    batch['target'] = { ...batch['target'], opsPerSec: 1e12 };
    batch['meetsTarget'] = true;
    batch['misses'] = [];
    expect(validateReport(missed).join('\n')).toMatch(new RegExp(`scenario ${WRITER_BATCH}\\.meetsTarget: disagrees with the figures: .*overall ops/s ≥ 1000000000000`));

    const latency = copyOf();
    const hot = scenarioIn(latency, WRITER_CALLERS);
    hot['target'] = { latencyP99MsMax: hot['latencyMs']['p99'] / 2, statement: 'p99 at most half of what it was' };
    hot['meetsTarget'] = true;
    hot['misses'] = [];
    expect(validateReport(latency).join('\n')).toMatch(/p99 ≤ .* ms/);
  });

  it('a met target for a scenario with failed operations', () => {
    const doc = copyOf();
    const s = doc.scenarios.find((x) => x['meetsTarget'] === true) ?? scenarioIn(doc, WRITER_HOT);
    s['target'] = { opsPerSec: 1, statement: 'any rate' };
    s['meetsTarget'] = true;
    s['misses'] = [];
    s['errors'] = 1;
    const problems = validateReport(doc).join('\n');
    expect(problems).toMatch(new RegExp(`scenario ${String(s['name'])}\\.meetsTarget: disagrees with the figures: .*failed operations`));
  });

  it('a ratio that is not the quotient of the two medians', () => {
    const doc = copyOf();
    const s = scenarioIn(doc, WRITER_BATCH);
    s['ratioToRawCeiling'] = Math.round(s['ratioToRawCeiling'] * 2 * 10_000) / 10_000 + 0.01;
    s['ratioToEmmett'] = s['ratioToEmmett'] / 3;
    const problems = validateReport(doc).join('\n');
    expect(problems).toMatch(new RegExp(`scenario ${WRITER_BATCH}\\.ratioToRawCeiling: .* is not this median ÷ ${RAW_BATCH}'s`));
    expect(problems).toMatch(new RegExp(`scenario ${WRITER_BATCH}\\.ratioToEmmett: .* is not this median ÷ ${EMMETT_BATCH}'s`));
    const orphan = copyOf();
    scenarioIn(orphan, WRITER_HOT)['ratioToEmmett'] = 2;
    expect(validateReport(orphan).join('\n')).toMatch(new RegExp(`scenario ${WRITER_HOT}\\.ratioToEmmett: expected null without a emmettPeer`));
  });

  it('throughput percentiles out of order, and a median outside the samples', () => {
    const doc = copyOf();
    const s = scenarioIn(doc, RAW_CEILING);
    s['opsPerSec'] = { ...s['opsPerSec'], p95: s['opsPerSec']['max'] * 2, max: s['opsPerSec']['max'] * 3 };
    expect(validateReport(doc).join('\n')).toMatch(new RegExp(`scenario ${RAW_CEILING}\\.opsPerSec: percentiles out of order`));
    const median = copyOf();
    const m = scenarioIn(median, RAW_CEILING);
    m['opsPerSecMedian'] = m['opsPerSec']['max'] + 1;
    expect(validateReport(median).join('\n')).toMatch(new RegExp(`scenario ${RAW_CEILING}\\.opsPerSecMedian: .* is outside the samples' range`));
  });

  it('an Emmett peer that did not commit synchronously, or that did not run but is named', () => {
    const doc = copyOf();
    doc['postgres'] = { ...doc['postgres'], emmett: { ...doc['postgres'].emmett, synchronousCommit: 'off' } };
    expect(validateReport(doc).join('\n')).toMatch(/postgres\.emmett\.synchronousCommit: the Emmett peer ran with synchronous_commit off/);
    const absent = copyOf();
    absent['postgres'] = { ...absent['postgres'], emmett: { available: false, version: null, synchronousCommit: null, reason: 'left out' } };
    expect(validateReport(absent).join('\n')).toMatch(new RegExp(`scenario ${WRITER_CALLERS}\\.emmettPeer: names an Emmett peer`));
  });

  it('a scenario without its descriptive fields, and a document without the versions and settings README.md names', () => {
    for (const key of ['description', 'latencyOf', 'sampleOf', 'opsUnit']) {
      const doc = copyOf();
      delete scenarioIn(doc, WRITER_CALLERS)[key];
      expect(validateReport(doc).join('\n'), key).toMatch(new RegExp(`scenario ${WRITER_CALLERS}\\.${key}: missing`));
    }
    const blank = copyOf();
    scenarioIn(blank, WRITER_CALLERS)['description'] = ' ';
    expect(validateReport(blank).join('\n')).toMatch(/description: missing/);
    for (const key of ['pg', 'embeddedPostgres', 'zod']) {
      const doc = copyOf();
      delete doc['versions'][key];
      expect(validateReport(doc).join('\n'), key).toMatch(new RegExp(`versions\\.${key}: missing`));
    }
    const settings = copyOf();
    delete settings['settings']['seed'];
    expect(validateReport(settings).join('\n')).toMatch(/settings\.seed: expected a finite number/);
    const group = copyOf();
    delete group['groups'][0].settings;
    expect(validateReport(group).join('\n')).toMatch(/group core\.settings: missing/);
  });

  it('a target judged on a smaller history than it names, and one not judged on the history it names', () => {
    const judged = copyOf();
    const startup = scenarioIn(judged, WRITER_STARTUP);
    startup['meetsTarget'] = true;
    startup['notJudged'] = null;
    const problems = validateReport(judged).join('\n');
    expect(problems).toMatch(new RegExp(`scenario ${WRITER_STARTUP}\\.meetsTarget: the target is stated at 1000000 events of history but the scenario ran on 3000: expected null`));
    expect(problems).toMatch(new RegExp(`scenario ${WRITER_STARTUP}\\.notJudged: missing`));
    const full = copyOf();
    const fullStartup = scenarioIn(full, WRITER_STARTUP);
    fullStartup['details'] = { ...fullStartup['details'], historyEvents: 1_000_000 };
    expect(validateReport(full).join('\n')).toMatch(new RegExp(`scenario ${WRITER_STARTUP}: meetsTarget must be a boolean with a target judged on its history`));
  });

  it('a server with fsync or full_page_writes off, or one that does not report them', () => {
    for (const [key, setting] of [
      ['fsync', 'fsync'],
      ['fullPageWrites', 'full_page_writes'],
    ] as const) {
      const off = copyOf();
      off['postgres'].server[key] = 'off';
      expect(validateReport(off).join('\n'), key).toMatch(new RegExp(`postgres\\.server\\.${key}: expected on \\(${setting}\\), got off`));
      const old = copyOf();
      delete old['postgres'].server[key];
      expect(validateReport(old).join('\n'), key).toMatch(new RegExp(`postgres\\.server\\.${key}: missing`));
    }
  });

  it('a null postgres section when PostgreSQL scenarios ran, but not in a run of the in-memory group alone', () => {
    const doc = copyOf();
    doc['postgres'] = null;
    expect(validateReport(doc).join('\n')).toMatch(/postgres: null, but scenarios of postgres, writer-batch, .* ran on PostgreSQL/);
    const core = copyOf();
    core['postgres'] = null;
    core['groups'] = core['groups'].filter((g: { id: string }) => g.id === 'core');
    core.scenarios = core.scenarios.filter((s) => s['group'] === 'core');
    expect(validateReport(core)).toEqual([]);
  });

  it('an overall rate that is not the operations ÷ the timed seconds, even with a verdict that agrees with it', () => {
    const doc = copyOf();
    const batch = scenarioIn(doc, WRITER_BATCH);
    expect(typeof batch['details']['timedSeconds']).toBe('number');
    // A sustained target met on an inflated whole-window rate: the verdict agrees with the figure, the figure with nothing.
    batch['opsPerSecOverall'] = Math.round((batch['ops'] / batch['details']['timedSeconds']) * 2);
    batch['target'] = { opsPerSec: 1, basis: 'overall', statement: 'any sustained rate' };
    batch['meetsTarget'] = true;
    batch['misses'] = [];
    expect(validateReport(doc).join('\n')).toMatch(new RegExp(`scenario ${WRITER_BATCH}\\.opsPerSecOverall: .* is not ops ÷ timedSeconds`));
    const raw = copyOf();
    const ceiling = scenarioIn(raw, RAW_BATCH);
    ceiling['opsPerSecOverall'] = Math.round((ceiling['ops'] / ceiling['details']['timedSeconds']) * 0.9);
    expect(validateReport(raw).join('\n')).toMatch(new RegExp(`scenario ${RAW_BATCH}\\.opsPerSecOverall: .* is not ops ÷ timedSeconds`));
  });

  it('a raw ceiling or an Emmett peer that is not a scenario of the same group in that role', () => {
    const wrongRole = copyOf();
    const batch = scenarioIn(wrongRole, WRITER_BATCH);
    // The Emmett peer named as the raw ceiling: the ratio is its quotient, the role is wrong.
    batch['rawCeiling'] = EMMETT_BATCH;
    batch['ratioToRawCeiling'] = batch['ratioToEmmett'];
    expect(validateReport(wrongRole).join('\n')).toMatch(new RegExp(`scenario ${WRITER_BATCH}\\.rawCeiling: ${EMMETT_BATCH} has role peer, expected raw-ceiling`));
    const wrongGroup = copyOf();
    const callers = scenarioIn(wrongGroup, WRITER_CALLERS);
    // Another group's ceiling: right role, wrong workload.
    callers['rawCeiling'] = RAW_BATCH;
    callers['ratioToRawCeiling'] = Math.round((callers['opsPerSecMedian'] / scenarioIn(wrongGroup, RAW_BATCH)['opsPerSecMedian']) * 10_000) / 10_000;
    callers['target'] = null;
    callers['meetsTarget'] = null;
    callers['misses'] = [];
    expect(validateReport(wrongGroup).join('\n')).toMatch(new RegExp(`scenario ${WRITER_CALLERS}\\.rawCeiling: ${RAW_BATCH} is in group writer-batch, not this scenario's group writer-callers`));
    const peerRole = copyOf();
    const hot = scenarioIn(peerRole, WRITER_CALLERS);
    hot['emmettPeer'] = RAW_CALLERS;
    hot['ratioToEmmett'] = hot['ratioToRawCeiling'];
    expect(validateReport(peerRole).join('\n')).toMatch(new RegExp(`scenario ${WRITER_CALLERS}\\.emmettPeer: ${RAW_CALLERS} has role raw-ceiling, expected peer`));
  });

  it('a balance read reported flat in history when its p99 is not within 1.5 × the 10-event p99', () => {
    const doc = copyOf();
    const large = scenarioIn(doc, BALANCE_READ_LARGE);
    const small = scenarioIn(doc, BALANCE_READ_SMALL);
    // As a full run would report it: judged at 1,000,000 events, p99 well under 1 ms but 3 × the 10-event p99.
    large['details'] = { ...large['details'], historyEvents: 1_000_000 };
    large['notJudged'] = null;
    large['meetsTarget'] = true;
    large['misses'] = [];
    small['latencyMs'] = { p50: 0.05, p95: 0.08, p99: 0.1, max: 0.2 };
    large['latencyMs'] = { p50: 0.1, p95: 0.2, p99: 0.3, max: 0.4 };
    expect(validateReport(doc).join('\n')).toMatch(new RegExp(`scenario ${BALANCE_READ_LARGE}\\.meetsTarget: disagrees with the figures: .*p99 ≤ 1.5 × ${BALANCE_READ_SMALL}'s`));
    large['meetsTarget'] = false;
    large['misses'] = [`p99 3.00 × ${BALANCE_READ_SMALL}'s > 1.5`];
    expect(validateReport(doc)).toEqual([]);
  });
});
