/**
 * An open-loop load generator: requests start on a fixed schedule (rate R: request i is due at
 * start + i/R) whether or not earlier ones have answered, and each latency is measured from
 * when the request was due, not from when it was sent. A closed-loop tool (autocannon's default,
 * wrk) waits for an answer before it sends the next request, so a stalled server also stalls the
 * load and the stall is recorded once instead of for every request that should have been sent:
 * coordinated omission. Measuring from the due time (as wrk2 does) counts that waiting.
 */
import net from 'node:net';
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

/** Largest response head or body the generator accepts, bytes: a larger one is counted as an error. */
const RESPONSE_BYTES_MAX = 1024 * 1024;

const CRLF_CRLF = Buffer.from('\r\n\r\n');

/** What a connection is waiting for the answer of. */
interface InFlight {
  readonly kind: string;
  readonly dueNs: bigint;
  readonly writtenNs: bigint;
}

/** The parsed end of an answer in a connection's buffer. */
interface Answer {
  readonly status: number;
  /** Bytes of the buffer the answer took (head and body). */
  readonly length: number;
  /** The server said `connection: close`. */
  readonly close: boolean;
}

/**
 * Finds one complete HTTP/1.1 answer at the start of `buffer`: `undefined` while it is still
 * incomplete, an Error when it cannot be read (no length, too large). Bodies are framed by
 * `content-length` (what fastify sends); a chunked answer is read to its last chunk.
 */
export function parseAnswer(buffer: Buffer): Answer | Error | undefined {
  const headEnd = buffer.indexOf(CRLF_CRLF);
  if (headEnd < 0) return buffer.length > RESPONSE_BYTES_MAX ? new Error('answer head too large') : undefined;
  const head = buffer.toString('latin1', 0, headEnd);
  const status = Number(head.slice(9, 12));
  if (!head.startsWith('HTTP/1.') || !Number.isInteger(status)) return new Error(`not an HTTP/1.x answer: ${JSON.stringify(head.slice(0, 40))}`);
  let contentLength = -1;
  let chunked = false;
  let close = false;
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim().toLowerCase();
    if (name === 'content-length') contentLength = Number(value);
    else if (name === 'transfer-encoding') chunked = value.includes('chunked');
    else if (name === 'connection') close = value === 'close';
  }
  const bodyStart = headEnd + CRLF_CRLF.length;
  if (chunked) {
    let offset = bodyStart;
    for (;;) {
      const lineEnd = buffer.indexOf('\r\n', offset, 'latin1');
      if (lineEnd < 0) return undefined;
      const size = Number.parseInt(buffer.toString('latin1', offset, lineEnd), 16);
      if (!Number.isInteger(size) || size < 0 || size > RESPONSE_BYTES_MAX) return new Error('bad chunk size');
      const next = lineEnd + 2 + size + 2;
      if (buffer.length < next) return undefined;
      offset = next;
      if (size === 0) return { status, length: offset, close };
    }
  }
  if (!Number.isSafeInteger(contentLength) || contentLength < 0) return new Error('answer without content-length');
  if (contentLength > RESPONSE_BYTES_MAX) return new Error('answer body too large');
  const length = bodyStart + contentLength;
  return buffer.length < length ? undefined : { status, length, close };
}

