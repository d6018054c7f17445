/**
 * The idempotency store against PostgreSQL, below HTTP: every state a key can be in when it is
 * claimed (new, pending under its lease, pending past it, answered, expired, given back), with a
 * matching and a different fingerprint, in batches that mix them, and concurrent claims from two
 * stores (two processes) of which exactly one wins.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdempotencyStore, UNWRITTEN_ANSWERS_MAX_LIMIT, type ClaimResult, type KeyRef } from '../src/idempotency.js';
import { openTestDatabase, type TestDatabase } from './support/harness.js';

let db: TestDatabase;
let appPool: pg.Pool;
/** A second process's connections. */
let secondPool: pg.Pool;
const stores: IdempotencyStore[] = [];

beforeAll(async () => {
  db = await openTestDatabase();
  appPool = new pg.Pool({ connectionString: db.appUrl, max: 4 });
  secondPool = new pg.Pool({ connectionString: db.appUrl, max: 4 });
});

afterAll(async () => {
  await Promise.all(stores.map((store) => store.close()));
  await appPool?.end();
  await secondPool?.end();
  await db?.close();
});

function store(options: { leaseMs?: number; ttlMs?: number; pool?: pg.Pool; unwrittenAnswersMax?: number } = {}): IdempotencyStore {
  const made = new IdempotencyStore({
    pool: options.pool ?? appPool,
    leaseMs: options.leaseMs ?? 30_000,
    ttlMs: options.ttlMs ?? 86_400_000,
    ...(options.unwrittenAnswersMax === undefined ? {} : { unwrittenAnswersMax: options.unwrittenAnswersMax }),
  });
  stores.push(made);
  return made;
}

const ref = (key: string, fingerprint = `fp-${key}`, tenantId = 'idem-tenant', clientId = 'client-1'): KeyRef => ({ tenantId, clientId, key, fingerprint });
const answer = { status: 201, headers: { location: '/transfers/t1' }, body: '{"ok":true}' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `count` backends of the test database wait for a lock: a step is known to be held up. */
async function lockWaiters(count: number): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt += 1) {
    const { rows } = await db.admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
    if ((rows[0]?.n ?? 0) >= count) return;
    await sleep(10);
  }
  throw new Error(`never saw ${count} backends waiting for a lock`);
}
/** A claim, whatever its nonce (a UUID; see the nonce test for when it is new and when kept). */
const claimed = { kind: 'claimed', nonce: expect.stringMatching(/^[0-9a-f-]{36}$/) } as unknown as ClaimResult;
const nonceOf = (result: ClaimResult): string | null => (result.kind === 'claimed' ? result.nonce : null);

