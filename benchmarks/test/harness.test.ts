import { describe, expect, it } from 'vitest';
import { measureScenarios, type Scenario } from '../src/harness.js';
import { closedLoop, fixedRate, FixedRateSchedule, LoadRecorder, runLoadSchedule, type LoadScenario } from '../src/load-harness.js';
import type { Measurement, Target } from '../src/measurement.js';
import { buildReport, formatMarkdown, type MeasuredGroup } from '../src/report.js';
import { validateReport } from '../src/validate.js';

// The harnesses and the report's verdicts without PostgreSQL: small, fast and deterministic enough.

describe('fixed-rate generator', () => {
  it('sleeps on a timer between sends, sends every operation at the intended rate, and times each from its due time', async () => {
    const rate = 4_000;
    const windowMs = 600;
    const recorder = new LoadRecorder(false);
    const schedule = new FixedRateSchedule();
    const drive = fixedRate(rate, () => Promise.resolve(true), () => undefined, schedule);
    const cpuStart = process.cpuUsage();
    const startNs = process.hrtime.bigint();
    recorder.startWindow(startNs);
    await drive(recorder, startNs + BigInt(windowMs) * 1_000_000n);
    const wallUs = Number(process.hrtime.bigint() - startNs) / 1_000;
    const cpu = process.cpuUsage(cpuStart);
    try {
      // The schedule starts when the generator does, a hair after the window: one fewer may fall in it.
      const total = Math.floor((windowMs / 1_000) * rate);
      expect(schedule.due).toBeGreaterThanOrEqual(total - 1);
      expect(schedule.due).toBeLessThanOrEqual(total);
      expect(schedule.sent).toBe(schedule.due);
      expect(recorder.ops).toBe(schedule.due);
      expect(recorder.errors).toBe(0);
      const { sentRatePerSec, sendsPerTick } = schedule.details();
      expect(sentRatePerSec).toBeCloseTo(rate, -1);
      // At 4,000/s one is due every 0.25 ms: a timer tick (≥ 1 ms) sends several, a spin would send about one.
      expect(sendsPerTick).toBeGreaterThan(2);
      // A busy wait keeps the thread at ~100 % for the whole window; sleeping on a timer leaves most of it idle.
      expect((cpu.user + cpu.system) / wallUs).toBeLessThan(0.6);
      // Latency from the due time is never below the latency from the send.
      expect(recorder.perOp.maxValue).toBeGreaterThanOrEqual(recorder.uncorrected.maxValue);
    } finally {
      recorder.destroy();
    }
  });
});

describe('warm-up errors', () => {
  it('a windowed scenario whose warm-up window fails reports those failures as errors', async () => {
    const scenario: LoadScenario = {
      name: 'fails-in-warm-up',
      description: 'resolves false in its warm-up window only',
      target: undefined,
      latencyOf: 'operation',
      sampleBy: 'window',
      series: false,
      prepare: (round) => Promise.resolve({ drive: closedLoop(1, () => new Promise((resolve) => setTimeout(() => resolve(round >= 0), 1)), () => undefined) }),
    };
    const [measurement] = await runLoadSchedule([
      { scenario, round: -1, durationMs: 30 },
      { scenario, round: 0, durationMs: 30 },
    ]);
    expect(measurement?.errors).toBeGreaterThan(0);
    expect(measurement?.details['warmupErrors']).toBe(measurement?.errors);
  });

  it('a round-based scenario whose warm-up round fails reports those failures as errors', async () => {
    const scenario: Scenario = {
      name: 'fails-in-warm-up',
      description: 'fails every operation of its warm-up rounds',
      target: undefined,
      prepare: (_ops, round) => ({ run: (from, to) => (round < 0 ? to - from : 0) }),
    };
    const [measurement] = await measureScenarios([scenario], { rounds: 1, warmupRounds: 2, opsPerRound: 100, batchSize: 10 });
    expect(measurement?.errors).toBe(200);
    expect(measurement?.details['warmupErrors']).toBe(200);
  });
});

