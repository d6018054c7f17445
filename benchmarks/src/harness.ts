/**
 * The measurement loop shared by every scenario: warm-up, then interleaved rounds of a fixed
 * number of operations, each round timed in batches. Single-threaded by nature: Node cannot pin
 * itself to a core, so every figure is "one JavaScript thread on whichever core the OS chose".
 * A scenario may be asynchronous (a database round trip per batch); a synchronous one is never
 * awaited, so the in-memory loops are timed exactly as before.
 */
import { build as buildHistogram, type Histogram } from 'hdr-histogram-js';

/**
 * A goal a scenario is held to, quoted from the issue that set it: an absolute throughput, a
 * share of its raw ceiling's throughput in the same run, or both.
 */
export interface Target {
  /** Median ops/s to reach. */
  readonly opsPerSec?: number;
  /** Median ÷ the raw ceiling's median to reach. */
  readonly ratioToRawCeiling?: number;
  readonly statement: string;
}

/** One round's fresh state and inputs, built before the clock starts. */
export interface PreparedRound {
  /**
   * Runs operations `[from, to)` of the round and returns how many of them failed. A promise is
   * awaited inside the timed region; a plain number costs no extra tick.
   */
  run(from: number, to: number): number | Promise<number>;
  /** Releases what the round holds (e.g. closes a writer) once it is timed; not timed. */
  finish?(): void | Promise<void>;
}

/** Something to measure: builds rounds, and the harness times them. */
export interface Scenario {
  /** Stable kebab-case name; results are keyed by it. */
  readonly name: string;
  /** One sentence: what one operation is. */
  readonly description: string;
  readonly target: Target | undefined;
  /** Builds round `round` with `opsCount` operations (warm-up rounds are negative); not timed. */
  prepare(opsCount: number, round: number): PreparedRound | Promise<PreparedRound>;
}