describe('idempotency keys in PostgreSQL', () => {
  it('a new key is claimed; while it runs a retry is in progress and a different body a mismatch; once answered a retry replays it', async () => {
    const keys = store();
    expect(await keys.claim(ref('k1'))).toEqual(claimed);
    expect(await keys.claim(ref('k1'))).toEqual({ kind: 'in_progress' });
    expect(await keys.claim(ref('k1', 'other'))).toEqual({ kind: 'mismatch' });
    await keys.finish(ref('k1'), answer);
    expect(await keys.claim(ref('k1'))).toEqual({ kind: 'replay', response: answer });
    expect(await keys.claim(ref('k1', 'other'))).toEqual({ kind: 'mismatch' });
  });

  it('a key given back (the server failed) is claimed again by the retry', async () => {
    const keys = store();
    expect(await keys.claim(ref('k2'))).toEqual(claimed);
    await keys.finish(ref('k2'), undefined);
    expect(await keys.claim(ref('k2'))).toEqual(claimed);
  });

  it('a claim whose lease ran out is taken over by the same request only; an expired key is free for any', async () => {
    const short = store({ leaseMs: 50 });
    expect(await short.claim(ref('k3'))).toEqual(claimed);
    await sleep(120);
    expect(await short.claim(ref('k3', 'other'))).toEqual({ kind: 'mismatch' });
    expect(await short.claim(ref('k3'))).toEqual(claimed);
    const expiring = store({ ttlMs: 50 });
    expect(await expiring.claim(ref('k4'))).toEqual(claimed);
    await expiring.finish(ref('k4'), answer);
    await sleep(120);
    expect(await expiring.claim(ref('k4', 'new body'))).toEqual(claimed);
  });

  it('a claim’s nonce is kept for the same request claimed again (released, or its lease ran out) and drawn anew for a new request (another body after a release, or the key expired)', async () => {
    const keys = store({ leaseMs: 50, ttlMs: 400 });
    const first = nonceOf(await keys.claim(ref('n1')));
    expect(first).not.toBeNull();
    await keys.finish(ref('n1'), undefined);
    expect(nonceOf(await keys.claim(ref('n1')))).toBe(first);
    await sleep(120);
    // The lease ran out: the same request takes it over, with the same nonce.
    expect(nonceOf(await keys.claim(ref('n1')))).toBe(first);
    await keys.finish(ref('n1'), undefined);
    const other = nonceOf(await keys.claim(ref('n1', 'another body')));
    expect(other).not.toBeNull();
    expect(other).not.toBe(first);
    await keys.finish(ref('n1', 'another body'), answer);
    await sleep(450);
    // Expired: the same request again is a new one.
    const afterExpiry = nonceOf(await keys.claim(ref('n1', 'another body')));
    expect(afterExpiry).not.toBeNull();
    expect(afterExpiry).not.toBe(other);
  });

  it('keys are per tenant and per client', async () => {
    const keys = store();
    expect(await keys.claim(ref('shared', 'a', 'tenant-a', 'client-1'))).toEqual(claimed);
    expect(await keys.claim(ref('shared', 'b', 'tenant-b', 'client-1'))).toEqual(claimed);
    expect(await keys.claim(ref('shared', 'c', 'tenant-a', 'client-2'))).toEqual(claimed);
    expect(await keys.claim(ref('shared', 'z', 'tenant-a', 'client-1'))).toEqual({ kind: 'mismatch' });
  });

  it('one batch of keys in every state answers each one in its own right', async () => {
    const keys = store();
    // Answered, pending, given back.
    await keys.claim(ref('b-done'));
    await keys.finish(ref('b-done'), answer);
    await keys.claim(ref('b-done-2'));
    await keys.finish(ref('b-done-2'), answer);
    await keys.claim(ref('b-pending'));
    await keys.claim(ref('b-back'));
    await keys.finish(ref('b-back'), undefined);
    const fresh = Array.from({ length: 300 }, (_, i) => ref(`b-new-${i}`));
    // Claimed in the same turn of the event loop: one statement.
    const results = await Promise.all([
      keys.claim(ref('b-done')),
      keys.claim(ref('b-pending')),
      keys.claim(ref('b-back')),
      keys.claim(ref('b-done-2', 'other')),
      ...fresh.map((one) => keys.claim(one)),
      // The same new key twice in one batch: the second is a concurrent duplicate; with another
      // body, the key is reused (422), as it would be a moment later.
      keys.claim(ref('b-new-0')),
      keys.claim(ref('b-new-1', 'other')),
    ]);
    const expected: ClaimResult[] = [
      { kind: 'replay', response: answer },
      { kind: 'in_progress' },
      claimed,
      { kind: 'mismatch' },
      ...fresh.map((): ClaimResult => claimed),
      { kind: 'in_progress' },
      { kind: 'mismatch' },
    ];
    expect(results).toEqual(expected);
    // Answers in one batch too, some stored, some given back.
    await Promise.all(fresh.map((one, i) => keys.finish(one, i % 2 === 0 ? { ...answer, body: `{"i":${i}}` } : undefined)));
    const again = await Promise.all(fresh.map((one) => keys.claim(one)));
    again.forEach((result, i) => expect(result).toEqual(i % 2 === 0 ? { kind: 'replay', response: { ...answer, body: `{"i":${i}}` } } : claimed));
  });

  /**
   * Two stores on two pools (two processes) claim the same keys at once, the second in `order`:
   * each key must be claimed by exactly one of them and be in progress for the other.
   */
  async function raceTwoStores(prefix: string, count: number, order: 'same' | 'opposite'): Promise<void> {
    const otherPool = new pg.Pool({ connectionString: db.appUrl, max: 4 });
    try {
      const first = store();
      const second = store({ pool: otherPool });
      // Both pools connected first, so that the two statements run at the same time.
      await Promise.all([first.claim(ref(`${prefix}-warm-1`)), second.claim(ref(`${prefix}-warm-2`))]);
      const contested = Array.from({ length: count }, (_, i) => ref(`${prefix}-${String(i).padStart(3, '0')}`));
      const secondOrder = order === 'same' ? contested : [...contested].reverse();
      const [a, b] = await Promise.all([Promise.all(contested.map((one) => first.claim(one))), Promise.all(secondOrder.map((one) => second.claim(one)))]);
      if (order === 'opposite') b.reverse();
      contested.forEach((_, i) => {
        const kinds = [a[i]?.kind, b[i]?.kind].sort();
        expect(kinds).toEqual(['claimed', 'in_progress']);
      });
    } finally {
      await otherPool.end();
    }
  }

  it('two stores (two processes) claiming the same keys at once: each key is claimed exactly once', async () => {
    await raceTwoStores('race', 200, 'same');
  });

  it('two stores claiming the same keys in opposite orders at once: no deadlock, each key claimed exactly once', async () => {
    await raceTwoStores('opposite', 400, 'opposite');
  });

  it('an answer for a key that has no row (it expired and was swept while its request ran) leaves the key free', async () => {
    const keys = store();
    await keys.finish(ref('gone-1'), answer);
    const rows = await db.admin.query<{ expired: boolean; state: string }>(
      `SELECT expires_at <= clock_timestamp() AS expired, state FROM banking_api.idempotency_keys WHERE tenant_id = 'idem-tenant' AND idem_key = 'gone-1'`,
    );
    expect(rows.rows).toEqual([{ expired: true, state: 'done' }]);
    expect(await keys.claim(ref('gone-1', 'any body'))).toEqual(claimed);
    expect(await keys.claim(ref('gone-1', 'any body'))).toEqual({ kind: 'in_progress' });
  });

  it('one key answered twice in one turn (its claim taken over while the first request ran): the claim’s own answer is stored, and nothing fails', async () => {
    const keys = store();
    await keys.claim(ref('twice-1'));
    await keys.claim(ref('twice-2'));
    await Promise.all([
      keys.finish(ref('twice-1', 'an earlier request'), { ...answer, body: 'not this one' }),
      keys.finish(ref('twice-1'), answer),
      keys.finish(ref('twice-2'), answer),
      keys.finish(ref('twice-2'), { ...answer, body: 'a second answer' }),
    ]);
    const other = store();
    expect(await other.claim(ref('twice-1'))).toEqual({ kind: 'replay', response: answer });
    expect(await other.claim(ref('twice-2'))).toEqual({ kind: 'replay', response: answer });
  });

  it('the expiry sweep deletes expired keys without waiting for one another transaction holds (a claim re-claiming it): that one is left for the next sweep', async () => {
    const tenant = 'sweep-tenant';
    for (const key of ['sweep-1', 'sweep-2', 'sweep-3']) {
      await db.admin.query(
        `INSERT INTO banking_api.idempotency_keys (tenant_id, client_id, idem_key, fingerprint, state, expires_at) VALUES ($1, 'client-1', $2, 'fp', 'done', clock_timestamp() - interval '1 second')`,
        [tenant, key],
      );
    }
    const sweep = (): Promise<number> => appPool.query<{ deleted: number }>('SELECT banking_api.expire_idempotency_keys($1, 1000) AS deleted', [tenant]).then((result) => Number(result.rows[0]?.deleted));
    const locker = await db.admin.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM banking_api.idempotency_keys WHERE tenant_id = $1 AND idem_key = 'sweep-2' FOR UPDATE`, [tenant]);
      const swept = await Promise.race([sweep(), sleep(2_000).then(() => 'still waiting' as const)]);
      expect(swept).toBe(2);
      await locker.query('COMMIT');
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
    }
    expect(await sweep()).toBe(1);
    const { rows } = await db.admin.query('SELECT 1 FROM banking_api.idempotency_keys WHERE tenant_id = $1', [tenant]);
    expect(rows).toEqual([]);
  });

  it('a key claimed before nonces existed (a null nonce) is claimed again with its null nonce', async () => {
    await db.admin.query(
      `INSERT INTO banking_api.idempotency_keys (tenant_id, client_id, idem_key, fingerprint, state, expires_at) VALUES ('idem-tenant', 'client-1', 'old-1', 'fp-old-1', 'released', clock_timestamp() + interval '1 hour')`,
    );
    expect(await store().claim(ref('old-1'))).toEqual({ kind: 'claimed', nonce: null });
  });

  it('a claim batch held up behind a locked row still claims a key whose row went (swept) and was answered meanwhile by another process', async () => {
    const p = store();
    const q = store({ pool: secondPool });
    expect(await p.claim(ref('held-a'))).toEqual(claimed);
    const locker = await db.admin.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM banking_api.idempotency_keys WHERE idem_key = 'held-a' FOR UPDATE`);
      // Q's batch (held-a, held-b) takes held-a first and waits there; held-b has no row.
      const claims = Promise.all([q.claim(ref('held-a')), q.claim(ref('held-b', 'a new body'))]);
      await lockWaiters(1);
      // P's request with held-b ran past its key's expiry: its answer finds no row.
      await p.finish(ref('held-b', 'the old body'), answer);
      await locker.query('COMMIT');
      expect(await claims).toEqual([{ kind: 'in_progress' }, claimed]);
    } finally {
      locker.release();
    }
  });

  it('a claim batch and another process\'s batch of a release and an answer over the same keys wait for each other in one order: no deadlock, nothing lost', async () => {
    const p = store();
    const q = store({ pool: secondPool });
    for (const key of ['order-a', 'order-m', 'order-z']) expect(await p.claim(ref(key))).toEqual(claimed);
    const locker = await db.admin.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM banking_api.idempotency_keys WHERE idem_key = 'order-m' FOR UPDATE`);
      // Q takes order-a and waits on order-m; P then gives order-a back and answers order-z.
      const claims = Promise.allSettled([q.claim(ref('order-z')), q.claim(ref('order-m')), q.claim(ref('order-a'))]);
      await lockWaiters(1);
      const finishes = Promise.allSettled([p.finish(ref('order-z'), answer), p.finish(ref('order-a'), undefined)]);
      await lockWaiters(2);
      await locker.query('COMMIT');
      const settled = [...(await claims), ...(await finishes)];
      expect(settled.filter((one) => one.status === 'rejected')).toEqual([]);
    } finally {
      locker.release();
    }
    expect(await store().claim(ref('order-z'))).toEqual({ kind: 'replay', response: answer });
  });

  it('a statement that names a key twice (as a store before API migration 6 could send) is applied key by key, in order', async () => {
    const call = (sql: string, params: unknown[]) => appPool.query(sql, params);
    const claimTwice = await call(`SELECT o_ord, o_claimed, o_state FROM banking_api.claim_idempotency_keys($1, $2, $3, $4, 30000, 86400000) ORDER BY o_ord`, [
      'idem-tenant',
      ['client-1', 'client-1'],
      ['twice-c', 'twice-c'],
      ['fp', 'fp'],
    ]);
    expect(claimTwice.rows).toEqual([
      { o_ord: 1, o_claimed: true, o_state: null },
      { o_ord: 2, o_claimed: false, o_state: 'pending' },
    ]);
    const finish = (keys: string[], statuses: (number | null)[], bodies: (string | null)[]) =>
      call(`SELECT banking_api.finish_idempotency_keys($1, $2, $3, $4, $5::integer[], $6::jsonb[], $7)`, [
        'idem-tenant',
        keys.map(() => 'client-1'),
        keys,
        keys.map(() => 'fp'),
        statuses,
        statuses.map((status) => (status === null ? null : '{}')),
        bodies,
      ]);
    await finish(['twice-c', 'twice-c'], [201, 201], ['first', 'second']);
    await call(`SELECT * FROM banking_api.claim_idempotency_keys($1, $2, $3, $4, 30000, 86400000)`, ['idem-tenant', ['client-1'], ['twice-r'], ['fp']]);
    await finish(['twice-r', 'twice-r'], [null, 201], [null, 'an answer']);
    const rows = await db.admin.query<{ idem_key: string; state: string; response_body: string | null }>(
      `SELECT idem_key, state, response_body FROM banking_api.idempotency_keys WHERE tenant_id = 'idem-tenant' AND idem_key IN ('twice-c', 'twice-r') ORDER BY idem_key`,
    );
    expect(rows.rows).toEqual([
      { idem_key: 'twice-c', state: 'done', response_body: 'first' },
      { idem_key: 'twice-r', state: 'released', response_body: null },
    ]);
  });

  it('an answer is stored only for the claim it belongs to (same fingerprint, still pending)', async () => {
    const keys = store();
    await keys.claim(ref('k5'));
    await keys.finish(ref('k5', 'someone else'), answer);
    expect(await keys.claim(ref('k5'))).toEqual({ kind: 'in_progress' });
    await keys.finish(ref('k5'), answer);
    await keys.finish(ref('k5'), { ...answer, body: 'a second answer' });
    expect(await keys.claim(ref('k5'))).toEqual({ kind: 'replay', response: answer });
  });

  it('an answer is replayed by its own process before it is written; another process reads it once written', async () => {
    const keys = store({ unwrittenAnswersMax: 1 });
    const other = store();
    await keys.claim(ref('w1'));
    await keys.claim(ref('w2'));
    // Hold both rows locked, so that the answers' writes wait.
    const locker = await db.admin.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM banking_api.idempotency_keys WHERE idem_key IN ('w1', 'w2') FOR UPDATE`);
      let written = 0;
      const writes = [keys.finish(ref('w1'), answer), keys.finish(ref('w2'), answer)].map((write) => write.then(() => (written += 1)));
      expect(keys.isBehind()).toBe(true);
      expect(await keys.claim(ref('w1'))).toEqual({ kind: 'replay', response: answer });
      expect(await keys.claim(ref('w1', 'other'))).toEqual({ kind: 'mismatch' });
      await sleep(50);
      expect(written).toBe(0);
      const rows = await db.admin.query<{ state: string }>(`SELECT state FROM banking_api.idempotency_keys WHERE idem_key IN ('w1', 'w2')`);
      expect(rows.rows.map((row) => row.state)).toEqual(['pending', 'pending']);
      await locker.query('COMMIT');
      await Promise.all(writes);
    } finally {
      locker.release();
    }
    expect(keys.isBehind()).toBe(false);
    expect(await other.claim(ref('w1'))).toEqual({ kind: 'replay', response: answer });
    expect(await other.claim(ref('w2', 'other'))).toEqual({ kind: 'mismatch' });
  });

  it('an answer whose write fails is forgotten: the key stays claimed, as after a crash', async () => {
    const keys = store();
    await keys.claim(ref('w3'));
    // PostgreSQL's text cannot hold NUL, so this answer's write fails.
    const failing = keys.finish(ref('w3'), { ...answer, body: 'nul \u0000 here' });
    expect(await keys.claim(ref('w3'))).toEqual({ kind: 'replay', response: { ...answer, body: 'nul \u0000 here' } });
    await expect(failing).rejects.toThrow();
    expect(await keys.claim(ref('w3'))).toEqual({ kind: 'in_progress' });
  });

  it('refuses a bound on unwritten answers outside 1..1,000,000', () => {
    for (const bad of [0, -1, 1.5, UNWRITTEN_ANSWERS_MAX_LIMIT + 1, Number.NaN]) {
      expect(() => new IdempotencyStore({ pool: appPool, leaseMs: 1_000, ttlMs: 60_000, unwrittenAnswersMax: bad })).toThrow(RangeError);
    }
  });
});
