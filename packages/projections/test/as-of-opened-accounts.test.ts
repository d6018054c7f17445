import type { AsOf, Ledger } from '@ledgerkit/ledger-core';
import { ReadModels, ResultTooLargeError } from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import type { ClientPool } from '@ledgerkit/tenant-rls';
import type { PoolClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HISTORY_KEYED_SQL } from '../src/read-models/history.js';
import { currencies, FIXTURE_ACCOUNTS, openFixtureLedger, projectToEnd, writeTransfers } from './support/fixtures.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// A trial balance, or every balance, "as of" a point takes the accounts opened by then and looks
// at no other. Before, the statement probed every account of the ledger for its status at the
// point and only then left out the ones not opened yet: with many accounts opened after the point,
// an answer of a few lines (or none) cost a probe per account of the ledger, and `linesMax` bounded
// none of it. The work is counted from the statement's own plan (EXPLAIN ANALYZE: rows each scan
// returned or filtered out, and how many times each lateral probe ran), not timed.

const TENANT = 'asof-opened';
const T0 = Date.parse('2025-01-01T00:00:00.000Z');
/** When the late accounts open, months after the fixture ledger's first entries. */
const T1 = Date.parse('2025-06-01T00:00:00.000Z');
const MINUTE = 60_000;
/** Accounts opened at T1, each by its own event: far more than any answer below may look at. */
const LATE = 2_000;
const LINES_MAX = 10;
const late = (n: number): string => `late-${String(n).padStart(4, '0')}`;

let db: TestDatabase;
let ledger: Ledger;
let models: ReadModels;
/** The statements ReadModels sent that read rm_accounts, with their parameters. */
const sent: { text: string; values: unknown[] }[] = [];
/** Ledger version of the last event before the late accounts. */
let versionBeforeLate: number;

/** `pool` whose connections record every statement that reads rm_accounts, with its parameters. */
function recordingPool(pool: ClientPool): ClientPool {
  return {
    connect: async () => {
      const client = await pool.connect();
      return new Proxy(client, {
        get(target, property) {
          if (property === 'query') {
            return (...args: unknown[]) => {
              const [text, values] = args;
              if (typeof text === 'string' && text.includes('rm_accounts')) sent.push({ text, values: values as unknown[] });
              return (target.query as (...rest: unknown[]) => unknown).apply(target, args);
            };
          }
          const value: unknown = Reflect.get(target, property, target);
          return typeof value === 'function' ? (value as (...rest: unknown[]) => unknown).bind(target) : value;
        },
      }) as PoolClient;
    },
  };
}

beforeAll(async () => {
  db = await openTestDatabase();
  const store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: recordingPool(db.app), currencies });
  let now = T0;
  ledger = await openFixtureLedger(store, TENANT, 'eur', () => now);
  now = T0 + MINUTE;
  await writeTransfers(ledger, 't', 3);
  // Back-dated to between the openings and the transfers: on an effective-time basis too, no
  // account is there before it was opened.
  now = T0 + 2 * MINUTE;
  expect(await ledger.transfer({ transferId: 'late-dated', debitAccountId: 'cash', creditAccountId: 'bob', amount: '2.00', currency: 'EUR', effectiveAt: new Date(T0 + MINUTE / 2).toISOString() })).toMatchObject({ ok: true });
  versionBeforeLate = ledger.version;
  now = T1;
  for (let start = 0; start < LATE; start += 200) {
    const opened = await Promise.all(
      Array.from({ length: Math.min(200, LATE - start) }, (_, n) => ledger.openAccount({ accountId: late(start + n), currency: 'EUR', type: 'liability' })),
    );
    for (const result of opened) expect(result).toMatchObject({ ok: true });
  }
  now = T1 + MINUTE;
  expect(await ledger.transfer({ transferId: 'to-late', debitAccountId: 'cash', creditAccountId: late(0), amount: '5.00', currency: 'EUR' })).toMatchObject({ ok: true });
  await projectToEnd(db.app, store, [TENANT]);
  await db.admin.query('ANALYZE');
}, 300_000);

afterAll(async () => {
  await ledger?.close();
  await db?.close();
});

interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Relation Name'?: string;
  readonly 'Index Name'?: string;
  readonly 'Actual Rows': number;
  readonly 'Actual Loops': number;
  readonly 'Rows Removed by Filter'?: number;
  readonly 'Rows Removed by Index Recheck'?: number;
  readonly Plans?: readonly PlanNode[];
}

/** What a statement did to each read-model table: rows its scans produced or filtered out, and how many times they ran. */
interface Work {
  readonly rows: Map<string, number>;
  readonly scans: Map<string, number>;
}

function workOf(node: PlanNode, work: Work = { rows: new Map(), scans: new Map() }): Work {
  const relation = node['Relation Name'];
  if (relation !== undefined) {
    const loops = node['Actual Loops'];
    const rows = (node['Actual Rows'] + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) * loops;
    work.rows.set(relation, (work.rows.get(relation) ?? 0) + rows);
    work.scans.set(relation, (work.scans.get(relation) ?? 0) + loops);
  }
  for (const child of node.Plans ?? []) workOf(child, work);
  return work;
}

