/**
 * An open-loop load generator: requests start on a fixed schedule (rate R: request i is due at
 * start + i/R) whether or not earlier ones have answered, and each latency is measured from
 * when the request was due, not from when it was sent. A closed-loop tool (autocannon's default,
 * wrk) waits for an answer before it sends the next request, so a stalled server also stalls the
 * load and the stall is recorded once instead of for every request that should have been sent:
 * coordinated omission. Measuring from the due time (as wrk2 does) counts that waiting.
 */
import http from 'node:http';
import * as hdr from 'hdr-histogram-js';

/** One request to send. */
export interface PlannedRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
  /** Label for per-kind statistics, e.g. `read` or `write`. */
  readonly kind: string;
}

/** Options of {@link runOpenLoop}. */
export interface OpenLoopOptions {
  readonly baseUrl: string;
  /** Requests per second to start. */
  readonly ratePerSecond: number;
  readonly durationSeconds: number;
  /** The i-th request. */
  readonly request: (index: number) => PlannedRequest;
  /** Keep-alive connections at most; further requests wait for one (and that wait is measured). */
  readonly connectionsMax: number;
  /** A request not answered within this is counted as a timeout, ms. */
  readonly timeoutMs?: number;
}

/** Latency percentiles in ms. */
export interface Percentiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

/** What one kind of request measured. */
export interface KindResult {
  readonly requests: number;
  /** Measured from when each request was due (coordinated-omission corrected). */
  readonly latencyMs: Percentiles;
  /** Measured from when each request was actually written (what a closed-loop tool would report). */
  readonly serviceTimeMs: Percentiles;
  readonly statusCounts: Record<string, number>;
  readonly errors: number;
}

/** The result of a run. */
export interface OpenLoopResult {
  readonly intendedRatePerSecond: number;
  readonly achievedRatePerSecond: number;
  readonly completed: number;
  /** Requests whose answer was not 2xx, plus socket errors and timeouts. */
  readonly errors: number;
  readonly all: KindResult;
  readonly byKind: Record<string, KindResult>;
}

interface Recorder {
  readonly latency: hdr.Histogram;
  readonly service: hdr.Histogram;
  readonly statusCounts: Record<string, number>;
  errors: number;
}

function recorder(): Recorder {
  const make = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  return { latency: make(), service: make(), statusCounts: {}, errors: 0 };
}

/** Runs the schedule and waits for every answer (or timeout). */
export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const base = new URL(options.baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connectionsMax, maxFreeSockets: options.connectionsMax });
  const timeoutMs = options.timeoutMs ?? 10_000;
  const total = Math.round(options.ratePerSecond * options.durationSeconds);
  const all = recorder();
  const byKind = new Map<string, Recorder>();
  let completed = 0;
  let sent = 0;
  const pending: Promise<void>[] = [];
  const startNs = process.hrtime.bigint();
  const intervalNs = 1e9 / options.ratePerSecond;

  const record = (kind: string, dueNs: bigint, writtenNs: bigint, status: string, ok: boolean): void => {
    const endNs = process.hrtime.bigint();
    completed += 1;
    for (const target of [all, byKind.get(kind) ?? byKind.set(kind, recorder()).get(kind)!]) {
      target.latency.recordValue(Math.max(1, Number(endNs - dueNs) / 1_000));
      target.service.recordValue(Math.max(1, Number(endNs - writtenNs) / 1_000));
      target.statusCounts[status] = (target.statusCounts[status] ?? 0) + 1;
      if (!ok) target.errors += 1;
    }
  };

  const send = (index: number, dueNs: bigint): Promise<void> =>
    new Promise<void>((resolve) => {
      const planned = options.request(index);
      let writtenNs = process.hrtime.bigint();
      const request = http.request(
        { host: base.hostname, port: base.port, path: planned.path, method: planned.method, headers: planned.headers, agent, timeout: timeoutMs },
        (response) => {
          response.resume();
          response.on('end', () => {
            const status = response.statusCode ?? 0;
            record(planned.kind, dueNs, writtenNs, String(status), status >= 200 && status < 300);
            resolve();
          });
        },
      );
      request.on('socket', () => {
        writtenNs = process.hrtime.bigint();
      });
      request.on('timeout', () => request.destroy(new Error('timeout')));
      request.on('error', (error) => {
        record(planned.kind, dueNs, writtenNs, error.message === 'timeout' ? 'timeout' : 'socket-error', false);
        resolve();
      });
      request.end(planned.body);
    });

  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const elapsedNs = Number(process.hrtime.bigint() - startNs);
      const due = Math.min(total, Math.floor(elapsedNs / intervalNs) + 1);
      while (sent < due) {
        pending.push(send(sent, startNs + BigInt(Math.round(sent * intervalNs))));
        sent += 1;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(pending);
  const elapsedSeconds = Number(process.hrtime.bigint() - startNs) / 1e9;
  agent.destroy();
  const summary = (target: Recorder): KindResult => ({
    requests: target.latency.totalCount,
    latencyMs: percentiles(target.latency),
    serviceTimeMs: percentiles(target.service),
    statusCounts: target.statusCounts,
    errors: target.errors,
  });
  return {
    intendedRatePerSecond: options.ratePerSecond,
    achievedRatePerSecond: Math.round(completed / elapsedSeconds),
    completed,
    errors: all.errors,
    all: summary(all),
    byKind: Object.fromEntries([...byKind].map(([kind, target]) => [kind, summary(target)])),
  };
}

/** Percentiles of a histogram recorded in µs, as ms. */
export function percentiles(histogram: hdr.Histogram): Percentiles {
  const ms = (us: number) => Math.round(us / 10) / 100;
  return {
    p50: ms(histogram.getValueAtPercentile(50)),
    p95: ms(histogram.getValueAtPercentile(95)),
    p99: ms(histogram.getValueAtPercentile(99)),
    p999: ms(histogram.getValueAtPercentile(99.9)),
    max: ms(histogram.maxValue),
    mean: ms(histogram.mean),
  };
}