/** Latency percentiles of one scenario. */
export interface LatencySummary {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/** How long and how finely to measure. */
export interface MeasureSettings {
  /** Measured rounds per scenario. */
  readonly rounds: number;
  /** Unrecorded rounds per scenario run first, so the JIT has optimised the hot path. */
  readonly warmupRounds: number;
  /** Operations in one round. */
  readonly opsPerRound: number;
  /** Operations timed together; one latency sample is the batch time divided by its size. */
  readonly batchSize: number;
}

/** Summary of one scenario's measured rounds. */
export interface ScenarioMeasurement {
  readonly scenario: Scenario;
  /** Throughput of each measured round, ops/s, in the order they ran. */
  readonly roundOpsPerSec: readonly number[];
  /** Per-operation time, ns, from batch samples: p50, p95, p99 and max. */
  readonly latencyNs: LatencySummary;
  /** Whole-batch time, ns: p50, p95, p99 and max. For a store, one batch is one append. */
  readonly batchLatencyNs: LatencySummary;
  /** Latency samples recorded (batches). */
  readonly latencySamples: number;
  /** Operations that failed (rejected or threw) across the measured rounds. */
  readonly errors: number;
  /** Operations measured across all rounds. */
  readonly ops: number;
  /**
   * Process CPU time ÷ wall time over the timed rounds. At least about 1 when the loop had a core
   * to itself (V8's GC and compiler threads add to it); well below 1 means other processes took
   * turns and the figures are pessimistic.
   */
  readonly cpuPerWall: number;
}

/** Called after each measured round, e.g. to print progress. */
export type RoundListener = (scenarioName: string, round: number, opsPerSec: number) => void;

// A sample above one second means a stall worth seeing in full, so the range reaches a minute.
const LATENCY_NS_MAX = 60_000_000_000;

const collectGarbage: (() => void) | undefined = typeof globalThis.gc === 'function' ? globalThis.gc : undefined;

/** Whether rounds start from a collected heap (node was started with `--expose-gc`). */
export const gcBetweenRounds = collectGarbage !== undefined;

/**
 * Measures every scenario with the same settings. Rounds are interleaved (round 1 of every
 * scenario, then round 2, …) and the order rotates each round, so background load on a shared
 * machine falls on all scenarios alike and the ratios between them stay meaningful.
 */
export async function measureScenarios(scenarios: readonly Scenario[], settings: MeasureSettings, onRound?: RoundListener): Promise<ScenarioMeasurement[]> {
  assertSettings(settings);
  for (const scenario of scenarios) {
    for (let round = 0; round < settings.warmupRounds; round += 1) await timeRound(scenario, -1 - round, settings, undefined);
  }
  const states = scenarios.map((scenario) => ({
    scenario,
    roundOpsPerSec: [] as number[],
    errors: 0,
    cpuUs: 0,
    wallNs: 0,
    perOp: newHistogram(),
    perBatch: newHistogram(),
  }));
  try {
    for (let round = 0; round < settings.rounds; round += 1) {
      for (let k = 0; k < states.length; k += 1) {
        const state = states[(round + k) % states.length];
        if (state === undefined) continue;
        const timed = await timeRound(state.scenario, round, settings, (batchNs, ops) => {
          state.perOp.recordValue(Math.max(1, Math.round(batchNs / ops)));
          state.perBatch.recordValue(Math.max(1, batchNs));
        });
        state.roundOpsPerSec.push(timed.opsPerSec);
        state.errors += timed.errors;
        state.cpuUs += timed.cpuUs;
        state.wallNs += timed.wallNs;
        onRound?.(state.scenario.name, round, timed.opsPerSec);
      }
    }
    return states.map((state) => ({
      scenario: state.scenario,
      roundOpsPerSec: state.roundOpsPerSec,
      latencyNs: summariseLatency(state.perOp),
      batchLatencyNs: summariseLatency(state.perBatch),
      latencySamples: state.perOp.totalCount,
      errors: state.errors,
      ops: settings.rounds * settings.opsPerRound,
      cpuPerWall: state.cpuUs / (Math.max(state.wallNs, 1) / 1_000),
    }));
  } finally {
    for (const state of states) {
      state.perOp.destroy();
      state.perBatch.destroy();
    }
  }
}

function newHistogram(): Histogram {
  return buildHistogram({ lowestDiscernibleValue: 1, highestTrackableValue: LATENCY_NS_MAX, numberOfSignificantValueDigits: 3 });
}

function summariseLatency(histogram: Histogram): LatencySummary {
  // A percentile is its bucket's highest equivalent value, which can pass the exact maximum.
  return {
    p50: Math.min(histogram.getValueAtPercentile(50), histogram.maxValue),
    p95: Math.min(histogram.getValueAtPercentile(95), histogram.maxValue),
    p99: Math.min(histogram.getValueAtPercentile(99), histogram.maxValue),
    max: histogram.maxValue,
  };
}

async function timeRound(
  scenario: Scenario,
  round: number,
  settings: MeasureSettings,
  recordBatch: ((batchNs: number, ops: number) => void) | undefined,
): Promise<{ opsPerSec: number; errors: number; cpuUs: number; wallNs: number }> {
  const preparing = scenario.prepare(settings.opsPerRound, round);
  const prepared = preparing instanceof Promise ? await preparing : preparing;
  try {
    collectGarbage?.();
    let errors = 0;
    let totalNs = 0;
    const cpuStart = process.cpuUsage();
    const wallStart = process.hrtime.bigint();
    for (let from = 0; from < settings.opsPerRound; from += settings.batchSize) {
      const to = Math.min(from + settings.batchSize, settings.opsPerRound);
      const start = process.hrtime.bigint();
      const failed = prepared.run(from, to);
      errors += typeof failed === 'number' ? failed : await failed;
      const elapsedNs = Number(process.hrtime.bigint() - start);
      totalNs += elapsedNs;
      recordBatch?.(elapsedNs, to - from);
    }
    const wallNs = Number(process.hrtime.bigint() - wallStart);
    const cpu = process.cpuUsage(cpuStart);
    return { opsPerSec: settings.opsPerRound / (Math.max(totalNs, 1) / 1e9), errors, cpuUs: cpu.user + cpu.system, wallNs };
  } finally {
    await prepared.finish?.();
  }
}

function assertSettings(settings: MeasureSettings): void {
  const positive = (name: string, value: number, min: number): void => {
    if (!Number.isInteger(value) || value < min) throw new RangeError(`${name} must be an integer ≥ ${min}, got ${value}`);
  };
  positive('rounds', settings.rounds, 1);
  positive('warmupRounds', settings.warmupRounds, 0);
  positive('opsPerRound', settings.opsPerRound, 1);
  positive('batchSize', settings.batchSize, 1);
}
