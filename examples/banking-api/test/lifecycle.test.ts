/**
 * Rate limiting, graceful shutdown and the bounds of the process (writers in all and per tenant,
 * tenants, writer queue), each on an API instance of its own over the same database.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { resolveSettings, settingsFromEnv } from '../src/config.js';
import { READINESS_DATABASE_TTL_MS } from '../src/server.js';
import { call, client, eventually, openTestDatabase, startTestApi, type TestApi, type TestDatabase } from './support/harness.js';
import { expectProblem } from './support/expect-problem.js';

let db: TestDatabase;
const apis: TestApi[] = [];

beforeAll(async () => {
  db = await openTestDatabase();
});

// Each test's API is closed after it: their pools together would pass the server's connection limit.
afterEach(async () => {
  await Promise.allSettled(apis.splice(0).map((api) => api.close()));
});

afterAll(async () => {
  await db?.close();
});

async function start(settings: Parameters<typeof startTestApi>[1], options: Parameters<typeof startTestApi>[3] = {}): Promise<TestApi> {
  const api = await startTestApi(db, settings, {}, options);
  apis.push(api);
  return api;
}

/** A rate limiter clock that moves only when the test says: no bucket refills behind its back. */
function stoppedClock(): { readonly clockMs: () => number; advance(ms: number): void } {
  let nowMs = 0;
  return {
    clockMs: () => nowMs,
    advance: (ms) => {
      nowMs += ms;
    },
  };
}