/** The last statement ReadModels sent that read rm_accounts, run again under EXPLAIN ANALYZE as the application role, in the tenant. */
async function workOfLastStatement(database: TestDatabase = db): Promise<Work> {
  const statement = sent[sent.length - 1];
  if (statement === undefined) throw new Error('no statement read rm_accounts');
  const client = await database.app.connect();
  try {
    await client.query('BEGIN READ ONLY');
    await client.query(`SELECT set_config('ledgerkit.tenant_id', $1, true)`, [TENANT]);
    const { rows } = await client.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement.text}`, statement.values);
    return workOf((rows[0]?.['QUERY PLAN'][0] as { Plan: PlanNode }).Plan);
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

/**
 * The accounts' rows read (returned or filtered out), and the per-account probes of their status
 * and entries, are within `bound`: a bound on the answer, not on the ledger. (How many rows one
 * probe of the entries reads depends on the plan the planner picks for a table this small.)
 */
function expectBounded(work: Work, bound: number, what: string): void {
  expect(work.rows.get('rm_accounts') ?? 0, `${what}: rows of rm_accounts read`).toBeLessThanOrEqual(bound);
  for (const table of ['rm_accounts', 'rm_account_states', 'rm_account_entries']) {
    expect(work.scans.get(table) ?? 0, `${what}: scans or probes of ${table}`).toBeLessThanOrEqual(bound);
  }
}

const show = (asOf: AsOf): string => JSON.stringify(asOf);

describe('as of a point, the accounts opened after it are not looked at', () => {
  const before = (): AsOf[] => [
    { ledgerVersion: versionBeforeLate },
    { recordedAt: new Date(T1 - 1).toISOString() },
    { effectiveAt: new Date(T1 - 1).toISOString() },
    { ledgerVersion: 0 },
    { recordedAt: '0001-01-01T00:00:00Z' },
    { effectiveAt: '0001-01-01T00:00:00Z' },
  ];

  it('a trial balance before the late accounts answers as replay, reading no more rows than linesMax + 1', async () => {
    for (const asOf of before()) {
      expect(await models.trialBalance(TENANT, 'eur', asOf, { linesMax: LINES_MAX }), show(asOf)).toEqual(await ledger.trialBalance(asOf));
      expectBounded(await workOfLastStatement(), LINES_MAX + 1, `trialBalance ${show(asOf)}`);
    }
  });

  it('every balance before the late accounts answers as replay, reading no more rows than linesMax + 1', async () => {
    for (const asOf of before()) {
      const expected = [];
      for (const accountId of FIXTURE_ACCOUNTS) {
        const balance = await ledger.balanceAt(accountId, asOf);
        if (balance !== undefined) expected.push(balance);
      }
      expected.sort((a, b) => (a.accountId < b.accountId ? -1 : 1));
      expect(await models.balancesAt(TENANT, 'eur', asOf, { linesMax: LINES_MAX }), show(asOf)).toEqual(expected);
      expectBounded(await workOfLastStatement(), LINES_MAX + 1, `balancesAt ${show(asOf)}`);
    }
  });

  it('part-way through the late openings (by ledger version), exactly the accounts opened by the point', async () => {
    const opened = 5;
    // Each late account was opened by its own event, in id order, all recorded (and effective) at T1.
    const asOf: AsOf = { ledgerVersion: versionBeforeLate + opened };
    const trial = await models.trialBalance(TENANT, 'eur', asOf, { linesMax: LINES_MAX });
    expect(trial).toEqual(await ledger.trialBalance(asOf));
    expect(trial.lines.map((line) => line.accountId).filter((id) => id.startsWith('late-'))).toEqual(Array.from({ length: opened }, (_, n) => late(n)));
    expectBounded(await workOfLastStatement(), LINES_MAX + 1, `trialBalance ${show(asOf)}`);
  });

  it('after the late accounts, more than linesMax is refused having read linesMax + 1 accounts, not the ledger', async () => {
    for (const asOf of [{ ledgerVersion: ledger.version }, { recordedAt: '9999-12-31T23:59:59.999Z' }, { effectiveAt: new Date(T1).toISOString() }] as AsOf[]) {
      await expect(models.trialBalance(TENANT, 'eur', asOf, { linesMax: LINES_MAX }), show(asOf)).rejects.toBeInstanceOf(ResultTooLargeError);
      expectBounded(await workOfLastStatement(), LINES_MAX + 1, `trialBalance ${show(asOf)}`);
      await expect(models.balancesAt(TENANT, 'eur', asOf, { linesMax: LINES_MAX }), show(asOf)).rejects.toBeInstanceOf(ResultTooLargeError);
      expectBounded(await workOfLastStatement(), LINES_MAX + 1, `balancesAt ${show(asOf)}`);
    }
    // And with room for them all, every account, as replay has them.
    const asOf: AsOf = { effectiveAt: new Date(T1 + MINUTE).toISOString() };
    const trial = await models.trialBalance(TENANT, 'eur', asOf, { linesMax: LATE + FIXTURE_ACCOUNTS.length });
    expect(trial.lines).toHaveLength(LATE + FIXTURE_ACCOUNTS.length);
    expect(trial).toEqual(await ledger.trialBalance(asOf));
  });

  it('one account as of a point before its opening is not there; after it, as replay', async () => {
    for (const asOf of [...before(), { ledgerVersion: ledger.version }, { recordedAt: new Date(T1).toISOString() }, { effectiveAt: new Date(T1 + MINUTE).toISOString() }] as AsOf[]) {
      expect(await models.balanceAt(TENANT, 'eur', late(0), asOf), show(asOf)).toEqual(await ledger.balanceAt(late(0), asOf));
      expectBounded(await workOfLastStatement(), 1, `balanceAt ${show(asOf)}`);
    }
  });
});

describe('the opening indexes, on a database never analysed', () => {
  // Without statistics the planner rates every index led by (tenant_id, ledger_id) alike for a
  // lookup by account id: the opening indexes are partial on conditions only the as-of reads
  // state, so that no lookup by key (the history projection's, every batch) scans one instead of
  // probing the primary key.
  let fresh: TestDatabase;

  beforeAll(async () => {
    fresh = await openTestDatabase();
    await fresh.admin.query(`INSERT INTO ledgerkit.rm_accounts SELECT $1, 'eur', 'acc-' || g, 'EUR', 'asset', false, false, '{}', g,
      now(), now() - g * interval '1 minute', 'open' FROM generate_series(1, ${LATE}) AS g`, [TENANT]);
    await fresh.admin.query(`INSERT INTO ledgerkit.rm_account_states SELECT $1, 'eur', 'acc-' || g, g, now(), now() - g * interval '1 minute', 'open'
      FROM generate_series(1, ${LATE}) AS g`, [TENANT]);
  });

  afterAll(async () => {
    await fresh?.close();
  });

  /** The indexes each scan of rm_accounts used, under EXPLAIN ANALYZE with the given plan cache mode. */
  async function accountIndexes(sql: string, values: unknown[], mode: 'force_custom_plan' | 'force_generic_plan'): Promise<string[]> {
    const client = await fresh.app.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SELECT set_config('ledgerkit.tenant_id', $1, true)`, [TENANT]);
      await client.query(`SET LOCAL plan_cache_mode = ${mode}`);
      await client.query(`PREPARE lookup AS ${sql}`);
      const literal = (value: unknown): string =>
        Array.isArray(value) ? `ARRAY[${value.map(literal).join(', ')}]::text[]` : client.escapeLiteral(String(value));
      const { rows } = await client.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE lookup(${values.map(literal).join(', ')})`);
      const found: string[] = [];
      const walk = (node: PlanNode): void => {
        if (node['Relation Name'] === 'rm_accounts') found.push(node['Index Name'] ?? node['Node Type']);
        for (const child of node.Plans ?? []) walk(child);
      };
      walk((rows[0]?.['QUERY PLAN'][0] as { Plan: PlanNode }).Plan);
      return found;
    } finally {
      await client.query('ROLLBACK');
      await client.query('DEALLOCATE ALL');
      client.release();
    }
  }

  it('a lookup of accounts by key probes the primary key', async () => {
    const lookups: [string, unknown[]][] = [
      [HISTORY_KEYED_SQL[0] as string, [TENANT, ['eur', 'eur'], ['acc-5', 'acc-1999']]],
      [`SELECT currency, account_type FROM ledgerkit.rm_accounts WHERE tenant_id = $1 AND ledger_id = $2 AND account_id = $3`, [TENANT, 'eur', 'acc-5']],
    ];
    for (const [sql, values] of lookups) {
      for (const mode of ['force_custom_plan', 'force_generic_plan'] as const) {
        expect(await accountIndexes(sql, values, mode), `${mode}: ${sql.slice(0, 60)}`).toEqual(expect.arrayContaining(['rm_accounts_pkey']));
        expect((await accountIndexes(sql, values, mode)).every((index) => index === 'rm_accounts_pkey'), `${mode}: ${sql.slice(0, 60)}`).toBe(true);
      }
    }
  });

  it('an as-of read still reads no more accounts than linesMax + 1', async () => {
    const freshModels = new ReadModels({ pool: recordingPool(fresh.app), currencies });
    for (const asOf of [{ ledgerVersion: 5 }, { effectiveAt: '2000-01-01T00:00:00Z' }] as AsOf[]) {
      expect((await freshModels.balancesAt(TENANT, 'eur', asOf, { linesMax: LINES_MAX })).length, show(asOf)).toBeLessThanOrEqual(5);
      expectBounded(await workOfLastStatement(fresh), LINES_MAX + 1, `balancesAt ${show(asOf)}`);
    }
    for (const asOf of [{ ledgerVersion: LATE }, { effectiveAt: new Date().toISOString() }] as AsOf[]) {
      await expect(freshModels.trialBalance(TENANT, 'eur', asOf, { linesMax: LINES_MAX }), show(asOf)).rejects.toBeInstanceOf(ResultTooLargeError);
      expectBounded(await workOfLastStatement(fresh), LINES_MAX + 1, `trialBalance ${show(asOf)}`);
    }
  });
});