/** A measurement with fixed figures: every sample at `rate`, every latency percentile at `p99Ms` (p50 half of it). */
function measurement(name: string, fields: { rate: number; p99Ms: number; errors?: number; target?: Target; details?: Measurement['details'] }): Measurement {
  return {
    name,
    description: `${name}, made up`,
    target: fields.target,
    latencyOf: 'operation',
    opsPerSecSamples: [fields.rate, fields.rate, fields.rate],
    sampleOf: 'round',
    opsPerSecOverall: fields.rate,
    latencyMs: { p50: fields.p99Ms / 2, p95: fields.p99Ms, p99: fields.p99Ms, max: fields.p99Ms * 2 },
    batchLatencyMs: null,
    latencySamples: 3,
    ops: 3 * fields.rate,
    errors: fields.errors ?? 0,
    cpuPerWall: 1,
    loadAverage1m: { start: 0, end: 0 },
    peers: {},
    series: null,
    details: fields.details ?? {},
  };
}

function reportOf(measurements: Measurement[]) {
  const group: MeasuredGroup = { info: { id: 'made-up', title: 'Made up', rawCeiling: null, method: 'none', settings: {} }, measurements };
  return buildReport({
    startedAt: new Date(0),
    finishedAt: new Date(1_000),
    mode: 'custom',
    machine: { cpus: 2, model: 'test', node: process.version, platform: process.platform, loadAverage1mAtStart: 0, nodeFlags: [] } as never,
    versions: { ledgerCore: '0', zod: '0', hdrHistogramJs: '0', storePostgres: '0', pg: '0', embeddedPostgres: '0', emmettPostgresql: null, node: '20', v8: '11', gitCommit: null, gitDirty: null },
    settings: { seed: 1, gcBetweenRounds: false },
    postgres: null,
    groups: [group],
  });
}

describe('verdicts', () => {
  it('a scenario with failed operations does not meet its target, even when its figures do', () => {
    const report = reportOf([measurement('broken', { rate: 1_000, p99Ms: 1, errors: 2, target: { opsPerSec: 10, statement: 'at least 10/s' } })]);
    const [s] = report.scenarios;
    expect(s?.meetsTarget).toBe(false);
    expect(s?.misses).toEqual(['2 operations failed']);
    // The verdict agrees with the figures; the failures themselves are what the validator refuses.
    expect(validateReport(JSON.parse(JSON.stringify(report)))).toEqual(['scenario broken.errors: 2 operations failed; expected 0, the figures are not valid']);
  });

  it('a target stated at a history is not judged on a smaller one, and judged on one as large', () => {
    const target: Target = { latencyP50MsMax: 2_000, historyEvents: 1_000_000, statement: 'start-up at 1,000,000 events ≤ 2 s' };
    const small = reportOf([measurement('startup', { rate: 1, p99Ms: 100, target, details: { historyEvents: 100_000 } })]);
    expect(small.scenarios[0]).toMatchObject({ meetsTarget: null, misses: [], notJudged: 'history 100,000 events, the target is stated at 1,000,000' });
    expect(formatMarkdown(small)).toContain('not judged (history 100,000)');
    expect(validateReport(JSON.parse(JSON.stringify(small)))).toEqual([]);
    const full = reportOf([measurement('startup', { rate: 1, p99Ms: 100, target, details: { historyEvents: 1_000_000 } })]);
    expect(full.scenarios[0]).toMatchObject({ meetsTarget: true, misses: [], notJudged: null });
    expect(validateReport(JSON.parse(JSON.stringify(full)))).toEqual([]);
  });

  it('flatness in history is part of the balance-read verdict', () => {
    const target: Target = { latencyP99MsMax: 1, latencyP99RatioTo: { scenario: 'reads-at-10', max: 1.5 }, historyEvents: 1_000_000, statement: 'p99 ≤ 1 ms, flat' };
    const flat = reportOf([measurement('reads-at-10', { rate: 5_000, p99Ms: 0.2 }), measurement('reads-at-1m', { rate: 5_000, p99Ms: 0.25, target, details: { historyEvents: 1_000_000 } })]);
    expect(flat.scenarios[1]?.meetsTarget).toBe(true);
    const steep = reportOf([measurement('reads-at-10', { rate: 5_000, p99Ms: 0.2 }), measurement('reads-at-1m', { rate: 5_000, p99Ms: 0.4, target, details: { historyEvents: 1_000_000 } })]);
    expect(steep.scenarios[1]).toMatchObject({ meetsTarget: false, misses: ["p99 2.00 × reads-at-10's > 1.5"] });
    expect(validateReport(JSON.parse(JSON.stringify(steep)))).toEqual([]);
  });
});
