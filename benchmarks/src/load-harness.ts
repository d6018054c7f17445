/**
 * Time-windowed load against a system that answers asynchronously (a writer over PostgreSQL, a
 * peer store): a workload runs for a fixed time while every completed operation's latency goes
 * into an HDR histogram and its completion into one-second intervals. Three workloads:
 *
 * - closed loop: N callers, each sending one operation and awaiting it before the next;
 * - batch loop: one caller sending a batch of N operations at once and awaiting them all;
 * - fixed rate (open loop): operations are due at a fixed rate whether or not earlier ones have
 *   completed, and each one's latency is counted from when it was due, not from when it was
 *   actually sent, so a stall that delays sending is charged to every operation it delayed
 *   (the correction for coordinated omission).
 *
 * Windows of several scenarios run one after another in a schedule the caller chooses
 * (interleaved rounds with a rotating order, or peers around a long window), so background load
 * on a shared machine falls on every scenario alike.
 */
import type { Histogram } from 'hdr-histogram-js';
import { loadAverage1m, newLatencyHistogram, recordNs, summariseMs, type LatencySummary, type Measurement, type PeerNames, type SeriesPoint, type Target } from './measurement.js';

/** One window's workload, built before the clock starts. */
export interface LoadRound {
  /** Runs the workload until `stopAtNs` (`process.hrtime.bigint()` time), recording every completion. */
  drive(recorder: LoadRecorder, stopAtNs: bigint): Promise<void>;
  /** Releases what the window holds (closes a writer, …); not timed. */
  finish?(): Promise<void>;
}

/** A scenario measured in time windows. */
export interface LoadScenario {
  readonly name: string;
  readonly description: string;
  readonly target: Target | undefined;
  /** What one latency sample times, e.g. "transfer", "append of 1,000 transfers". */
  readonly latencyOf: string;
  readonly peers?: PeerNames;
  /**
   * What one throughput sample is: a whole window (`window`, for scenarios measured in many short
   * rounds) or each full interval of a window (`interval`, for long continuous windows).
   */
  readonly sampleBy: 'window' | 'interval';
  /** Whether to report throughput and p99 per interval (for a scenario measured in one continuous window). */
  readonly series: boolean;
  /** Builds window `round` (warm-up windows are negative); not timed. */
  prepare(round: number): Promise<LoadRound>;
  /** Figures only the scenario knows, added to its report once every window has run. */
  details?(): Readonly<Record<string, number | string | boolean>>;
}

/** One window of a schedule. */
export interface LoadWindow {
  readonly scenario: LoadScenario;
  /** Passed to `prepare`; negative for warm-up windows, which are run but not recorded. */
  readonly round: number;
  readonly durationMs: number;
}

/** Called after each recorded window, e.g. to print progress. */
export type WindowListener = (scenarioName: string, round: number, opsPerSec: number, p99Ms: number) => void;

/** Length of one throughput interval. */
export const INTERVAL_MS = 1_000;
const INTERVAL_NS = BigInt(INTERVAL_MS) * 1_000_000n;

const collectGarbage: (() => void) | undefined = typeof globalThis.gc === 'function' ? globalThis.gc : undefined;

/** Collects what a scenario's windows complete. Drivers call it; scenarios never need to. */
export class LoadRecorder {
  readonly perOp: Histogram = newLatencyHistogram();
  readonly perBatch: Histogram = newLatencyHistogram();
  /** Fixed-rate workloads only: latency from the actual send, i.e. without the correction. */
  readonly uncorrected: Histogram = newLatencyHistogram();
  ops = 0;
  errors = 0;
  #batches = 0;
  #windowStartNs = 0n;
  #windowOps = 0;
  readonly #keepLatencies: boolean;
  /** Per interval of the current window: completed operations and (when kept) their latencies in ns. */
  #intervals: { ops: number; latenciesNs: number[] }[] = [];

  constructor(keepLatencies: boolean) {
    this.#keepLatencies = keepLatencies;
  }

  /** Whether any batch was recorded (the scenario batches its operations). */
  get batched(): boolean {
    return this.#batches > 0;
  }

  /** An operation completed at `atNs` after `latencyNs`; `ok` false counts an error. */
  op(atNs: bigint, latencyNs: number, ok: boolean): void {
    recordNs(this.perOp, latencyNs);
    this.#complete(atNs, 1, latencyNs);
    if (!ok) this.errors += 1;
  }

  /** A batch of `count` operations completed at `atNs` after `latencyNs`, `failed` of them failed. */
  batch(atNs: bigint, count: number, latencyNs: number, failed: number): void {
    recordNs(this.perBatch, latencyNs);
    recordNs(this.perOp, latencyNs);
    this.#batches += 1;
    this.#complete(atNs, count, latencyNs);
    this.errors += failed;
  }

