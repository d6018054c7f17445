import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RAW_CEILING } from '../src/core-decide-evolve.js';
import { runtimeFlags } from '../src/environment.js';
import { PG_APPEND, PG_RAW_CEILING, PG_WRITER } from '../src/postgres-append.js';
import { PROJECTION_SCENARIO_NAMES } from '../src/projections-bench.js';
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
  report = await runSuite(TINY);
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
    expect(targetOf(WRITER_STARTUP)).toEqual({ latencyP50MsMax: 2_000, statement: undefined });
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

  it('a verdict is met exactly when no part of the target is missed', () => {
    for (const s of report.scenarios) {
      if (s.target === null) expect(s.meetsTarget, s.name).toBeNull();
      else expect(s.meetsTarget, s.name).toBe(s.misses.length === 0);
    }
    const hot = byName(WRITER_HOT);
    const ratio = hot.opsPerSecMedian / byName(WRITER_CALLERS).opsPerSecMedian;
    expect(hot.meetsTarget).toBe(ratio >= 0.8);
  });

  it('measures with synchronous commits, on our connections and on Emmett’s', () => {
    expect(report.postgres?.server.synchronousCommit).toBe('on');
    expect(report.postgres?.server.source).toBe(process.env['DATABASE_URL'] ? 'DATABASE_URL' : 'embedded');
    expect(report.postgres?.emmett).toMatchObject({ available: true, synchronousCommit: 'on' });
    expect(report.versions.emmettPostgresql).toMatch(/^\d+\.\d+\.\d+/);
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
    expect(table).toMatch(/TARGETS MISSED|Every target was met/);
  });
});
