/**
 * The measurement loop shared by every scenario: warm-up, then interleaved rounds of a fixed
 * number of operations, each round timed in batches. Single-threaded by nature: Node cannot pin
 * itself to a core, so every figure is "one JavaScript thread on whichever core the OS chose".
 * A scenario may be asynchronous (a database round trip per batch); a synchronous one is never
 * awaited, so the in-memory loops are timed exactly as before.
 */
import { loadAverage1m, newLatencyHistogram, recordNs, summariseMs, type Measurement, type PeerNames, type Target } from './measurement.js';

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
  /**
   * What the reported latency is: `operation` (default) reports a batch's time ÷ its size, an
   * average over the batch; `batch` reports the whole batch's time (e.g. one append and its commit).
   */
  readonly latencyOf?: 'operation' | 'batch';
  /** Peers to report ratios to, besides the group's raw ceiling. */
  readonly peers?: PeerNames;
  /** Builds round `round` with `opsCount` operations (warm-up rounds are negative); not timed. */
  prepare(opsCount: number, round: number): PreparedRound | Promise<PreparedRound>;
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

/** Called after each measured round, e.g. to print progress. */
export type RoundListener = (scenarioName: string, round: number, opsPerSec: number) => void;

const collectGarbage: (() => void) | undefined = typeof globalThis.gc === 'function' ? globalThis.gc : undefined;

/** Whether rounds start from a collected heap (node was started with `--expose-gc`). */
export const gcBetweenRounds = collectGarbage !== undefined;

/**
 * Measures every scenario with the same settings. Rounds are interleaved (round 1 of every
 * scenario, then round 2, …) and the order rotates each round, so background load on a shared
 * machine falls on all scenarios alike and the ratios between them stay meaningful.
 */
export async function measureScenarios(scenarios: readonly Scenario[], settings: MeasureSettings, onRound?: RoundListener): Promise<Measurement[]> {
  assertSettings(settings);
  // Warm-up rounds are not recorded, but an operation failing in one is the scenario's failure: it counts.
  const warmupErrors = new Map<Scenario, number>();
  for (const scenario of scenarios) {
    for (let round = 0; round < settings.warmupRounds; round += 1) {
      const { errors } = await timeRound(scenario, -1 - round, settings, undefined);
      warmupErrors.set(scenario, (warmupErrors.get(scenario) ?? 0) + errors);
    }
  }
  const states = scenarios.map((scenario) => ({
    scenario,
    roundOpsPerSec: [] as number[],
    timedNs: 0,
    errors: warmupErrors.get(scenario) ?? 0,
    cpuUs: 0,
    wallNs: 0,
    perOp: newLatencyHistogram(),
    perBatch: newLatencyHistogram(),
    loadAtStart: 0,
    loadAtEnd: 0,
  }));
  try {
    for (let round = 0; round < settings.rounds; round += 1) {
      for (let k = 0; k < states.length; k += 1) {
        const state = states[(round + k) % states.length];
        if (state === undefined) continue;
        if (round === 0) state.loadAtStart = loadAverage1m();
        const timed = await timeRound(state.scenario, round, settings, (batchNs, ops) => {
          recordNs(state.perOp, batchNs / ops);
          recordNs(state.perBatch, batchNs);
        });
        state.loadAtEnd = loadAverage1m();
        state.roundOpsPerSec.push(timed.opsPerSec);
        state.timedNs += timed.timedNs;
        state.errors += timed.errors;
        state.cpuUs += timed.cpuUs;
        state.wallNs += timed.wallNs;
        onRound?.(state.scenario.name, round, timed.opsPerSec);
      }
    }
    return states.map((state): Measurement => {
      const { scenario } = state;
      const perBatch = scenario.latencyOf === 'batch';
      const ops = settings.rounds * settings.opsPerRound;
      return {
        name: scenario.name,
        description: scenario.description,
        target: scenario.target,
        latencyOf: perBatch
          ? `batch of ${settings.batchSize.toLocaleString('en-US')} operations`
          : `operation (mean of a batch of ${settings.batchSize.toLocaleString('en-US')})`,
        opsPerSecSamples: state.roundOpsPerSec,
        sampleOf: `round of ${settings.opsPerRound.toLocaleString('en-US')} operations`,
        opsPerSecOverall: ops / (Math.max(state.timedNs, 1) / 1e9),
        latencyMs: summariseMs(perBatch ? state.perBatch : state.perOp),
        batchLatencyMs: summariseMs(state.perBatch),
        latencySamples: state.perOp.totalCount,
        ops,
        errors: state.errors,
        cpuPerWall: state.cpuUs / (Math.max(state.wallNs, 1) / 1_000),
        loadAverage1m: { start: state.loadAtStart, end: state.loadAtEnd },
        peers: scenario.peers ?? {},
        series: null,
        details: (warmupErrors.get(scenario) ?? 0) > 0 ? { warmupErrors: warmupErrors.get(scenario) ?? 0 } : {},
      };
    });
  } finally {
    for (const state of states) {
      state.perOp.destroy();
      state.perBatch.destroy();
    }
  }
}

async function timeRound(
  scenario: Scenario,
  round: number,
  settings: MeasureSettings,
  recordBatch: ((batchNs: number, ops: number) => void) | undefined,
): Promise<{ opsPerSec: number; timedNs: number; errors: number; cpuUs: number; wallNs: number }> {
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
    return { opsPerSec: settings.opsPerRound / (Math.max(totalNs, 1) / 1e9), timedNs: totalNs, errors, cpuUs: cpu.user + cpu.system, wallNs };
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
