/** Order statistics of per-round throughput. */

/** Throughput percentiles where pN is the rate that N % of rounds reached or beat (the slow tail). */
export interface ThroughputSummary {
  readonly median: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
}

/**
 * Summarises per-round ops/s. For throughput the bad tail is the low one, so `p95` is the
 * 5th percentile of the ascending values: 95 % of rounds were at least this fast. Percentiles
 * are nearest-rank; the median interpolates between the two middle rounds of an even count.
 */
export function summariseThroughput(opsPerSec: readonly number[]): ThroughputSummary {
  if (opsPerSec.length === 0) throw new RangeError('no rounds to summarise');
  const sorted = [...opsPerSec].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? at(sorted, middle) : (at(sorted, middle - 1) + at(sorted, middle)) / 2;
  return {
    median,
    p50: slowTail(sorted, 50),
    p95: slowTail(sorted, 95),
    p99: slowTail(sorted, 99),
    min: at(sorted, 0),
    max: at(sorted, sorted.length - 1),
  };
}

/** The value that `percent` % of the ascending `sorted` values are at or above (nearest rank). */
function slowTail(sorted: readonly number[], percent: number): number {
  const rank = Math.ceil(((100 - percent) / 100) * sorted.length);
  return at(sorted, Math.max(0, rank - 1));
}

function at(sorted: readonly number[], index: number): number {
  const value = sorted[index];
  if (value === undefined) throw new RangeError(`no value at index ${index}`);
  return value;
}