  startWindow(startNs: bigint): void {
    this.#windowStartNs = startNs;
    this.#windowOps = 0;
    this.#intervals = [];
  }

  /** Operations completed in the current window. */
  get windowOps(): number {
    return this.#windowOps;
  }

  /** The current window's full intervals (those ending by `stopAtNs`). */
  fullIntervals(stopAtNs: bigint): { ops: number; latenciesNs: number[] }[] {
    const full = Number((stopAtNs - this.#windowStartNs) / INTERVAL_NS);
    return Array.from({ length: full }, (_, i) => this.#intervals[i] ?? { ops: 0, latenciesNs: [] });
  }

  destroy(): void {
    this.perOp.destroy();
    this.perBatch.destroy();
    this.uncorrected.destroy();
  }

  #complete(atNs: bigint, count: number, latencyNs: number): void {
    this.ops += count;
    this.#windowOps += count;
    const index = Number((atNs - this.#windowStartNs) / INTERVAL_NS);
    let interval = this.#intervals[index];
    if (interval === undefined) {
      interval = { ops: 0, latenciesNs: [] };
      this.#intervals[index] = interval;
    }
    interval.ops += count;
    if (this.#keepLatencies) interval.latenciesNs.push(latencyNs);
  }
}

/** Runs the schedule's windows in order and summarises every scenario that had a recorded window. */
export async function runLoadSchedule(windows: readonly LoadWindow[], onWindow?: WindowListener): Promise<Measurement[]> {
  const states = new Map<LoadScenario, ScenarioState>();
  const warmupErrors = new Map<LoadScenario, number>();
  const stateOf = (scenario: LoadScenario): ScenarioState => {
    let state = states.get(scenario);
    if (state === undefined) {
      state = {
        recorder: new LoadRecorder(scenario.series),
        samples: [],
        timedNs: 0,
        cpuUs: 0,
        loadAtStart: undefined,
        loadAtEnd: 0,
        series: [],
        seriesOffsetSec: 0,
      };
      states.set(scenario, state);
    }
    return state;
  };
  try {
    for (const window of windows) {
      const recording = window.round >= 0;
      const state = recording ? stateOf(window.scenario) : undefined;
      const recorder = state?.recorder ?? new LoadRecorder(false);
      try {
        const round = await window.scenario.prepare(window.round);
        try {
          collectGarbage?.();
          if (state !== undefined) state.loadAtStart ??= loadAverage1m();
          const cpuStart = process.cpuUsage();
          const startNs = process.hrtime.bigint();
          const stopAtNs = startNs + BigInt(window.durationMs) * 1_000_000n;
          recorder.startWindow(startNs);
          await round.drive(recorder, stopAtNs);
          const elapsedNs = Number(process.hrtime.bigint() - startNs);
          const cpu = process.cpuUsage(cpuStart);
          if (state !== undefined) {
            state.loadAtEnd = loadAverage1m();
            state.timedNs += elapsedNs;
            state.cpuUs += cpu.user + cpu.system;
            const windowOpsPerSec = recorder.windowOps / (Math.max(elapsedNs, 1) / 1e9);
            const intervals = recorder.fullIntervals(stopAtNs);
            if (window.scenario.sampleBy === 'window') state.samples.push(windowOpsPerSec);
            else for (const interval of intervals) state.samples.push(interval.ops / (INTERVAL_MS / 1_000));
            if (window.scenario.series) {
              intervals.forEach((interval, i) => {
                state.series.push({ atSec: state.seriesOffsetSec + i + 1, opsPerSec: interval.ops / (INTERVAL_MS / 1_000), p99Ms: p99Ms(interval.latenciesNs) });
              });
              state.seriesOffsetSec += intervals.length;
            }
            onWindow?.(window.scenario.name, window.round, windowOpsPerSec, summariseMs(recorder.perOp).p99);
          }
        } finally {
          await round.finish?.();
        }
      } finally {
        // A warm-up window is not recorded, but its failures are the scenario's: they count as errors.
        if (state === undefined) {
          if (recorder.errors > 0) warmupErrors.set(window.scenario, (warmupErrors.get(window.scenario) ?? 0) + recorder.errors);
          recorder.destroy();
        }
      }
    }
    const measurements: Measurement[] = [];
    for (const [scenario, state] of states) measurements.push(summarise(scenario, state, warmupErrors.get(scenario) ?? 0));
    return measurements;
  } finally {
    for (const state of states.values()) state.recorder.destroy();
  }
}

/**
 * Warm-up windows, then `rounds` rounds of one window per scenario, interleaved with a rotating
 * order (round r starts with scenario r mod n), so drift in background load spreads evenly.
 */
export function interleavedSchedule(scenarios: readonly LoadScenario[], rounds: number, windowMs: number, warmupWindowMs: number): LoadWindow[] {
  const windows: LoadWindow[] = [];
  if (warmupWindowMs > 0) for (const scenario of scenarios) windows.push({ scenario, round: -1, durationMs: warmupWindowMs });
  for (let round = 0; round < rounds; round += 1) {
    for (let k = 0; k < scenarios.length; k += 1) {
      const scenario = scenarios[(round + k) % scenarios.length] as LoadScenario;
      windows.push({ scenario, round, durationMs: windowMs });
    }
  }
  return windows;
}

/**
 * Warm-up windows, then the peers in order, the main scenario's one long window, and the peers in
 * reverse order: each peer's two windows sit symmetrically around the main one, so a steady
 * drift of background load falls on both sides alike.
 */
export function sandwichSchedule(main: LoadScenario, peers: readonly LoadScenario[], mainWindowMs: number, peerWindowMs: number, warmupWindowMs: number): LoadWindow[] {
  const windows: LoadWindow[] = [];
  if (warmupWindowMs > 0) for (const scenario of [...peers, main]) windows.push({ scenario, round: -1, durationMs: warmupWindowMs });
  peers.forEach((scenario) => windows.push({ scenario, round: 0, durationMs: peerWindowMs }));
  windows.push({ scenario: main, round: 0, durationMs: mainWindowMs });
  [...peers].reverse().forEach((scenario) => windows.push({ scenario, round: 1, durationMs: peerWindowMs }));
  return windows;
}

/**
 * `callers` concurrent callers, each sending one operation and awaiting it before sending the
 * next, until the window ends; every operation's latency is recorded. `send(seq)` resolves true
 * when operation `seq` (unique in the window) was applied.
 */
export function closedLoop(callers: number, send: (seq: number) => Promise<boolean>, onError: (error: unknown) => void): LoadRound['drive'] {
  return async (recorder, stopAtNs) => {
    let next = 0;
    const caller = async (): Promise<void> => {
      for (let now = process.hrtime.bigint(); now < stopAtNs; ) {
        const seq = next;
        next += 1;
        let ok: boolean;
        try {
          ok = await send(seq);
        } catch (error) {
          onError(error);
          ok = false;
        }
        const done = process.hrtime.bigint();
        recorder.op(done, Number(done - now), ok);
        now = done;
      }
    };
    await Promise.all(Array.from({ length: callers }, caller));
  };
}

/**
 * One caller sending `batchSize` operations at once and awaiting them all, batch after batch,
 * until the window ends; every batch's latency is recorded. `send(firstSeq, count)` resolves
 * with how many of the batch's operations failed.
 */
export function batchLoop(batchSize: number, send: (firstSeq: number, count: number) => Promise<number>, onError: (error: unknown) => void): LoadRound['drive'] {
  return async (recorder, stopAtNs) => {
    let next = 0;
    for (let now = process.hrtime.bigint(); now < stopAtNs; ) {
      let failed: number;
      try {
        failed = await send(next, batchSize);
      } catch (error) {
        onError(error);
        failed = batchSize;
      }
      next += batchSize;
      const done = process.hrtime.bigint();
      recorder.batch(done, batchSize, Number(done - now), failed);
      now = done;
    }
  };
}

/** How a fixed-rate generator kept to its schedule, summed over the windows it was given to. */
export class FixedRateSchedule {
  /** Operations the windows' schedules held, and how many of them were sent. */
  due = 0;
  sent = 0;
  /** Scheduled length of the windows, ns (the rate is `due` ÷ this). */
  windowNs = 0;
  /** How late sends went out after their due time, summed and at worst, ns. */
  lateNsTotal = 0;
  lateNsMax = 0;
  /** Timer ticks the generator slept for (each tick sends every operation that has come due). */
  ticks = 0;

  /** The figures for a scenario's details. */
  details(): Record<string, number> {
    const seconds = Math.max(this.windowNs, 1) / 1e9;
    return {
      sentRatePerSec: Math.round((this.sent / seconds) * 10) / 10,
      sendLateMeanMs: Math.round((this.lateNsTotal / Math.max(this.sent, 1) / 1e6) * 1_000) / 1_000,
      sendLateMaxMs: Math.round((this.lateNsMax / 1e6) * 1_000) / 1_000,
      sendsPerTick: Math.round((this.sent / Math.max(this.ticks, 1)) * 10) / 10,
    };
  }
}

/**
 * An open loop: operation i is due at `start + i / ratePerSec` for the window's length, and is
 * sent at the first timer tick at or after that time — never held back because earlier
 * operations are still in flight. Between ticks the generator sleeps on a timer (at least 1 ms:
 * it never spins on `setImmediate`, which would take a core from the server and the system under
 * test), and each tick sends every operation that has come due since the last, so the achieved
 * rate is the scheduled one. Latency is recorded from when each operation was due (the corrected
 * figure, which charges the wait for the tick to the generator's own operations) and, separately,
 * from when it was sent (uncorrected). `schedule`, when given, collects how the sends kept to time.
 */
export function fixedRate(ratePerSec: number, send: (seq: number) => Promise<boolean>, onError: (error: unknown) => void, schedule?: FixedRateSchedule): LoadRound['drive'] {
  return async (recorder, stopAtNs) => {
    const startNs = process.hrtime.bigint();
    const total = Math.floor((Number(stopAtNs - startNs) / 1e9) * ratePerSec);
    const dueNs = (seq: number): bigint => startNs + BigInt(Math.round((seq * 1e9) / ratePerSec));
    const inFlight: Promise<void>[] = [];
    const complete = (intendedNs: bigint, sentNs: bigint, ok: boolean): void => {
      const done = process.hrtime.bigint();
      recorder.op(done, Number(done - intendedNs), ok);
      recordNs(recorder.uncorrected, Number(done - sentNs));
    };
    const issue = (seq: number, intendedNs: bigint): Promise<void> => {
      const sentNs = process.hrtime.bigint();
      return send(seq).then(
        (ok) => complete(intendedNs, sentNs, ok),
        (error: unknown) => {
          onError(error);
          complete(intendedNs, sentNs, false);
        },
      );
    };
    if (schedule !== undefined) {
      schedule.due += total;
      schedule.windowNs += Number(stopAtNs - startNs);
    }
    let sent = 0;
    while (sent < total) {
      const now = process.hrtime.bigint();
      while (sent < total && dueNs(sent) <= now) {
        const due = dueNs(sent);
        if (schedule !== undefined) {
          const lateNs = Number(now - due);
          schedule.sent += 1;
          schedule.lateNsTotal += lateNs;
          if (lateNs > schedule.lateNsMax) schedule.lateNsMax = lateNs;
        }
        inFlight.push(issue(sent, due));
        sent += 1;
      }
      if (sent < total) {
        // Sleep until the next one is due, rounded up to whole ms (a timer cannot wait less than
        // 1 ms, and never fires early by this clock's reckoning more than its own rounding): at
        // 5,000/s a tick sends about five. No busy wait: the CPU goes to the writer and the server.
        const waitMs = Math.max(1, Math.ceil(Number(dueNs(sent) - process.hrtime.bigint()) / 1e6));
        if (schedule !== undefined) schedule.ticks += 1;
        await new Promise<void>((resolve) => setTimeout(resolve, waitMs));
      }
    }
    await Promise.all(inFlight);
  };
}

interface ScenarioState {
  readonly recorder: LoadRecorder;
  readonly samples: number[];
  timedNs: number;
  cpuUs: number;
  loadAtStart: number | undefined;
  loadAtEnd: number;
  readonly series: SeriesPoint[];
  seriesOffsetSec: number;
}

/** The scenario's measurement; `warmupErrors` (failures in its unrecorded warm-up windows) count as errors too. */
function summarise(scenario: LoadScenario, state: ScenarioState, warmupErrors: number): Measurement {
  const { recorder } = state;
  const uncorrected: Record<string, number> = {};
  if (recorder.uncorrected.totalCount > 0) {
    const summary: LatencySummary = summariseMs(recorder.uncorrected);
    uncorrected['uncorrectedLatencyP50Ms'] = summary.p50;
    uncorrected['uncorrectedLatencyP99Ms'] = summary.p99;
    uncorrected['uncorrectedLatencyMaxMs'] = summary.max;
  }
  return {
    name: scenario.name,
    description: scenario.description,
    target: scenario.target,
    latencyOf: scenario.latencyOf,
    opsPerSecSamples: state.samples,
    sampleOf: scenario.sampleBy === 'window' ? 'window' : `${INTERVAL_MS / 1_000} s interval`,
    opsPerSecOverall: recorder.ops / (Math.max(state.timedNs, 1) / 1e9),
    latencyMs: summariseMs(recorder.perOp),
    batchLatencyMs: recorder.batched ? summariseMs(recorder.perBatch) : null,
    latencySamples: recorder.perOp.totalCount,
    ops: recorder.ops,
    errors: recorder.errors + warmupErrors,
    cpuPerWall: state.cpuUs / (Math.max(state.timedNs, 1) / 1_000),
    loadAverage1m: { start: state.loadAtStart ?? 0, end: state.loadAtEnd },
    peers: scenario.peers ?? {},
    series: scenario.series ? state.series : null,
    details: { timedSeconds: Math.round(state.timedNs / 1e7) / 100, ...(warmupErrors > 0 ? { warmupErrors } : {}), ...uncorrected, ...scenario.details?.() },
  };
}

function p99Ms(latenciesNs: number[]): number {
  if (latenciesNs.length === 0) return 0;
  const sorted = Float64Array.from(latenciesNs).sort();
  return (sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)] ?? 0) / 1e6;
}
