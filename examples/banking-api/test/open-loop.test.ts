import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAnswer, runOpenLoop } from '../bench/open-loop.js';

// The load test's own generator: its framing and its latency accounting decide every figure
// the fixed-rate scenarios report, so they are tested like the API.
describe('open-loop load generator', () => {
  let server: Server;
  let baseUrl = '';
  const bodies: string[] = [];
  /** When each request carrying an `x-index` header arrived, ms (performance.now), by that index. */
  const arrivals = new Map<number, number>();

  beforeAll(async () => {
    server = createServer((request, response) => {
      const index = request.headers['x-index'];
      if (typeof index === 'string') arrivals.set(Number(index), performance.now());
      let body = '';
      request.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      request.on('end', () => {
        if (request.method === 'POST') bodies.push(body);
        if (request.url === '/slow') {
          setTimeout(() => response.writeHead(200, { 'content-length': '2' }).end('ok'), 300);
        } else if (request.url === '/chunked') {
          response.writeHead(200, { 'content-type': 'text/plain' });
          response.write('first ');
          response.end('second');
        } else if (request.url === '/never') {
          // No answer: the generator must time the request out.
        } else if (request.url === '/busy') {
          response.writeHead(503, { 'content-length': '4' }).end('busy');
        } else {
          response.writeHead(200, { 'content-length': '11' }).end('hello world');
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('frames answers by content-length and by chunks, and waits for incomplete ones', () => {
    const whole = Buffer.from('HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1');
    expect(parseAnswer(whole)).toEqual({ status: 201, length: whole.length - 'HTTP/1.1'.length, close: false });
    expect(parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel'))).toBeUndefined();
    expect(parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'))).toMatchObject({ status: 200, close: true });
    const chunked = Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    expect(parseAnswer(chunked)).toEqual({ status: 200, length: chunked.length, close: false });
    expect(parseAnswer(chunked.subarray(0, chunked.length - 2))).toBeUndefined();
    expect(parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'))).toBeInstanceOf(Error);
    expect(parseAnswer(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'))).toBeInstanceOf(Error);
  });

  it('starts every request on schedule, counts statuses and sends bodies whole', async () => {
    bodies.length = 0;
    arrivals.clear();
    // Four seconds, not one: a schedule run slow shows as lateness that grows with its length (at
    // 69 % of the rate, 1.8 s by the last request), while a loaded machine's delays do not; the
    // bounds below keep 1 s for those and still catch that.
    const result = await runOpenLoop({
      baseUrl,
      ratePerSecond: 400,
      durationSeconds: 4,
      connectionsMax: 16,
      request: (i) =>
        i % 4 === 3
          ? { kind: 'write', method: 'POST', path: '/post', headers: { 'content-type': 'application/json', 'x-index': String(i) }, body: JSON.stringify({ i, text: 'é' }) }
          : { kind: 'read', method: 'GET', path: i % 8 === 1 ? '/busy' : i % 8 === 5 ? '/chunked' : '/', headers: { 'x-index': String(i) } },
    });
    expect(result.completed).toBe(1_600);
    expect(result.byKind['write']?.requests).toBe(400);
    expect(result.byKind['read']?.requests).toBe(1_200);
    expect(result.all.statusCounts).toEqual({ '200': 1_400, '503': 200 });
    expect(result.errors).toBe(200);
    expect(bodies).toHaveLength(400);
    expect(bodies.map((body) => (JSON.parse(body) as { i: number; text: string }).text)).toEqual(Array(400).fill('é'));
    // On schedule: request i arrives i/400 s after request 0, give or take the machine's delays
    // (a few ms idle), not later and later. The due times are the generator's own, so they are
    // taken from the first arrival here.
    expect(arrivals.size).toBe(1_600);
    const first = arrivals.get(0) as number;
    let latestMs = -Infinity;
    for (const [i, at] of arrivals) latestMs = Math.max(latestMs, at - (first + (i * 1_000) / 400));
    expect(latestMs, 'latest start after its due time, ms').toBeLessThan(1_000);
    // The schedule took four seconds; answers came at about the intended rate (1,600 in 5 s at
    // the least: the same 1 s allowed).
    expect(result.achievedRatePerSecond).toBeGreaterThan(320);
    expect(result.achievedRatePerSecond).toBeLessThanOrEqual(410);
  });

  it('measures from the due time: requests queued behind a stalled connection carry the stall', async () => {
    const result = await runOpenLoop({
      baseUrl,
      ratePerSecond: 100,
      durationSeconds: 0.2,
      connectionsMax: 1,
      request: (i) => ({ kind: 'read', method: 'GET', path: i === 0 ? '/slow' : '/', headers: {} }),
    });
    expect(result.completed).toBe(20);
    expect(result.errors).toBe(0);
    // Request 1 was due 10 ms after request 0 but could only start after its 300 ms answer.
    expect(result.all.latencyMs.p95).toBeGreaterThanOrEqual(200);
    // Service time (from the write) of those queued requests stays small.
    expect(result.all.serviceTimeMs.p50).toBeLessThan(100);
  });

  it('counts unanswered requests as timeouts and goes on with new connections', async () => {
    const result = await runOpenLoop({
      baseUrl,
      ratePerSecond: 50,
      durationSeconds: 0.2,
      connectionsMax: 4,
      timeoutMs: 200,
      request: (i) => ({ kind: 'read', method: 'GET', path: i === 2 ? '/never' : '/', headers: {} }),
    });
    expect(result.completed).toBe(10);
    expect(result.all.statusCounts).toEqual({ '200': 9, timeout: 1 });
    expect(result.errors).toBe(1);
  });
});