describe('rate limiting', () => {
  it('a client over its rate gets 429 rate_limited with Retry-After; other clients and health checks are not limited', async () => {
    // A burst of 5 refilled at 1 per second, on a clock that moves only when the test says.
    const clock = stoppedClock();
    const api = await start({ rateLimitPerSecond: 1, rateLimitBurst: 5 }, { rateLimitClockMs: clock.clockMs });
    const greedy = client(api.url, await api.token('rl-tenant', undefined, { subject: 'greedy' }));
    const polite = client(api.url, await api.token('rl-tenant', undefined, { subject: 'polite' }));
    const replies = await Promise.all(Array.from({ length: 12 }, () => greedy.get('/accounts')));
    expect(replies.filter((reply) => reply.status === 200)).toHaveLength(5);
    const limited = replies.filter((reply) => reply.status !== 200);
    expect(limited).toHaveLength(7);
    for (const reply of limited) {
      expectProblem(reply, 429, 'rate_limited');
      expect(Number(reply.headers.get('retry-after'))).toBe(1);
      expect(reply.body.retryAfterSeconds).toBe(1);
    }
    expect((await polite.get('/accounts')).status).toBe(200);
    for (let n = 0; n < 10; n += 1) expect((await call(api.url, 'GET', '/health/live')).status).toBe(200);
    // A second later the bucket holds one token: one request passes, the next does not.
    clock.advance(1_000);
    expect((await greedy.get('/accounts')).status).toBe(200);
    expect((await greedy.get('/accounts')).status).toBe(429);
  });

  it("one tenant's client cannot spend another tenant's rate, whatever the two ids hold", async () => {
    // Tenant ids may contain ':', so tenant 'rl-x' with client 'a:b' and tenant 'rl-x:a' with
    // client 'b' are two clients: each has a bucket of its own.
    const clock = stoppedClock();
    const api = await start({ rateLimitPerSecond: 1, rateLimitBurst: 2 }, { rateLimitClockMs: clock.clockMs });
    const noisy = client(api.url, await api.token('rl-x', undefined, { subject: 'a:b' }));
    const victim = client(api.url, await api.token('rl-x:a', undefined, { subject: 'b' }));
    const noisyStatuses = [];
    for (let n = 0; n < 4; n += 1) noisyStatuses.push((await noisy.get('/accounts')).status);
    expect(noisyStatuses).toEqual([200, 200, 429, 429]);
    expect([(await victim.get('/accounts')).status, (await victim.get('/accounts')).status]).toEqual([200, 200]);
  });

  it('requests without a valid token are limited per address, so guessing tokens is limited too', async () => {
    const clock = stoppedClock();
    const api = await start({ rateLimitPerSecond: 1, rateLimitBurst: 3 }, { rateLimitClockMs: clock.clockMs });
    const statuses = [];
    for (let n = 0; n < 6; n += 1) statuses.push((await call(api.url, 'GET', '/accounts', { token: 'x.y.z' })).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429, 429]);
    clock.advance(1_000);
    expect((await call(api.url, 'GET', '/accounts', { token: 'x.y.z' })).status).toBe(401);
    expect((await call(api.url, 'GET', '/accounts', { token: 'x.y.z' })).status).toBe(429);
  });

  it('behind a trusted proxy the address is the forwarded client\'s: one client\'s bad tokens do not hold up another\'s new token; an untrusted X-Forwarded-For changes nothing', async () => {
    const forwarded = (address: string): { headers: Record<string, string> } => ({ headers: { 'x-forwarded-for': address } });
    for (const trustedProxies of [['127.0.0.1', '::1'], []]) {
      const clock = stoppedClock();
      const api = await start({ rateLimitPerSecond: 1, rateLimitBurst: 2, trustedProxies }, { rateLimitClockMs: clock.clockMs });
      const statuses = [];
      for (let n = 0; n < 3; n += 1) statuses.push((await call(api.url, 'GET', '/accounts', { token: 'x.y.z', ...forwarded('198.51.100.1') })).status);
      expect(statuses).toEqual([401, 401, 429]);
      const other = await api.token('rl-proxy', undefined, { subject: `other-${trustedProxies.length}` });
      const reply = await call(api.url, 'GET', '/accounts', { token: other, ...forwarded('198.51.100.2') });
      // Trusted: another client, another bucket. Not trusted: both are the proxy's address.
      expect(reply.status, `trusted ${JSON.stringify(trustedProxies)}`).toBe(trustedProxies.length > 0 ? 200 : 429);
      await api.close();
    }
  });

  it('requests without a valid token from IPv6 addresses are limited per /64: a client rotating through its network shares one bucket; another network has its own', async () => {
    const forwarded = (address: string): { headers: Record<string, string> } => ({ headers: { 'x-forwarded-for': address } });
    const clock = stoppedClock();
    const api = await start({ rateLimitPerSecond: 1, rateLimitBurst: 3, trustedProxies: ['127.0.0.1', '::1'] }, { rateLimitClockMs: clock.clockMs });
    const statuses = [];
    for (const address of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:aaaa:bbbb:cccc:dddd', '2001:0db8:0001:0002::ffff', '2001:db8:1:2::5%eth0']) {
      statuses.push((await call(api.url, 'GET', '/accounts', { token: 'x.y.z', ...forwarded(address) })).status);
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    expect((await call(api.url, 'GET', '/accounts', { token: 'x.y.z', ...forwarded('2001:db8:1:3::1') })).status).toBe(401);
    // IPv4 stays per address, whether written as IPv4 or mapped into IPv6.
    const ipv4 = [];
    for (const address of ['192.0.2.7', '::ffff:192.0.2.7', '192.0.2.7', '::ffff:c000:207']) ipv4.push((await call(api.url, 'GET', '/accounts', { token: 'x.y.z', ...forwarded(address) })).status);
    expect(ipv4).toEqual([401, 401, 401, 429]);
    expect((await call(api.url, 'GET', '/accounts', { token: 'x.y.z', ...forwarded('192.0.2.8') })).status).toBe(401);
  });

  it('an address that used up its bucket on invalid tokens is refused before a new token is verified; a token verified before is still admitted', async () => {
    const clock = stoppedClock();
    const api = await start({ rateLimitPerSecond: 1, rateLimitBurst: 2 }, { rateLimitClockMs: clock.clockMs });
    const known = client(api.url, await api.token('rl-addr', undefined, { subject: 'known' }));
    expect((await known.get('/accounts')).status).toBe(200);
    // Valid, but never sent yet: only a signature check would tell.
    const fresh = client(api.url, await api.token('rl-addr', undefined, { subject: 'fresh' }));
    const invalid = [];
    for (let n = 0; n < 3; n += 1) invalid.push((await call(api.url, 'GET', '/accounts', { token: 'x.y.z' })).status);
    expect(invalid).toEqual([401, 401, 429]);
    const freshReply = await fresh.get('/accounts');
    expectProblem(freshReply, 429, 'rate_limited');
    expect(Number(freshReply.headers.get('retry-after'))).toBe(1);
    expect((await known.get('/accounts')).status).toBe(200);
    // Once the bucket has a token again, the new token is verified and admitted.
    clock.advance(1_000);
    expect((await fresh.get('/accounts')).status).toBe(200);
  });
});

