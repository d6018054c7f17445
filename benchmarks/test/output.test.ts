import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RAW_CEILING } from '../src/core-decide-evolve.js';
import { formatTable, writeReport, type BenchmarkReport } from '../src/report.js';
import { CI_SETTINGS, runSuite } from '../src/suite.js';

let report: BenchmarkReport;
let outDir: string;

beforeAll(() => {
  // A tiny run: it checks what the harness reports and writes, never how fast anything is.
  report = runSuite({ ...CI_SETTINGS, mode: 'custom', rounds: 2, warmupRounds: 1, opsPerRound: 2_000, batchSize: 500, accounts: 200 });
  outDir = mkdtempSync(path.join(os.tmpdir(), 'ledgerkit-bench-'));
});
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

const EXPECTED = [RAW_CEILING, 'decide-evolve-prevalidated', 'validate-decide-evolve'];

function expectPositive(value: unknown, where: string): void {
  expect(typeof value, where).toBe('number');
  expect(Number.isFinite(value), where).toBe(true);
  expect(value as number, where).toBeGreaterThan(0);
}

function checkShape(parsed: BenchmarkReport): void {
  expect(parsed.schemaVersion).toBe(1);
  expectPositive(parsed.machine.cpus, 'machine.cpus');
  expect(parsed.machine.model.length).toBeGreaterThan(0);
  expect(parsed.machine.node).toBe(process.version);
  expect(parsed.machine.platform.length).toBeGreaterThan(0);
  expect(parsed.versions.ledgerCore).toMatch(/^\d+\.\d+\.\d+/);
  expect(parsed.settings).toMatchObject({ rounds: 2, opsPerRound: 2_000, batchSize: 500, accounts: 200 });
  expect(parsed.scenarios.map((s) => s.name)).toEqual(EXPECTED);
  for (const s of parsed.scenarios) {
    expectPositive(s.opsPerSecMedian, `${s.name}.opsPerSecMedian`);
    for (const key of ['p50', 'p95', 'p99', 'min', 'max'] as const) expectPositive(s.opsPerSec[key], `${s.name}.opsPerSec.${key}`);
    for (const key of ['p50', 'p95', 'p99', 'max'] as const) expectPositive(s.latencyNs[key], `${s.name}.latencyNs.${key}`);
    expect(s.opsPerSec.min).toBeLessThanOrEqual(s.opsPerSec.max);
    expect(s.latencyNs.p50).toBeLessThanOrEqual(s.latencyNs.max);
    expect(s.rounds).toBe(2);
    expect(s.ops).toBe(4_000);
    expect(s.latencySamples).toBe(8);
    expectPositive(s.ratioToRawCeiling, `${s.name}.ratioToRawCeiling`);
    expectPositive(s.cpuPerWall, `${s.name}.cpuPerWall`);
    if (s.target === null) expect(s.meetsTarget).toBeNull();
    else expect(s.meetsTarget).toBe(s.opsPerSecMedian >= s.target.opsPerSec);
  }
}

describe('benchmark output', () => {
  it('every scenario runs its fixture without a single rejected or failed operation', () => {
    for (const s of report.scenarios) expect(s.errors, s.name).toBe(0);
  });

  it('reports every scenario with finite, positive figures and its ratio to the raw ceiling', () => {
    checkShape(report);
    expect(report.scenarios.find((s) => s.name === RAW_CEILING)?.ratioToRawCeiling).toBe(1);
  });

  it('holds the decider scenarios to the issue targets and the raw ceiling to none', () => {
    const targets = Object.fromEntries(report.scenarios.map((s) => [s.name, s.target?.opsPerSec ?? null]));
    expect(targets).toEqual({ [RAW_CEILING]: null, 'decide-evolve-prevalidated': 1_000_000, 'validate-decide-evolve': 300_000 });
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
