import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CurrencyRegistry, Ledger, type AsOf } from '@ledgerkit/ledger-core';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAudit, type AuditReport } from '../src/audit-cli.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// ledgerkit-audit: the auditor's replay from the PostgreSQL log alone, its report and exit codes.

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const BIN = join(REPO_ROOT, 'packages', 'store-postgres', 'src', 'bin', 'ledgerkit-audit.ts');
const TENANT = 'audited';
const MINUTE = 60_000;
const T0 = Date.parse('2025-03-01T08:00:00.000Z');
const POINTS = { code: 'POINTS', scale: 0 };

let db: TestDatabase;
let ledger: Ledger;
let points: Ledger;
let now = T0;

beforeAll(async () => {
  db = await openTestDatabase();
  const store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  ledger = await Ledger.open({ store, tenantId: TENANT, ledgerId: 'eur', snapshotEveryEvents: 0, clock: () => now });
  await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
  for (const accountId of ['alice', 'bob']) await ledger.openAccount({ accountId, currency: 'EUR', type: 'liability' });
  for (let n = 1; n <= 6; n += 1) {
    now = T0 + n * MINUTE;
    await ledger.transfer({ transferId: `t${n}`, debitAccountId: 'cash', creditAccountId: n % 2 === 0 ? 'alice' : 'bob', amount: `${n}0.00`, currency: 'EUR' });
  }
  now += MINUTE;
  // Recorded now, effective before the first transfer.
  await ledger.transfer({ transferId: 'late', debitAccountId: 'cash', creditAccountId: 'alice', amount: '5.00', currency: 'EUR', effectiveAt: new Date(T0).toISOString() });
  await ledger.hold({ transferId: 'h1', debitAccountId: 'alice', creditAccountId: 'bob', amount: '7.50', currency: 'EUR' });
  // A ledger in a custom asset: unreadable without --currency.
  points = await Ledger.open({ store, tenantId: TENANT, ledgerId: 'points', currencies: new CurrencyRegistry([POINTS]), snapshotEveryEvents: 0 });
  await points.openAccount({ accountId: 'issued', currency: 'POINTS', type: 'equity' });
  await points.openAccount({ accountId: 'carol', currency: 'POINTS', type: 'liability' });
  await points.transfer({ transferId: 'p1', debitAccountId: 'issued', creditAccountId: 'carol', amount: '300', currency: 'POINTS' });
});

afterAll(async () => {
  await ledger?.close();
  await points?.close();
  await db?.close();
});

/** Runs the audit in this process; the report parsed when it printed one. */
async function audit(...args: string[]): Promise<{ code: number; report: AuditReport | undefined; err: string }> {
  let out = '';
  let err = '';
  const code = await runAudit(args, { DATABASE_URL: db.appUrl }, { out: (text) => (out += text), err: (text) => (err += text) });
  return { code, report: out.startsWith('{') ? (JSON.parse(out) as AuditReport) : undefined, err };
}