describe('graceful shutdown', () => {
  it('stops accepting, answers every request in flight, drains the writer and closes: every 201 is in the log, nothing else', async () => {
    const api = await start({});
    const bank = client(api.url, await api.token('shutdown-tenant'));
    expect((await bank.post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' })).status).toBe(201);
    expect((await bank.post('/accounts', { accountId: 'sink', currency: 'EUR', type: 'liability' })).status).toBe(201);
    const inFlight = Array.from({ length: 150 }, (_, n) =>
      bank.post('/transfers', { transferId: `sd-${n}`, debitAccountId: 'cash', creditAccountId: 'sink', amount: '1.00', currency: 'EUR' }).then(
        (reply) => reply.status,
        () => 'refused' as const,
      ),
    );
    // Close once the first answer is back: the others are in flight.
    await Promise.race(inFlight);
    await api.close();
    const outcomes = await Promise.all(inFlight);
    const accepted = outcomes.filter((outcome) => outcome === 201).length;
    expect(accepted).toBeGreaterThan(0);
    expect(outcomes.every((outcome) => outcome === 201 || outcome === 503 || outcome === 'refused')).toBe(true);
    const { rows } = await db.admin.query<{ n: number }>("SELECT count(*)::int AS n FROM ledgerkit.events WHERE tenant_id = 'shutdown-tenant' AND type = 'TransferPosted'");
    expect(rows[0]?.n).toBe(accepted);
    await expect(fetch(`${api.url}/health/live`)).rejects.toThrow();
  });

  it('readiness answers 503 with the failing check while the database refuses connections, and 200 again once it is back; the error itself goes to the log only', async () => {
    const clock = stoppedClock();
    const api = await start({}, { readinessClockMs: clock.clockMs });
    expect((await call(api.url, 'GET', '/health/ready')).status).toBe(200);
    await db.admin.query(`ALTER ROLE ${db.roles.app} NOLOGIN`);
    try {
      await db.admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [db.roles.app]);
      // The last check's answer is kept for its window: the next probe after it asks the database.
      clock.advance(READINESS_DATABASE_TTL_MS);
      const down = await call(api.url, 'GET', '/health/ready');
      expect(down.status).toBe(503);
      // Public and unauthenticated: a fixed word, never the database's message (role, host, port).
      expect(down.body).toEqual({ status: 'not_ready', checks: { database: { ok: false, detail: 'unreachable' }, writers: { ok: true }, audit: { ok: true } } });
      expect(down.text).not.toContain(db.roles.app);
      expect(down.text).not.toContain(new URL(db.appUrl).port);
      const warned = api.logs.filter((line) => line['level'] === 40 && line['check'] === 'database');
      expect(warned.length).toBeGreaterThan(0);
      // The database's own words are in the log, not in the answer: the role refused its login,
      // or (when the ping took a pooled connection the test had just terminated) 57P01.
      const message = (warned[0]?.['err'] as { message?: unknown } | undefined)?.message;
      expect(typeof message === 'string' && message.length > 0, JSON.stringify(warned[0])).toBe(true);
      expect(String(message)).toMatch(new RegExp(`${db.roles.app}|terminating connection`));
      expect(down.text).not.toContain(String(message));
    } finally {
      await db.admin.query(`ALTER ROLE ${db.roles.app} LOGIN`);
    }
    clock.advance(READINESS_DATABASE_TTL_MS);
    expect((await call(api.url, 'GET', '/health/ready')).status).toBe(200);
  });

  it('readiness asks the database at most once per window, for probes at once or one after another; a database that stops answering is reported once the window ends, and asked again after the next', async () => {
    const clock = stoppedClock();
    const api = await start({}, { readinessClockMs: clock.clockMs });
    const probe = async (): Promise<number> => (await call(api.url, 'GET', '/health/ready')).status;
    /** Database checks that failed: each is logged once, however many probes it answered. */
    const failedChecks = (): number => api.logs.filter((line) => line['level'] === 40 && line['check'] === 'database').length;
    expect(await probe()).toBe(200);
    await db.admin.query(`ALTER ROLE ${db.roles.app} NOLOGIN`);
    try {
      await db.admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [db.roles.app]);
      // Within the window of the check that passed: answered without asking the (now refusing) database.
      expect(await Promise.all(Array.from({ length: 20 }, probe))).toEqual(Array.from({ length: 20 }, () => 200));
      for (let n = 0; n < 5; n += 1) expect(await probe()).toBe(200);
      expect(failedChecks()).toBe(0);
      // The window is over: 20 probes at once and 5 after them share one check, which fails.
      clock.advance(READINESS_DATABASE_TTL_MS);
      expect(await Promise.all(Array.from({ length: 20 }, probe))).toEqual(Array.from({ length: 20 }, () => 503));
      for (let n = 0; n < 5; n += 1) expect(await probe()).toBe(503);
      expect(failedChecks()).toBe(1);
      // Past it, the next probe checks again.
      clock.advance(READINESS_DATABASE_TTL_MS);
      expect(await probe()).toBe(503);
      expect(failedChecks()).toBe(2);
    } finally {
      await db.admin.query(`ALTER ROLE ${db.roles.app} LOGIN`);
    }
    // A failure is kept for its window only: the database answering again is seen after it.
    expect(await probe()).toBe(503);
    clock.advance(READINESS_DATABASE_TTL_MS - 1);
    expect(await probe()).toBe(503);
    clock.advance(1);
    expect(await probe()).toBe(200);
    expect(failedChecks()).toBe(2);
  });
});