/** The bytes of one request on a keep-alive connection. */
function requestBytes(host: string, planned: PlannedRequest): Buffer {
  const body = planned.body === undefined ? undefined : Buffer.from(planned.body);
  let head = `${planned.method} ${planned.path} HTTP/1.1\r\nhost: ${host}\r\nconnection: keep-alive\r\n`;
  for (const [name, value] of Object.entries(planned.headers)) head += `${name}: ${value}\r\n`;
  if (body !== undefined) head += `content-length: ${body.length}\r\n`;
  head += '\r\n';
  return body === undefined ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/**
 * Runs the schedule and waits for every answer (or timeout). Requests go over raw keep-alive
 * TCP connections (one request in flight on each, at most `connectionsMax`; a request finding
 * none free waits in line, and that wait is part of its latency): Node's http client costs the
 * load generator about twice the CPU per request, CPU the server it shares the cores with needs.
 */
export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const base = new URL(options.baseUrl);
  const port = Number(base.port === '' ? 80 : base.port);
  const timeoutNs = BigInt(options.timeoutMs ?? 10_000) * 1_000_000n;
  const total = Math.round(options.ratePerSecond * options.durationSeconds);
  const all = recorder();
  const byKind = new Map<string, Recorder>();
  let completed = 0;
  let sent = 0;
  const startNs = process.hrtime.bigint();
  const intervalNs = 1e9 / options.ratePerSecond;
  let finished: () => void = () => undefined;
  const allAnswered = new Promise<void>((resolve) => {
    finished = resolve;
  });

  const record = (inFlight: InFlight, status: string, ok: boolean): void => {
    const endNs = process.hrtime.bigint();
    completed += 1;
    let kindRecorder = byKind.get(inFlight.kind);
    if (kindRecorder === undefined) {
      kindRecorder = recorder();
      byKind.set(inFlight.kind, kindRecorder);
    }
    const latencyUs = Math.max(1, Number(endNs - inFlight.dueNs) / 1_000);
    const serviceUs = Math.max(1, Number(endNs - inFlight.writtenNs) / 1_000);
    for (const target of [all, kindRecorder]) {
      target.latency.recordValue(latencyUs);
      target.service.recordValue(serviceUs);
      target.statusCounts[status] = (target.statusCounts[status] ?? 0) + 1;
      if (!ok) target.errors += 1;
    }
    if (completed === total) finished();
  };

  interface Connection {
    readonly socket: net.Socket;
    buffered: Buffer;
    inFlight: InFlight | undefined;
    broken: boolean;
  }
  const connections = new Set<Connection>();
  const idle: Connection[] = [];
  /** Requests due while every connection was busy, oldest first. */
  const waiting: { index: number; dueNs: bigint }[] = [];
  let waitingHead = 0;

  const fail = (connection: Connection, status: string): void => {
    if (connection.broken) return;
    connection.broken = true;
    connections.delete(connection);
    const at = idle.indexOf(connection);
    if (at >= 0) idle.splice(at, 1);
    connection.socket.destroy();
    const inFlight = connection.inFlight;
    connection.inFlight = undefined;
    if (inFlight !== undefined) record(inFlight, status, false);
    pump();
  };

  const open = (): Connection => {
    const socket = net.connect({ host: base.hostname, port, noDelay: true });
    const connection: Connection = { socket, buffered: Buffer.alloc(0), inFlight: undefined, broken: false };
    connections.add(connection);
    socket.on('data', (chunk: Buffer) => {
      connection.buffered = connection.buffered.length === 0 ? chunk : Buffer.concat([connection.buffered, chunk]);
      const answer = parseAnswer(connection.buffered);
      if (answer === undefined) return;
      const inFlight = connection.inFlight;
      if (answer instanceof Error || inFlight === undefined) {
        fail(connection, 'socket-error');
        return;
      }
      connection.buffered = connection.buffered.subarray(answer.length);
      connection.inFlight = undefined;
      record(inFlight, String(answer.status), answer.status >= 200 && answer.status < 300);
      if (answer.close || connection.buffered.length > 0) {
        fail(connection, 'socket-error');
        return;
      }
      idle.push(connection);
      pump();
    });
    socket.on('error', () => fail(connection, 'socket-error'));
    socket.on('close', () => fail(connection, 'socket-error'));
    return connection;
  };

  const start = (connection: Connection, index: number, dueNs: bigint): void => {
    const planned = options.request(index);
    connection.inFlight = { kind: planned.kind, dueNs, writtenNs: process.hrtime.bigint() };
    connection.socket.write(requestBytes(base.host, planned));
  };

  /** Starts waiting requests on free connections, opening new ones up to the limit. */
  function pump(): void {
    while (waitingHead < waiting.length) {
      const connection = idle.pop() ?? (connections.size < options.connectionsMax ? open() : undefined);
      if (connection === undefined) break;
      const next = waiting[waitingHead] as { index: number; dueNs: bigint };
      waitingHead += 1;
      start(connection, next.index, next.dueNs);
    }
    if (waitingHead > 4_096 && waitingHead * 2 > waiting.length) {
      waiting.splice(0, waitingHead);
      waitingHead = 0;
    }
  }

  const sweep = setInterval(() => {
    const now = process.hrtime.bigint();
    for (const connection of connections) {
      if (connection.inFlight !== undefined && now - connection.inFlight.writtenNs > timeoutNs) fail(connection, 'timeout');
    }
  }, 100);

  if (total === 0) finished();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const elapsedNs = Number(process.hrtime.bigint() - startNs);
      const due = Math.min(total, Math.floor(elapsedNs / intervalNs) + 1);
      while (sent < due) {
        waiting.push({ index: sent, dueNs: startNs + BigInt(Math.round(sent * intervalNs)) });
        sent += 1;
      }
      pump();
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await allAnswered;
  const elapsedSeconds = Number(process.hrtime.bigint() - startNs) / 1e9;
  clearInterval(sweep);
  for (const connection of connections) connection.socket.destroy();
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
