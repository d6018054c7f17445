/**
 * Metrics in the Prometheus text format (exposition format 0.0.4), served on a port of their
 * own (`listenMetrics`), never on the API's: the API port faces partners, the metrics port is
 * for the operator's scraper, bound to loopback or an internal interface and not behind the
 * partner's bearer tokens. Requests are counted in O(1) per answer (a Map lookup, a bucket
 * search over a dozen bounds); everything else (writer queues, projection lag, audit and
 * idempotency backlogs) is read when scraped. Label values are bounded: route patterns (never
 * concrete paths), methods, status codes, and the tenants and ledgers this process serves
 * (bounded by `tenantsMax` and `ledgersMax`).
 */
import { createServer, type Server } from 'node:http';

/** Upper bounds of the request-duration histogram, seconds. */
export const DURATION_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;

/** Route label of requests that matched no route: one series however many paths are probed. */
export const UNMATCHED_ROUTE = 'unmatched';

/** Content type of the exposition format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** One sample of a gauge (or of a counter read from elsewhere). */
export interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A metric family read at scrape time. */
export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'gauge' | 'counter';
  readonly samples: readonly Sample[];
}

interface RouteSeries {
  readonly route: string;
  readonly method: string;
  readonly byStatus: Map<number, number>;
  /** Counts per bucket (not cumulative; summed when rendered), the last one is +Inf. */
  readonly buckets: number[];
  sumSeconds: number;
  count: number;
}

/** Per-route request counters and latency histograms; see the module comment. */
export class RequestMetrics {
  readonly #series = new Map<string, RouteSeries>();
  readonly #startedAtMs = Date.now();

  /** Records one answered request. `route` is the route pattern (or {@link UNMATCHED_ROUTE}). */
  observe(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${route}`;
    let series = this.#series.get(key);
    if (series === undefined) {
      series = { route, method, byStatus: new Map(), buckets: new Array<number>(DURATION_BUCKETS_SECONDS.length + 1).fill(0), sumSeconds: 0, count: 0 };
      this.#series.set(key, series);
    }
    series.byStatus.set(status, (series.byStatus.get(status) ?? 0) + 1);
    let bucket = 0;
    while (bucket < DURATION_BUCKETS_SECONDS.length && seconds > (DURATION_BUCKETS_SECONDS[bucket] as number)) bucket += 1;
    series.buckets[bucket] = (series.buckets[bucket] as number) + 1;
    series.sumSeconds += seconds;
    series.count += 1;
  }

  /** The request families and `families` (read by the caller at scrape time) in the text format. */
  render(families: readonly Family[]): string {
    const lines: string[] = [];
    lines.push('# HELP banking_api_requests_total Requests answered, by route pattern, method and status.', '# TYPE banking_api_requests_total counter');
    for (const series of this.#series.values()) {
      for (const [status, count] of series.byStatus) lines.push(`banking_api_requests_total${labels({ route: series.route, method: series.method, status: String(status) })} ${count}`);
    }
    lines.push('# HELP banking_api_request_duration_seconds Time from request to answer, by route pattern and method.', '# TYPE banking_api_request_duration_seconds histogram');
    for (const series of this.#series.values()) {
      let cumulative = 0;
      series.buckets.forEach((count, index) => {
        cumulative += count;
        const le = index < DURATION_BUCKETS_SECONDS.length ? String(DURATION_BUCKETS_SECONDS[index]) : '+Inf';
        lines.push(`banking_api_request_duration_seconds_bucket${labels({ route: series.route, method: series.method, le })} ${cumulative}`);
      });
      lines.push(`banking_api_request_duration_seconds_sum${labels({ route: series.route, method: series.method })} ${series.sumSeconds}`);
      lines.push(`banking_api_request_duration_seconds_count${labels({ route: series.route, method: series.method })} ${series.count}`);
    }
    const all: Family[] = [{ name: 'banking_api_uptime_seconds', help: 'Seconds since this process started serving.', type: 'gauge', samples: [{ labels: {}, value: (Date.now() - this.#startedAtMs) / 1_000 }] }, ...families];
    for (const family of all) {
      lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
      for (const sample of family.samples) lines.push(`${family.name}${labels(sample.labels)} ${formatValue(sample.value)}`);
    }
    return `${lines.join('\n')}\n`;
  }
}

function labels(values: Readonly<Record<string, string>>): string {
  const entries = Object.entries(values);
  if (entries.length === 0) return '';
  return `{${entries.map(([name, value]) => `${name}="${escapeLabel(value)}"`).join(',')}}`;
}

/** The exposition format's label escaping: backslash, double quote and line feed. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

/** A running metrics listener. */
export interface MetricsServer {
  /** E.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (and nothing else: 404) with whatever `render` returns. A render that
 * fails answers 500 with no detail (the caller's `onError` hears about it); it never takes the
 * process down.
 */
export async function startMetricsServer(options: {
  readonly port: number;
  readonly host: string;
  readonly render: () => Promise<string>;
  readonly onError?: (error: unknown) => void;
}): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    options.render().then(
      (text) => {
        response.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' });
        response.end(request.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        options.onError?.(error);
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
      },
    );
  });
  // Scrapers reconnect each time; idle sockets must not hold shutdown up.
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