describe('the database going away under load', () => {
  it('sessions killed under load: every answer is a success or a problem document, the process lives on, nothing acknowledged is lost', async () => {
    const api = await start({});
    const bank = client(api.url, await api.token('outage-tenant'));
    expect((await bank.post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' })).status).toBe(201);
    expect((await bank.post('/accounts', { accountId: 'alice', currency: 'EUR', type: 'liability' })).status).toBe(201);
    const accepted: string[] = [];
    const statuses = new Map<number, number>();
    let loading = true;
    let n = 0;
    const worker = async (): Promise<void> => {
      while (loading) {
        n += 1;
        const transferId = `out-${n}`;
        const write = await bank.post('/transfers', { transferId, debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' });
        const read = await bank.get('/accounts/alice/balance');
        for (const reply of [write, read]) {
          statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
          // Success, or a problem document: never a hang, a crash or a bare error page.
          if (reply.status >= 400) expect(reply.headers.get('content-type'), `status ${reply.status}`).toMatch(/^application\/problem\+json/);
        }
        if (write.status === 201) accepted.push(transferId);
      }
    };
    const workers = Array.from({ length: 16 }, () => worker());
    // Every connection of the API's role, three times over: as a restart or a failover would.
    for (let round = 0; round < 3; round += 1) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      await db.admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [db.roles.app]);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    loading = false;
    await Promise.all(workers);
    expect(accepted.length, JSON.stringify([...statuses])).toBeGreaterThan(0);
    // Back to normal without a restart.
    await expect.poll(async () => (await call(api.url, 'GET', '/health/ready')).status, { timeout: 10_000 }).toBe(200);
    expect((await bank.post('/transfers', { transferId: 'after-outage', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' })).status).toBe(201);
    const { rows } = await db.admin.query<{ transfer_id: string }>(
      "SELECT data->>'transferId' AS transfer_id FROM ledgerkit.events WHERE tenant_id = 'outage-tenant' AND type = 'TransferPosted'",
    );
    const logged = new Set(rows.map((row) => row.transfer_id));
    expect(accepted.filter((id) => !logged.has(id)), 'acknowledged but not in the log').toEqual([]);
    const trial = await bank.get('/trial-balance');
    expect(trial.status).toBe(200);
    expect(trial.body.totals.every((total: { balanced: boolean }) => total.balanced)).toBe(true);
    await expect.poll(async () => (await bank.get('/accounts/alice/balance')).body.posted, { timeout: 10_000 }).toBe(`${logged.size}.00`);
  });
});

describe('bounds', () => {
  it('an idle ledger writer is closed to make room for another when the process holds its maximum', async () => {
    const api = await start({ ledgersMax: 1 });
    const token = await api.token('bounded-tenant');
    for (const ledgerId of ['book-a', 'book-b', 'book-a']) {
      const book = client(api.url, token, ledgerId);
      const reply = await book.post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' });
      expect([200, 201]).toContain(reply.status);
    }
    expect(await api.api.ledgers.ledger('bounded-tenant', 'book-a')).toBeDefined();
    expect(await api.api.ledgers.ledger('bounded-tenant', 'book-b')).toBeUndefined();
  });

  it("a tenant at its own maximum of ledgers closes its own least recently used idle one, never another tenant's", async () => {
    // The process holds three at most, so without a bound per tenant the noisy tenant's third
    // ledger would close the quiet tenant's, the least recently used of all.
    const api = await start({ ledgersMax: 3, ledgersPerTenantMax: 2 });
    const quiet = client(api.url, await api.token('quiet-tenant'), 'quiet-book');
    expect((await quiet.post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' })).status).toBe(201);
    const token = await api.token('noisy-tenant');
    for (const ledgerId of ['noisy-1', 'noisy-2', 'noisy-3']) {
      expect((await client(api.url, token, ledgerId).post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' })).status).toBe(201);
    }
    expect(await api.api.ledgers.ledger('quiet-tenant', 'quiet-book')).toBeDefined();
    expect(await api.api.ledgers.ledger('noisy-tenant', 'noisy-1')).toBeUndefined();
    expect(await api.api.ledgers.ledger('noisy-tenant', 'noisy-2')).toBeDefined();
    expect(await api.api.ledgers.ledger('noisy-tenant', 'noisy-3')).toBeDefined();
  });

  it('a tenant at its maximum whose every ledger is busy answers 503 overloaded with Retry-After; other tenants are not refused', async () => {
    const api = await start({ ledgersPerTenantMax: 2 });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Two ledgers in use until the gate opens, as by requests in flight: neither may be closed.
    const held = ['held-1', 'held-2'].map((ledgerId) => api.api.ledgers.use('held-tenant', ledgerId, () => gate));
    try {
      const reply = await client(api.url, await api.token('held-tenant'), 'held-3').post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' });
      expectProblem(reply, 503, 'overloaded');
      expect(reply.headers.get('retry-after')).toBe('1');
      expect((await client(api.url, await api.token('free-tenant'), 'free-1').post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' })).status).toBe(201);
    } finally {
      release();
      await Promise.all(held);
    }
    // Idle again: the least recently used of the two makes room.
    expect((await client(api.url, await api.token('held-tenant'), 'held-3').post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' })).status).toBe(201);
    expect(await api.api.ledgers.ledger('held-tenant', 'held-1')).toBeUndefined();
    expect(await api.api.ledgers.ledger('held-tenant', 'held-2')).toBeDefined();
  });

  it('requests arriving together for new ledgers of one tenant never hold more than its maximum open', async () => {
    const api = await start({ ledgersPerTenantMax: 2 });
    const registry = api.api.ledgers;
    const tenantId = 'burst-tenant';
    const openOf = (): string[] => registry.writers().filter((writer) => writer.tenantId === tenantId).map((writer) => writer.ledgerId).sort();
    for (const ledgerId of ['burst-1', 'burst-2']) await registry.use(tenantId, ledgerId, async () => undefined);
    // Both idle: the first two of the burst each close one; the third finds only busy ledgers.
    const outcomes = await Promise.allSettled(['burst-3', 'burst-4', 'burst-5'].map((ledgerId) => registry.use(tenantId, ledgerId, async () => ledgerId)));
    expect(outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : (outcome.reason as { code?: string }).code))).toEqual(['burst-3', 'burst-4', 'overloaded']);
    expect(openOf()).toEqual(['burst-3', 'burst-4']);
  });

  it('a ledger that fails to open does not count against its tenant', async () => {
    const api = await start({ ledgersPerTenantMax: 2 });
    const registry = api.api.ledgers;
    // Off ledger-core's id pattern: the writer refuses to open (the HTTP layer never asks for one).
    for (let n = 0; n < 3; n += 1) await expect(registry.use('failing-tenant', 'not a ledger id!', async () => undefined)).rejects.toThrow();
    for (const ledgerId of ['fine-1', 'fine-2', 'fine-3']) expect(await registry.use('failing-tenant', ledgerId, async () => ledgerId)).toBe(ledgerId);
    expect(registry.writers().filter((writer) => writer.tenantId === 'failing-tenant').map((writer) => writer.ledgerId).sort()).toEqual(['fine-2', 'fine-3']);
  });

  it('the bound per tenant is a setting with a default and limits, read from BANKING_API_LEDGERS_PER_TENANT_MAX', () => {
    expect(resolveSettings().ledgersPerTenantMax).toBe(16);
    expect(resolveSettings(settingsFromEnv({ BANKING_API_LEDGERS_PER_TENANT_MAX: '3' })).ledgersPerTenantMax).toBe(3);
    for (const bad of [0, 10_001, 1.5]) expect(() => resolveSettings({ ledgersPerTenantMax: bad })).toThrow(/ledgersPerTenantMax/);
  });

  it('a trial balance with more lines than trialBalanceLinesMax answers 422 result_too_large, now and as of a time; at the limit it is answered', async () => {
    const api = await start({ trialBalanceLinesMax: 2 });
    const bank = client(api.url, await api.token('audited-tenant'), 'audited-book');
    for (const accountId of ['cash', 'fees']) expect((await bank.post('/accounts', { accountId, currency: 'EUR', type: 'asset' })).status).toBe(201);
    const asOf = encodeURIComponent(new Date(Date.now() + 60_000).toISOString());
    await expect.poll(async () => (await bank.get(`/trial-balance?asOf=${asOf}&timeBasis=recorded`)).body.lines?.length, { timeout: 10_000 }).toBe(2);
    expect((await bank.get('/trial-balance')).body.lines).toHaveLength(2);
    expect((await bank.post('/accounts', { accountId: 'loans', currency: 'EUR', type: 'asset' })).status).toBe(201);
    expectProblem(await bank.get('/trial-balance'), 422, 'result_too_large');
    await expect.poll(async () => (await bank.get(`/trial-balance?asOf=${asOf}&timeBasis=recorded`)).status, { timeout: 10_000 }).toBe(422);
    expectProblem(await bank.get(`/trial-balance?asOf=${asOf}`), 422, 'result_too_large');
  });

  it('a new tenant beyond the process maximum takes the place of the least recently used idle tenant, whose runner and writers start again on its next request', async () => {
    const api = await start({ tenantsMax: 2 });
    const pause = () => new Promise((resolve) => setTimeout(resolve, 1_100));
    const tenantsServed = async () => [...new Set((await api.api.ledgers.projectionStatus()).map((status) => status.tenantId))].sort();
    const first = client(api.url, await api.token('first-tenant'));
    const second = client(api.url, await api.token('second-tenant'));
    const third = client(api.url, await api.token('third-tenant'));
    const open = async (bank: ReturnType<typeof client>) => {
      for (const [accountId, type] of [['cash', 'asset'], ['sink', 'liability']]) expect((await bank.post('/accounts', { accountId, currency: 'EUR', type })).status).toBe(201);
    };
    const transfer = async (bank: ReturnType<typeof client>, transferId: string) => {
      expect((await bank.post('/transfers', { transferId, debitAccountId: 'cash', creditAccountId: 'sink', amount: '1.00', currency: 'EUR' })).status).toBe(201);
      // The history read model shows it: the tenant's projection runner runs.
      await eventually(async () => expect((await bank.get(`/transfers/${transferId}`)).status).toBe(200));
    };
    await open(first);
    await transfer(first, 'first-1');
    expect((await second.get('/accounts')).status).toBe(200);
    await eventually(async () => expect(await tenantsServed()).toEqual(['first-tenant', 'second-tenant']));
    // Both were used within the last second: no place is given up yet, and the answer says to come back soon.
    const early = await third.get('/accounts');
    expectProblem(early, 503, 'overloaded');
    expect(early.headers.get('retry-after')).toBe('1');
    expect(early.body.detail).toMatch(/maximum of 2 tenants/);
    await pause();
    expect((await second.get('/accounts')).status).toBe(200);
    // The first tenant is now the least recently used, and idle: the third takes its place.
    await open(third);
    await transfer(third, 'third-1');
    await eventually(async () => expect(await tenantsServed()).toEqual(['second-tenant', 'third-tenant']));
    expect(await api.api.ledgers.ledger('first-tenant', 'main')).toBeUndefined();
    await pause();
    // The first tenant comes back (in place of the second, least recently used): all of it works.
    await transfer(first, 'first-2');
    expect((await first.get('/accounts/sink/balance')).body.posted).toBe('2.00');
    expect((await first.get('/accounts/sink/transactions')).body.entries).toHaveLength(2);
    await eventually(async () => expect(await tenantsServed()).toEqual(['first-tenant', 'third-tenant']));
    expect(api.logs.filter((line) => String(line['msg']).includes('evicted'))).toEqual([]);
  });

  it('a tenant whose writer is busy keeps its place: with no idle tenant, a new one answers 503 overloaded with Retry-After until one is', async () => {
    const api = await start({ tenantsMax: 1 });
    expect((await client(api.url, await api.token('busy-tenant')).get('/accounts')).status).toBe(200);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const held = api.api.ledgers.use('busy-tenant', 'main', () => gate);
    const newcomer = client(api.url, await api.token('newcomer-tenant'));
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const reply = await newcomer.get('/accounts');
      expectProblem(reply, 503, 'overloaded');
      expect(reply.headers.get('retry-after')).toBe('1');
      expect(reply.body.detail).toMatch(/tenantsMax/);
    } finally {
      release();
      await held;
    }
    expect((await newcomer.get('/accounts')).status).toBe(200);
  });

  it('a writer queue at its bound answers 503 overloaded, and every accepted transfer is applied', async () => {
    const api = await start({ writerQueueLengthMax: 100, writerBatchSizeMax: 10 });
    const bank = client(api.url, await api.token('queue-tenant'));
    await bank.post('/accounts', { accountId: 'cash', currency: 'EUR', type: 'asset' });
    await bank.post('/accounts', { accountId: 'sink', currency: 'EUR', type: 'liability' });
    // The stream's row locked: appends wait on it, so the writer's queue fills as requests come.
    const lock = await db.admin.connect();
    let replies: Awaited<ReturnType<typeof bank.post>>[];
    try {
      await lock.query('BEGIN');
      await lock.query('SELECT 1 FROM ledgerkit.ledger_streams WHERE tenant_id = $1 FOR UPDATE', ['queue-tenant']);
      let overloaded = 0;
      const pending = Array.from({ length: 400 }, (_, n) =>
        bank.post('/transfers', { transferId: `q-${n}`, debitAccountId: 'cash', creditAccountId: 'sink', amount: '1.00', currency: 'EUR' }).then((reply) => {
          if (reply.status === 503) overloaded += 1;
          return reply;
        }),
      );
      // Every request past what the queue and the appends in flight hold is refused at once.
      await eventually(async () => expect(overloaded).toBeGreaterThan(0), 20_000);
      await lock.query('COMMIT');
      replies = await Promise.all(pending);
    } finally {
      await lock.query('ROLLBACK').catch(() => undefined);
      lock.release();
    }
    const refused = replies.filter((reply) => reply.status === 503);
    for (const reply of refused) expectProblem(reply, 503, 'overloaded');
    const accepted = replies.filter((reply) => reply.status === 201).length;
    expect(accepted + refused.length).toBe(400);
    expect(refused.length).toBeGreaterThan(0);
    // The queue alone takes 100.
    expect(accepted).toBeGreaterThanOrEqual(100);
    expect((await bank.get('/accounts/sink/balance')).body.posted).toBe(`${accepted}.00`);
  });
});