describe('ledgerkit-audit', () => {
  it('at the head: the whole chain holds, the trial balance and the balances asked for are the ledger\'s own, exit 0', async () => {
    const { code, report, err } = await audit('--tenant', TENANT, '--ledger', 'eur', '--account', 'alice', '--account', 'nobody');
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(report).toEqual({
      tenantId: TENANT,
      ledgerId: 'eur',
      asOf: null,
      chain: { ok: true, eventCount: ledger.version, lastHash: expect.stringMatching(/^[0-9a-f]{64}$/), lastVersion: ledger.version },
      lastIncludedVersion: ledger.version,
      trialBalance: JSON.parse(JSON.stringify(await ledger.trialBalance())),
      balances: { alice: ledger.balance('alice'), nobody: null },
      ok: true,
    });
  });

  it('as of a version, a recorded time and an effective time it answers what Ledger answers by replay', async () => {
    // Versions: 1-3 open the accounts, 4-9 are t1..t6 (one a minute), 10 the back-dated transfer, 11 the hold.
    const cases: [string[], AsOf, number][] = [
      [['--as-of-version', '5'], { ledgerVersion: 5 }, 5],
      [['--as-of-version', String(ledger.version)], { ledgerVersion: ledger.version }, ledger.version],
      [['--as-of-recorded', new Date(T0 + 3 * MINUTE).toISOString()], { recordedAt: new Date(T0 + 3 * MINUTE).toISOString() }, 6],
      // The back-dated transfer counts here, though recorded after every other one; t1 (T0 + 1 min) does not.
      [['--as-of-effective', '2025-03-01T09:00:30+01:00'], { effectiveAt: '2025-03-01T09:00:30+01:00' }, 10],
    ];
    for (const [args, asOf, lastIncluded] of cases) {
      const { code, report } = await audit('--tenant', TENANT, '--ledger', 'eur', '--account', 'alice', ...args);
      expect(code, args.join(' ')).toBe(0);
      expect(report?.asOf).toEqual(asOf);
      expect(report?.chain.ok).toBe(true);
      expect(report?.lastIncludedVersion).toBe(lastIncluded);
      expect(report?.trialBalance).toEqual(JSON.parse(JSON.stringify(await ledger.trialBalance(asOf))));
      expect(report?.balances['alice'] ?? null).toEqual((await ledger.balanceAt('alice', asOf)) ?? null);
    }
    const effective = await audit('--tenant', TENANT, '--ledger', 'eur', '--account', 'alice', '--as-of-effective', '2025-03-01T08:00:30Z');
    expect(effective.report?.balances['alice']?.posted).toBe('5.00');
  });

  it('a ledger in a custom asset needs its --currency; with it, the audit runs', async () => {
    const without = await audit('--tenant', TENANT, '--ledger', 'points');
    expect(without.code).toBe(2);
    expect(without.err).toMatch(/POINTS/);
    const withIt = await audit('--tenant', TENANT, '--ledger', 'points', '--currency', 'POINTS:0', '--account', 'carol');
    expect(withIt.code).toBe(0);
    expect(withIt.report?.balances['carol']?.posted).toBe('300');
  });

  it('bad arguments are refused with the usage text and exit 2, before any connection', async () => {
    const bad: string[][] = [
      ['--ledger', 'eur'],
      ['--tenant', TENANT],
      ['--tenant', TENANT, '--ledger', 'eur', '--as-of-version', '3', '--as-of-effective', '2025-03-01T00:00:00Z'],
      ['--tenant', TENANT, '--ledger', 'eur', '--as-of-version', '-3'],
      ['--tenant', TENANT, '--ledger', 'eur', '--as-of-recorded', '2025-03-01T00:00:00'],
      ['--tenant', TENANT, '--ledger', 'eur', '--currency', 'POINTS'],
      ['--tenant', TENANT, '--ledger', 'eur', '--accounts-max', '0'],
      ['--tenant', TENANT, '--ledger', 'eur', '--surprise'],
    ];
    for (const args of bad) {
      const { code, report, err } = await audit(...args);
      expect(code, args.join(' ')).toBe(2);
      expect(report).toBeUndefined();
      expect(err).toMatch(/usage: ledgerkit-audit/);
    }
    let err = '';
    expect(await runAudit(['--tenant', TENANT, '--ledger', 'eur'], {}, { out: () => undefined, err: (text) => (err += text) })).toBe(2);
    expect(err).toMatch(/DATABASE_URL/);
  });

  it('a ledger with no events the role can read (a wrong tenant or ledger id) and a version past the head are exit 2, never an empty balanced ledger', async () => {
    for (const args of [
      ['--tenant', 'someone-else', '--ledger', 'eur'],
      ['--tenant', TENANT, '--ledger', 'eur-typo'],
    ]) {
      const { code, report, err } = await audit(...args);
      expect(code, args.join(' ')).toBe(2);
      expect(report).toBeUndefined();
      expect(err).toMatch(/has no events in ledger .* that this role can read: check --tenant and --ledger/);
    }
    const past = await audit('--tenant', TENANT, '--ledger', 'eur', '--as-of-version', String(ledger.version + 1));
    expect(past.code).toBe(2);
    expect(past.report).toBeUndefined();
    expect(past.err).toContain(`--as-of-version ${ledger.version + 1} is past the ledger's head, version ${ledger.version}`);
  });

  it('a role that escapes row-level security is refused (exit 2); more accounts than --accounts-max too', async () => {
    let err = '';
    const code = await runAudit(['--tenant', TENANT, '--ledger', 'eur', '--database-url', db.adminUrl], {}, { out: () => undefined, err: (text) => (err += text) });
    expect(code).toBe(2);
    expect(err).toMatch(/application role/);
    const many = await audit('--tenant', TENANT, '--ledger', 'eur', '--accounts-max', '2');
    expect(many.code).toBe(2);
    // Refused as the third account opens (version 3), not after the whole ledger was loaded.
    expect(many.err).toMatch(/more than 2 accounts at version 3: more than --accounts-max/);
  });

  it('the command itself exits with the verdict: 0, then 1 once an event was changed behind the chain\'s back', async () => {
    const run = (): Promise<{ code: number | null; out: string }> =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', BIN, '--tenant', TENANT, '--ledger', 'eur'], {
          cwd: REPO_ROOT,
          env: { ...process.env, TSX_TSCONFIG_PATH: join(REPO_ROOT, 'tsconfig.json'), DATABASE_URL: db.appUrl },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        child.once('error', reject);
        child.once('close', (code) => resolve({ code, out }));
      });
    const before = await run();
    expect(before.code).toBe(0);
    expect((JSON.parse(before.out) as AuditReport).ok).toBe(true);
    // Only a superuser with the append-only trigger switched off can do this; the chain shows it.
    await db.admin.query('ALTER TABLE ledgerkit.events DISABLE TRIGGER append_only_rows');
    try {
      const changed = await db.admin.query(
        `UPDATE ledgerkit.events SET data = replace(data::text, '"amount":"40.00"', '"amount":"40.01"')::json
          WHERE tenant_id = $1 AND ledger_id = 'eur' AND ledger_version = 7 RETURNING data::text AS data`,
        [TENANT],
      );
      expect(changed.rows).toHaveLength(1);
      expect(changed.rows[0].data).toContain('"amount":"40.01"');
    } finally {
      await db.admin.query('ALTER TABLE ledgerkit.events ENABLE TRIGGER append_only_rows');
    }
    const after = await run();
    expect(after.code).toBe(1);
    const report = JSON.parse(after.out) as AuditReport;
    expect(report.chain).toMatchObject({ ok: false, eventCount: 6, brokenAt: { ledgerVersion: 7, reason: 'hash_mismatch' } });
    expect(report.trialBalance).toBeNull();
    expect(report.ok).toBe(false);
  }, 60_000);
});
