import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RAW_CEILING } from '../src/core-decide-evolve.js';
import { PG_APPEND, PG_RAW_CEILING, PG_WRITER } from '../src/postgres-append.js';
import { formatTable, writeReport, type BenchmarkReport, type ScenarioResult } from '../src/report.js';
import { CI_SETTINGS, runSuite } from '../src/suite.js';

let report: BenchmarkReport;
let outDir: string;

beforeAll(async () => {
  // A tiny run: it checks what the harness reports and writes, never how fast anything is. The
  // PostgreSQL group runs on an embedded server (or DATABASE_URL), one append per round.
  report = await runSuite({
    ...CI_SETTINGS,
    mode: 'custom',
    rounds: 2,
    warmupRounds: 1,
    opsPerRound: 2_000,
    batchSize: 500,
    accounts: 200,
    postgres: { rounds: 2, warmupRounds: 1, batchesPerRound: 1, accounts: 20 },
  });
  outDir = mkdtempSync(path.join(os.tmpdir(), 'ledgerkit-bench-'));
});
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

const CORE = [RAW_CEILING, 'decide-evolve-prevalidated', 'validate-decide-evolve'];
const POSTGRES = [PG_RAW_CEILING, PG_APPEND, PG_WRITER];
const EXPECTED = [...CORE, ...POSTGRES];

function expectPositive(value: unknown, where: string): void {
  expect(typeof value, where).toBe('number');
  expect(Number.isFinite(value), where).toBe(true);
  expect(value as number, where).toBeGreaterThan(0);
}

function checkShape(parsed: BenchmarkReport): void {
  expect(parsed.schemaVersion).toBe(2);
  expectPositive(parsed.machine.cpus, 'machine.cpus');
  expect(parsed.machine.model.length).toBeGreaterThan(0);
  expect(parsed.machine.node).toBe(process.version);
  expect(parsed.machine.platform.length).toBeGreaterThan(0);
  expect(parsed.versions.ledgerCore).toMatch(/^\d+\.\d+\.\d+/);
  expect(parsed.versions.storePostgres).toMatch(/^\d+\.\d+\.\d+/);
  expect(parsed.versions.pg).toMatch(/^\d+\.\d+\.\d+/);
  expect(parsed.settings).toMatchObject({ rounds: 2, opsPerRound: 2_000, batchSize: 500, accounts: 200 });
  expect(parsed.scenarios.map((s) => s.name)).toEqual(EXPECTED);
  for (const s of parsed.scenarios) {
    const core = CORE.includes(s.name);
    expect(s.group, s.name).toBe(core ? 'core' : 'postgres');
    expect(s.rawCeiling, s.name).toBe(core ? RAW_CEILING : PG_RAW_CEILING);
    expectPositive(s.opsPerSecMedian, `${s.name}.opsPerSecMedian`);
    for (const key of ['p50', 'p95', 'p99', 'min', 'max'] as const) expectPositive(s.opsPerSec[key], `${s.name}.opsPerSec.${key}`);
    for (const key of ['p50', 'p95', 'p99', 'max'] as const) {
      expectPositive(s.latencyNs[key], `${s.name}.latencyNs.${key}`);
      expectPositive(s.batchLatencyMs[key], `${s.name}.batchLatencyMs.${key}`);
    }
    expect(s.opsPerSec.min).toBeLessThanOrEqual(s.opsPerSec.max);
    expect(s.latencyNs.p50).toBeLessThanOrEqual(s.latencyNs.max);
    expect(s.batchLatencyMs.p50).toBeLessThanOrEqual(s.batchLatencyMs.max);
    expect(s.rounds).toBe(2);
    expect(s.ops).toBe(core ? 4_000 : 2_000);
    expect(s.latencySamples).toBe(core ? 8 : 2);
    expectPositive(s.ratioToRawCeiling, `${s.name}.ratioToRawCeiling`);
    expectPositive(s.cpuPerWall, `${s.name}.cpuPerWall`);
    expect(s.meetsTarget).toBe(expectedMeets(s));
  }
}

function expectedMeets(s: ScenarioResult): boolean | null {
  if (s.target === null) return null;
  const rate = s.target.opsPerSec === undefined || s.opsPerSecMedian >= s.target.opsPerSec;
  const ratio = s.target.ratioToRawCeiling === undefined || (s.ratioToRawCeiling ?? 0) >= s.target.ratioToRawCeiling;
  return rate && ratio;
}

describe('benchmark output', () => {
  it('every scenario runs its fixture without a single rejected or failed operation', () => {
    for (const s of report.scenarios) expect(s.errors, s.name).toBe(0);
  });

  it('reports every scenario with finite, positive figures and its ratio to the raw ceiling of its own group', () => {
    checkShape(report);
    expect(report.scenarios.find((s) => s.name === RAW_CEILING)?.ratioToRawCeiling).toBe(1);
    expect(report.scenarios.find((s) => s.name === PG_RAW_CEILING)?.ratioToRawCeiling).toBe(1);
  });

  it('holds the decider scenarios and the store append to the issue targets and the ceilings and the writer to none', () => {
    const targets = Object.fromEntries(
      report.scenarios.map((s) => [s.name, s.target === null ? null : { opsPerSec: s.target.opsPerSec, ratioToRawCeiling: s.target.ratioToRawCeiling }]),
    );
    expect(targets).toEqual({
      [RAW_CEILING]: null,
      'decide-evolve-prevalidated': { opsPerSec: 1_000_000, ratioToRawCeiling: undefined },
      'validate-decide-evolve': { opsPerSec: 300_000, ratioToRawCeiling: undefined },
      [PG_RAW_CEILING]: null,
      [PG_APPEND]: { opsPerSec: undefined, ratioToRawCeiling: 0.5 },
      [PG_WRITER]: null,
    });
  });

  it('measures PostgreSQL with synchronous commits and reports the server it ran on', () => {
    const postgres = report.postgres;
    expect(postgres).not.toBeNull();
    expect(postgres?.server.synchronousCommit).toBe('on');
    expect(postgres?.server.version).toMatch(/^PostgreSQL \d+/);
    expect(postgres?.server.serverVersionNum).toBeGreaterThanOrEqual(130_000);
    expect(postgres?.server.source).toBe(process.env['DATABASE_URL'] ? 'DATABASE_URL' : 'embedded');
    expect(postgres?.settings).toEqual({ rounds: 2, warmupRounds: 1, batchesPerRound: 1, batchSize: 1_000, opsPerRound: 1_000, accounts: 20 });
    expect(postgres?.rawCeiling).toBe(PG_RAW_CEILING);
  });

  it('writes the timestamped JSON, latest.json with the same content, and a Markdown table naming every scenario', () => {
    const written = writeReport(report, outDir);
    expect(path.basename(written.json)).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}Z\.json$/);
    const parsed = JSON.parse(readFileSync(written.json, 'utf8')) as BenchmarkReport;
    checkShape(parsed);
    expect(readFileSync(written.latestJson, 'utf8')).toBe(readFileSync(written.json, 'utf8'));
    const markdown = readFileSync(written.latestMarkdown, 'utf8');
    for (const name of EXPECTED) expect(markdown).toContain(`| \`${name}\` |`);
  });

  it('prints a console table with one row per scenario', () => {
    const table = formatTable(report);
    for (const name of EXPECTED) expect(table).toContain(name);
  });
});
