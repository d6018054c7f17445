/**
 * What every harness hands to the report: one scenario's figures, whatever drove it (rounds of
 * batches in memory, time windows of callers against PostgreSQL, a writer's start-up). Also the
 * HDR histogram settings every harness records latency with.
 */
import { loadavg } from 'node:os';
import { build as buildHistogram, type Histogram } from 'hdr-histogram-js';

/**
 * A goal a scenario is held to, quoted from the issue that set it. Every part that is present
 * must be met; a ratio part cannot be met when the scenario it is taken to did not run.
 */
export interface Target {
  /** Throughput to reach (see {@link Target.basis}). */
  readonly opsPerSec?: number;
  /** Which throughput `opsPerSec` is compared with: the median of the samples (default) or the whole run's ops ÷ time. */
  readonly basis?: 'median' | 'overall';
  /** Median ÷ the median of the group's raw ceiling, same run. */
  readonly ratioToRawCeiling?: number;
  /** Median ÷ the median of another scenario of the same run. */
  readonly ratioTo?: { readonly scenario: string; readonly min: number };
  /** Highest acceptable p99 latency of one operation, ms. */
  readonly latencyP99MsMax?: number;
  /** Highest acceptable median latency of one operation, ms (e.g. a start-up). */
  readonly latencyP50MsMax?: number;
  /** p99 latency ÷ the p99 of another scenario of the same run at most `max` (e.g. flat in history length). */
  readonly latencyP99RatioTo?: { readonly scenario: string; readonly max: number };
  /**
   * The history (events) the target is stated at. The scenario reports the history it ran on as
   * `details.historyEvents`; on a smaller one the target is not judged (`meetsTarget: null`).
   */
  readonly historyEvents?: number;
  readonly statement: string;
}

/** Latency percentiles, in the unit the field's name says. */
export interface LatencySummary {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/** Throughput and latency of one interval of a continuous window (for "throughput over time"). */
export interface SeriesPoint {
  /** Seconds since the window started, at the interval's end. */
  readonly atSec: number;
  readonly opsPerSec: number;
  /** p99 of the latencies recorded in the interval, ms; 0 when none completed. */
  readonly p99Ms: number;
}

/** Peers a scenario is compared with, by name; each must be a scenario of the same run. */
export interface PeerNames {
  /** The raw ceiling: the same rows inserted with no checks. */
  readonly rawCeiling?: string;
  /** The Emmett PostgreSQL event store doing the same work. */
  readonly emmett?: string;
}

/** One scenario's measured figures, as every harness reports them. */
export interface Measurement {
  readonly name: string;
  /** One sentence: what one operation is. */
  readonly description: string;
  readonly target: Target | undefined;
  /** What one latency sample times, e.g. "transfer", "append of 1,000 transfers". */
  readonly latencyOf: string;
  /** The throughput samples the median is taken over (per round, or per interval of a window), ops/s. */
  readonly opsPerSecSamples: readonly number[];
  /** What one throughput sample is, e.g. "round", "1 s interval". */
  readonly sampleOf: string;
  /** All measured operations ÷ all timed seconds. */
  readonly opsPerSecOverall: number;
  /** Latency of one operation (see `latencyOf`), ms. */
  readonly latencyMs: LatencySummary;
  /** Latency of one batch of operations, ms, where operations go in batches; else `null`. */
  readonly batchLatencyMs: LatencySummary | null;
  readonly latencySamples: number;
  /** Operations measured across all samples. */
  readonly ops: number;
  /** Operations that were rejected or threw; any non-zero value means the figures are invalid. */
  readonly errors: number;
  /** Process CPU time ÷ wall time while timed. */
  readonly cpuPerWall: number;
  /** 1-minute load average when the scenario's first measured window started and when its last ended. */
  readonly loadAverage1m: { readonly start: number; readonly end: number };
  readonly peers: PeerNames;
  /** Throughput and p99 over time, for a scenario measured in one continuous window. */
  readonly series: readonly SeriesPoint[] | null;
  /** Further figures of this scenario (numbers, strings or booleans), reported as they are. */
  readonly details: Readonly<Record<string, number | string | boolean>>;
}

/** Latencies are recorded in ns; a sample above a minute is clamped (it is a stall worth seeing anyway). */
export const LATENCY_NS_MAX = 60_000_000_000;

/** A histogram of ns values with 3 significant digits, from 1 ns to a minute. */
export function newLatencyHistogram(): Histogram {
  return buildHistogram({ lowestDiscernibleValue: 1, highestTrackableValue: LATENCY_NS_MAX, numberOfSignificantValueDigits: 3 });
}

/** Records a ns value, clamped to the histogram's range. */
export function recordNs(histogram: Histogram, ns: number): void {
  histogram.recordValue(Math.min(LATENCY_NS_MAX, Math.max(1, Math.round(ns))));
}

/** p50, p95, p99 and max of a ns histogram, converted to ms (ns resolution kept). */
export function summariseMs(histogram: Histogram): LatencySummary {
  // A percentile is its bucket's highest equivalent value, which can pass the exact maximum.
  const at = (percentile: number): number => Math.min(histogram.getValueAtPercentile(percentile), histogram.maxValue) / 1e6;
  return { p50: at(50), p95: at(95), p99: at(99), max: histogram.maxValue / 1e6 };
}

/** The 1-minute load average now. */
export function loadAverage1m(): number {
  return Math.round((loadavg()[0] ?? 0) * 100) / 100;
}
