import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CurrencyRegistry, hashEvent, Ledger, type AsOf, type StoredEvent } from '@ledgerkit/ledger-core';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runAudit, UPCASTERS_LOAD_TIMEOUT_MS_MAX, type AuditReport } from '../src/audit-cli.js';
import { REFUSED_MESSAGE } from './support/audit-upcasters-refusing.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// ledgerkit-audit: the auditor's replay from the PostgreSQL log alone, its report and exit codes.

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const BIN = join(REPO_ROOT, 'packages', 'store-postgres', 'src', 'bin', 'ledgerkit-audit.ts');
const TENANT = 'audited';
const MINUTE = 60_000;
const T0 = Date.parse('2025-03-01T08:00:00.000Z');
const POINTS = { code: 'POINTS', scale: 0 };
const SUPPORT = join(dirname(fileURLToPath(import.meta.url)), 'support');

let db: TestDatabase;
let ledger: Ledger;
let points: Ledger;
let now = T0;
/** Modules written for `--upcasters`, removed after the file. */
let modules: string;

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
  // A ledger whose last event is a TransferPosted at schema version 1, read through the built-in step.
  const legacy = await Ledger.open({ store, tenantId: TENANT, ledgerId: 'legacy', snapshotEveryEvents: 0, clock: () => now });
  await legacy.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
  await legacy.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability' });
  await legacy.close();
  const [head] = await store.readStream({ tenantId: TENANT, ledgerId: 'legacy', direction: 'backward', limit: 1 });
  if (head === undefined) throw new Error('the legacy ledger is empty');
  const { hash: previousHash, ...envelope } = head;
  const v1: Omit<StoredEvent, 'hash'> = {
    ...envelope,
    eventId: 'legacy-1',
    ledgerVersion: 3,
    type: 'TransferPosted',
    schemaVersion: 1,
    data: { transferId: 'legacy-t1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '5.00', currency: 'EUR', metadata: {} },
    previousHash,
  };
  await store.append({ tenantId: TENANT, ledgerId: 'legacy', expectedVersion: 2, events: [{ ...v1, hash: hashEvent(v1) }] });
  modules = await mkdtemp(join(tmpdir(), 'audit-upcasters-'));
});

afterAll(async () => {
  await ledger?.close();
  await points?.close();
  await db?.close();
  if (modules !== undefined) await rm(modules, { recursive: true, force: true });
});

/** Writes an ES module for `--upcasters` and returns its path. */
async function upcastersModule(name: string, source: string): Promise<string> {
  const path = join(modules, name);
  await writeFile(path, source);
  return path;
}

/** Runs the command itself, as an auditor would (under tsx, from the sources). */
function runCommand(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, TSX_TSCONFIG_PATH: join(REPO_ROOT, 'tsconfig.json'), DATABASE_URL: db.appUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out, err }));
  });
}

/** Opens a ledger of two accounts, cash and `customer`, with one transfer of 10.00 to `customer` (versions 1-3). */
async function threeEvents(ledgerId: string, customer: string): Promise<Ledger> {
  const store = await PostgresEventStore.open({ pool: db.app });
  const opened = await Ledger.open({ store, tenantId: TENANT, ledgerId, snapshotEveryEvents: 0, clock: () => now });
  await opened.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
  await opened.openAccount({ accountId: customer, currency: 'EUR', type: 'liability' });
  await opened.transfer({ transferId: `${customer}-1`, debitAccountId: 'cash', creditAccountId: customer, amount: '10.00', currency: 'EUR' });
  return opened;
}

/** Runs `sql` as the superuser with the append-only trigger off: what only such a role can do to the log. */
async function behindTheChain(sql: string): Promise<number> {
  await db.admin.query('ALTER TABLE ledgerkit.events DISABLE TRIGGER append_only_rows');
  try {
    return (await db.admin.query(sql, [TENANT])).rowCount ?? 0;
  } finally {
    await db.admin.query('ALTER TABLE ledgerkit.events ENABLE TRIGGER append_only_rows');
  }
}

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
      head: { recordedVersion: ledger.version, reached: true },
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
      // An option given twice: a script's leftover flag must not silently pick what is audited.
      ['--tenant', 'someone-else', '--tenant', TENANT, '--ledger', 'eur'],
      ['--tenant', TENANT, '--ledger', 'eur', '--as-of-version', '2', '--as-of-version', '5'],
      ['--tenant', TENANT, '--ledger', 'eur', '--connect-timeout-ms', '0'],
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

  it('events deleted from the end of a stream (a chain that still holds, but short of the head the database records) fail the audit, exit 1', async () => {
    const store = await PostgresEventStore.open({ pool: db.app });
    const truncated = await Ledger.open({ store, tenantId: TENANT, ledgerId: 'truncated', snapshotEveryEvents: 0, clock: () => now });
    await truncated.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
    await truncated.openAccount({ accountId: 'dave', currency: 'EUR', type: 'liability' });
    await truncated.transfer({ transferId: 'd1', debitAccountId: 'cash', creditAccountId: 'dave', amount: '10.00', currency: 'EUR' });
    await truncated.transfer({ transferId: 'd2', debitAccountId: 'cash', creditAccountId: 'dave', amount: '20.00', currency: 'EUR' });
    await truncated.close();
    const whole = await audit('--tenant', TENANT, '--ledger', 'truncated');
    expect(whole).toMatchObject({ code: 0, report: { ok: true, head: { recordedVersion: 4, reached: true } } });
    await db.admin.query('ALTER TABLE ledgerkit.events DISABLE TRIGGER append_only_rows');
    try {
      await db.admin.query(`DELETE FROM ledgerkit.events WHERE tenant_id = $1 AND ledger_id = 'truncated' AND ledger_version = 4`, [TENANT]);
    } finally {
      await db.admin.query('ALTER TABLE ledgerkit.events ENABLE TRIGGER append_only_rows');
    }
    const cut = await audit('--tenant', TENANT, '--ledger', 'truncated');
    expect(cut.code).toBe(1);
    expect(cut.report).toMatchObject({ ok: false, chain: { ok: true, lastVersion: 3 }, head: { recordedVersion: 4, reached: false } });
  });

  it('--as-of-version between the last surviving event and the head the database records is exit 1 with the report (reached: false), past both exit 2', async () => {
    const store = await PostgresEventStore.open({ pool: db.app });
    const cut = await Ledger.open({ store, tenantId: TENANT, ledgerId: 'cut-tail', snapshotEveryEvents: 0, clock: () => now });
    await cut.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
    await cut.openAccount({ accountId: 'erin', currency: 'EUR', type: 'liability' });
    for (const transferId of ['e1', 'e2', 'e3']) await cut.transfer({ transferId, debitAccountId: 'cash', creditAccountId: 'erin', amount: '1.00', currency: 'EUR' });
    await cut.close();
    await db.admin.query('ALTER TABLE ledgerkit.events DISABLE TRIGGER append_only_rows');
    try {
      await db.admin.query(`DELETE FROM ledgerkit.events WHERE tenant_id = $1 AND ledger_id = 'cut-tail' AND ledger_version >= 4`, [TENANT]);
    } finally {
      await db.admin.query('ALTER TABLE ledgerkit.events ENABLE TRIGGER append_only_rows');
    }
    const below = await audit('--tenant', TENANT, '--ledger', 'cut-tail', '--as-of-version', '3');
    expect(below).toMatchObject({ code: 1, report: { ok: false, lastIncludedVersion: 3, head: { recordedVersion: 5, reached: false } } });
    for (const version of ['4', '5']) {
      const { code, report, err } = await audit('--tenant', TENANT, '--ledger', 'cut-tail', '--as-of-version', version);
      expect(err, version).toBe('');
      expect(code, version).toBe(1);
      expect(report, version).toMatchObject({
        asOf: { ledgerVersion: Number(version) },
        chain: { ok: true, lastVersion: 3 },
        head: { recordedVersion: 5, reached: false },
        lastIncludedVersion: null,
        trialBalance: null,
        ok: false,
      });
    }
    const past = await audit('--tenant', TENANT, '--ledger', 'cut-tail', '--as-of-version', '6');
    expect(past.code).toBe(2);
    expect(past.report).toBeUndefined();
    expect(past.err).toContain("--as-of-version 6 is past the ledger's head, version 5");
  });

  it('a database URL that is not a postgres: or postgresql: URL (a libpq keyword string, no scheme) is a usage error, exit 2, that never shows the value', async () => {
    const secret = 'Sup3rSecretPassw0rd';
    const values = [`host=127.0.0.1 user=x password=${secret} dbname=y`, `user:${secret}@127.0.0.1/x`, `http://u:${secret}@127.0.0.1/x`, `${secret}`];
    for (const value of values) {
      for (const [args, env, source] of [
        [['--database-url', value], {}, '--database-url'],
        [[], { DATABASE_URL: value }, 'DATABASE_URL'],
      ] as const) {
        let out = '';
        let err = '';
        const code = await runAudit(['--tenant', TENANT, '--ledger', 'eur', ...args], env, { out: (text) => (out += text), err: (text) => (err += text) });
        expect(code, `${source}: ${value}`).toBe(2);
        expect(out).toBe('');
        expect(err, value).toMatch(new RegExp(`^${source} must be a URL with the scheme postgres: or postgresql:.*\\n\\nusage: ledgerkit-audit`));
        expect(err, value).not.toContain(secret);
      }
    }
    // Both schemes node-postgres reads are accepted.
    const postgresql = new URL(db.appUrl);
    postgresql.protocol = 'postgresql:';
    let err = '';
    expect(await runAudit(['--tenant', TENANT, '--ledger', 'eur', '--database-url', postgresql.toString()], {}, { out: () => undefined, err: (text) => (err += text) })).toBe(0);
    expect(err).toBe('');
  });

  it('--expect-head-hash: passes while the event of an earlier report\'s head hash is in the verified chain, fails (exit 1) once it is not, even when every hash after a rewrite was recomputed', async () => {
    const store = await PostgresEventStore.open({ pool: db.app });
    const anchored = await Ledger.open({ store, tenantId: TENANT, ledgerId: 'anchored', snapshotEveryEvents: 0, clock: () => now });
    await anchored.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
    await anchored.openAccount({ accountId: 'fred', currency: 'EUR', type: 'liability' });
    await anchored.transfer({ transferId: 'f1', debitAccountId: 'cash', creditAccountId: 'fred', amount: '10.00', currency: 'EUR' });
    const earlier = await audit('--tenant', TENANT, '--ledger', 'anchored');
    expect(earlier.code).toBe(0);
    const kept = earlier.report?.chain.ok === true ? earlier.report.chain.lastHash : '';
    expect(kept).toMatch(/^[0-9a-f]{64}$/);
    // The ledger grew since: the hash is that of an event below the head, still in the chain.
    await anchored.transfer({ transferId: 'f2', debitAccountId: 'cash', creditAccountId: 'fred', amount: '20.00', currency: 'EUR' });
    await anchored.close();
    for (const given of [kept, kept.toUpperCase()]) {
      const later = await audit('--tenant', TENANT, '--ledger', 'anchored', '--expect-head-hash', given);
      expect(later.err).toBe('');
      expect(later.code).toBe(0);
      expect(later.report).toMatchObject({ ok: true, chain: { ok: true, lastVersion: 4 }, expectedHeadHash: { hash: kept, found: true, ledgerVersion: 3 } });
    }
    const absent = await audit('--tenant', TENANT, '--ledger', 'anchored', '--expect-head-hash', 'ab'.repeat(32));
    expect(absent.code).toBe(1);
    expect(absent.report).toMatchObject({ ok: false, chain: { ok: true }, head: { reached: true }, expectedHeadHash: { hash: 'ab'.repeat(32), found: false, ledgerVersion: null } });
    // A superuser rewrites event 3 and recomputes every hash from it on: the chain holds again.
    const events = await store.readStream({ tenantId: TENANT, ledgerId: 'anchored', direction: 'forward', limit: 10 });
    let previousHash = events[1]?.hash ?? '';
    await db.admin.query('ALTER TABLE ledgerkit.events DISABLE TRIGGER append_only_rows');
    try {
      for (const event of events.slice(2)) {
        const data = event.ledgerVersion === 3 ? (JSON.parse(JSON.stringify(event.data).replaceAll('"amount":"10.00"', '"amount":"11.00"')) as typeof event.data) : event.data;
        const { hash: _old, ...content } = { ...event, data, previousHash };
        const hash = hashEvent(content);
        await db.admin.query(`UPDATE ledgerkit.events SET data = $4::json, previous_hash = $5, hash = $6 WHERE tenant_id = $1 AND ledger_id = $2 AND ledger_version = $3`, [
          TENANT,
          'anchored',
          event.ledgerVersion,
          JSON.stringify(data),
          previousHash,
          hash,
        ]);
        previousHash = hash;
      }
    } finally {
      await db.admin.query('ALTER TABLE ledgerkit.events ENABLE TRIGGER append_only_rows');
    }
    const rewritten = await audit('--tenant', TENANT, '--ledger', 'anchored', '--account', 'fred');
    expect(rewritten.err).toBe('');
    expect(rewritten).toMatchObject({ code: 0, report: { ok: true, chain: { ok: true }, balances: { fred: { posted: '31.00' } } } });
    const caught = await audit('--tenant', TENANT, '--ledger', 'anchored', '--expect-head-hash', kept);
    expect(caught.code).toBe(1);
    expect(caught.report).toMatchObject({ ok: false, chain: { ok: true }, expectedHeadHash: { hash: kept, found: false, ledgerVersion: null } });
  });

  it('--expect-head-hash: a value that is not 64 hex digits is a usage error, exit 2, before any connection; --help describes it', async () => {
    for (const bad of ['', 'abc', 'g'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), ` ${'a'.repeat(64)}`]) {
      let out = '';
      let err = '';
      const code = await runAudit(['--tenant', TENANT, '--ledger', 'eur', `--expect-head-hash=${bad}`], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/nowhere' }, { out: (text) => (out += text), err: (text) => (err += text) });
      expect(code, JSON.stringify(bad)).toBe(2);
      expect(out).toBe('');
      expect(err, JSON.stringify(bad)).toMatch(/^--expect-head-hash must be an event hash: 64 hex digits.*\n\nusage: ledgerkit-audit/);
    }
    let usage = '';
    expect(await runAudit(['--help'], {}, { out: (text) => (usage += text), err: () => undefined })).toBe(0);
    expect(usage).toMatch(/--expect-head-hash <hash> +the chain\.lastHash of an earlier report/);
  });

  it('the command whose reader closes the pipe early (| head) ends with the verdict as its exit code, not an unhandled EPIPE', async () => {
    const outcome = await new Promise<{ code: number | null; err: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', BIN, '--tenant', TENANT, '--ledger', 'eur'], {
        cwd: REPO_ROOT,
        env: { ...process.env, TSX_TSCONFIG_PATH: join(REPO_ROOT, 'tsconfig.json'), DATABASE_URL: db.appUrl },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      // The reader is gone before the report is written.
      child.stdout.destroy();
      let err = '';
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, err }));
    });
    expect(outcome.err).not.toMatch(/EPIPE|Error/);
    expect(outcome.code).toBe(0);
  }, 60_000);

  it('a server that accepts the connection and never answers is exit 2 once --connect-timeout-ms has passed, not a hang', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      let err = '';
      const code = await runAudit(['--tenant', TENANT, '--ledger', 'eur', '--connect-timeout-ms', '300'], { DATABASE_URL: `postgres://u:pw@127.0.0.1:${port}/db` }, { out: () => undefined, err: (text) => (err += text) });
      expect(code).toBe(2);
      expect(err).toMatch(/^ledgerkit-audit: .*timeout/i);
    } finally {
      silent.close();
    }
  }, 30_000);

  it('the command itself exits with the verdict: 0, then 1 once an event was changed behind the chain\'s back', async () => {
    const run = (): Promise<{ code: number | null; out: string }> => runCommand('--tenant', TENANT, '--ledger', 'eur');
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

  it('--upcasters: with a registry of the user\'s own steps, in each form a module may give it, the built-in steps still apply (a v1 TransferPosted reads)', async () => {
    const functionForm = await upcastersModule(
      'registers.mjs',
      `export default function (registry) { registry.register('AccountFrozen', 1, (data) => ({ ...data, reason: data.reason ?? 'unspecified' })); }\n`,
    );
    const returnsIt = await upcastersModule('returns.mjs', `export const upcasters = (registry) => registry.register('AccountUnfrozen', 1, (data) => data);\n`);
    const expected = { cash: { posted: '5.00' }, alice: { posted: '5.00' } };
    for (const module of [join(SUPPORT, 'audit-upcasters.ts'), functionForm, returnsIt]) {
      const { code, report, err } = await audit('--tenant', TENANT, '--ledger', 'legacy', '--upcasters', module, '--account', 'cash', '--account', 'alice');
      expect(err, module).toBe('');
      expect(code, module).toBe(0);
      expect(report?.lastIncludedVersion, module).toBe(3);
      expect(report?.balances, module).toMatchObject(expected);
    }
  });

  it('--upcasters: the audit reads every event with the registry the module gives', async () => {
    const { code, report, err } = await audit('--tenant', TENANT, '--ledger', 'legacy', '--upcasters', join(SUPPORT, 'audit-upcasters-refusing.ts'));
    expect(code).toBe(2);
    expect(report).toBeUndefined();
    expect(err).toContain(REFUSED_MESSAGE);
  });

  it('--upcasters: a module that gives no usable registry is exit 2, with a message naming the module and the problem, before any connection', async () => {
    const directory = join(modules, 'a-directory.mjs');
    await mkdir(directory, { recursive: true });
    const cases: [string, RegExp][] = [
      [join(modules, 'missing.mjs'), /no such file/],
      [directory, /no such file/],
      [await upcastersModule('throws.mjs', `throw new Error('cannot load this');\n`), /could not be loaded: .*cannot load this/],
      [await upcastersModule('neither.mjs', `export const steps = 1;\n`), /exports neither a default export nor `upcasters`/],
      [await upcastersModule('number.mjs', `export default 42;\n`), /must be an UpcasterRegistry or a function that registers steps/],
      [await upcastersModule('both.mjs', `export default () => {};\nexport const upcasters = () => {};\n`), /both a default export and `upcasters`/],
      [await upcastersModule('owned.mjs', `export default (registry) => { registry.register('TransferPosted', 1, (data) => data); };\n`), /TransferPosted v1 → v2 is a built-in step/],
      [await upcastersModule('returns-other.mjs', `export default () => 42;\n`), /must return nothing or an UpcasterRegistry/],
      [await upcastersModule('copy.mjs', `export default { register() { return this; }, upcast(type, from, to, data) { return data; } };\n`), /UpcasterRegistry is not this command's .*another copy of @ledgerkit\/ledger-core/],
      [await upcastersModule('returns-copy.mjs', `export default () => ({ register() { return this; }, upcast(type, from, to, data) { return data; } });\n`), /returned an UpcasterRegistry that is not this command's .*another copy/],
    ];
    for (const [module, message] of cases) {
      let err = '';
      let out = '';
      const code = await runAudit(['--tenant', TENANT, '--ledger', 'eur', '--upcasters', module], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/nowhere' }, { out: (text) => (out += text), err: (text) => (err += text) });
      expect(code, module).toBe(2);
      expect(out, module).toBe('');
      expect(err, module).toContain(`--upcasters ${module}`);
      expect(err, module).toMatch(message);
    }
    let usage = '';
    expect(await runAudit(['--help'], {}, { out: (text) => (usage += text), err: () => undefined })).toBe(0);
    expect(usage).toMatch(/--upcasters <module> +an ES module whose default export/);
    expect(await audit('--tenant', TENANT, '--ledger', 'eur', '--upcasters')).toMatchObject({ code: 2, err: expect.stringMatching(/usage: ledgerkit-audit[\s\S]*--upcasters <module>/) });
  });

  it('--upcasters: a module whose top-level await, or whose function\'s promise, never settles is exit 2 once --upcasters-timeout-ms has passed, naming the module, before any connection', async () => {
    const cases = [
      await upcastersModule('never-loads.mjs', `await new Promise(() => {});\nexport default () => {};\n`),
      await upcastersModule('never-registers.mjs', `export default () => new Promise(() => {});\n`),
    ];
    for (const module of cases) {
      let err = '';
      let out = '';
      const started = Date.now();
      // A database that is not there: the audit must stop before it tries to connect.
      const code = await runAudit(['--tenant', TENANT, '--ledger', 'eur', '--upcasters', module, '--upcasters-timeout-ms', '200'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/nowhere' }, {
        out: (text) => (out += text),
        err: (text) => (err += text),
      });
      const tookMs = Date.now() - started;
      expect(code, module).toBe(2);
      expect(out, module).toBe('');
      expect(err, module).toBe(`ledgerkit-audit: --upcasters ${module}: gave no registry within 200 ms (its top-level await, or the promise its function returned, has not settled): fix the module, or give it longer with --upcasters-timeout-ms\n`);
      expect(tookMs, module).toBeGreaterThanOrEqual(190);
      // The bound and no more: loading and the message take a few ms idle; 1.3 s is the margin for
      // a loaded machine (a bound kept loosely, e.g. 15 times over, would take 3 s).
      expect(tookMs, module).toBeLessThan(200 + 1_300);
    }
    // A module that settles in time is not affected by a short bound.
    const quick = await upcastersModule('quick.mjs', `await new Promise((resolve) => setTimeout(resolve, 10));\nexport default (registry) => { registry.register('AccountClosed', 1, (data) => data); };\n`);
    expect(await audit('--tenant', TENANT, '--ledger', 'legacy', '--upcasters', quick, '--upcasters-timeout-ms', '5000')).toMatchObject({ code: 0, err: '' });
    for (const bad of ['0', String(UPCASTERS_LOAD_TIMEOUT_MS_MAX + 1), '1.5', '-1', 'soon', '']) {
      const refused = await audit('--tenant', TENANT, '--ledger', 'eur', '--upcasters', quick, `--upcasters-timeout-ms=${bad}`);
      expect(refused.code, bad).toBe(2);
      expect(refused.err, bad).toMatch(/^--upcasters-timeout-ms must be an integer in 1\.\.600000\n\nusage: ledgerkit-audit/);
    }
    let usage = '';
    expect(await runAudit(['--help'], {}, { out: (text) => (usage += text), err: () => undefined })).toBe(0);
    expect(usage).toMatch(/--upcasters-timeout-ms <n> +how long that module may take to load/);
  });

  it('--upcasters: the command exits 2 on a module that never settles, even one that holds the process open', async () => {
    const module = await upcastersModule('never-with-timer.mjs', `setInterval(() => {}, 1_000);\nawait new Promise(() => {});\nexport default () => {};\n`);
    // What the rest costs here and now: the same command on a module that also holds the process
    // open, but is refused as soon as it has loaded (start-up, loading, and the command's wait of
    // EXIT_AFTER_MS before it exits anyway). Run before (which warms tsx's cache) and after, the
    // slower run counted: a load that changes meanwhile weighs on both sides.
    const quickModule = await upcastersModule('refused-with-timer.mjs', `setInterval(() => {}, 1_000);\nexport default 42;\n`);
    const quickRun = async (): Promise<number> => {
      const quickStarted = Date.now();
      const quick = await runCommand('--tenant', TENANT, '--ledger', 'legacy', '--upcasters', quickModule, '--upcasters-timeout-ms', '300');
      expect(quick.code).toBe(2);
      expect(quick.err).toMatch(/--upcasters .*refused-with-timer\.mjs: must be an UpcasterRegistry or a function/);
      return Date.now() - quickStarted;
    };
    const quickBefore = await quickRun();
    const started = Date.now();
    const { code, out, err } = await runCommand('--tenant', TENANT, '--ledger', 'legacy', '--upcasters', module, '--upcasters-timeout-ms', '300');
    const tookMs = Date.now() - started;
    expect(code).toBe(2);
    expect(out).toBe('');
    expect(err).toMatch(/--upcasters .*never-with-timer\.mjs: gave no registry within 300 ms/);
    const quickMs = Math.max(quickBefore, await quickRun());
    // The 300 ms bound more than that and no more (a margin of 1.5 s for a loaded machine, where
    // two start-ups differ too): the timer, not the module, ends the process.
    expect(tookMs - quickMs, `took ${tookMs} ms, the quick run ${quickMs} ms`).toBeLessThan(300 + 1_500);
  }, 60_000);

  it('--upcasters: the command itself loads the module (plain Node ESM) and audits with it', async () => {
    const module = await upcastersModule('command.mjs', `export default (registry) => { registry.register('AccountClosed', 1, (data) => data); };\n`);
    const { code, out, err } = await runCommand('--tenant', TENANT, '--ledger', 'legacy', '--upcasters', module, '--account', 'alice');
    expect(err).toBe('');
    expect(code).toBe(0);
    expect((JSON.parse(out) as AuditReport).balances['alice']?.posted).toBe('5.00');
    const refused = await runCommand('--tenant', TENANT, '--ledger', 'legacy', '--upcasters', join(modules, 'missing.mjs'));
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/--upcasters .*missing\.mjs: no such file/);
  }, 60_000);

  it('a ledger whose first event was changed or deleted, or whose every event was deleted while its head is recorded, fails the audit (exit 1, with the report), not "check --tenant and --ledger" (exit 2)', async () => {
    for (const ledgerId of ['first-changed', 'first-deleted', 'all-deleted']) await (await threeEvents(ledgerId, 'gail')).close();
    expect(await behindTheChain(`UPDATE ledgerkit.events SET data = replace(data::text, '"accountType":"asset"', '"accountType":"expense"')::json WHERE tenant_id = $1 AND ledger_id = 'first-changed' AND ledger_version = 1`)).toBe(1);
    expect(await behindTheChain(`DELETE FROM ledgerkit.events WHERE tenant_id = $1 AND ledger_id = 'first-deleted' AND ledger_version = 1`)).toBe(1);
    expect(await behindTheChain(`DELETE FROM ledgerkit.events WHERE tenant_id = $1 AND ledger_id = 'all-deleted'`)).toBe(3);
    const expected: [string, object][] = [
      ['first-changed', { chain: { ok: false, eventCount: 0, brokenAt: { ledgerVersion: 1, reason: 'hash_mismatch' } }, trialBalance: null }],
      ['first-deleted', { chain: { ok: false, eventCount: 0, brokenAt: { ledgerVersion: 2, reason: 'version_gap' } }, trialBalance: null }],
      // The chain that is left holds (it is empty), but ends short of the head the database records.
      ['all-deleted', { chain: { ok: true, eventCount: 0, lastVersion: 0 } }],
    ];
    for (const [ledgerId, report] of expected) {
      const audited = await audit('--tenant', TENANT, '--ledger', ledgerId);
      expect(audited, ledgerId).toMatchObject({ code: 1, err: '', report: { ok: false, head: { recordedVersion: 3, reached: false }, ...report } });
    }
  });

  it('as of an effective or a recorded time, events appended after the chain was verified are not counted: the trial balance is of the chain the report verified', async () => {
    const growing = await threeEvents('growing', 'gina');
    const readStream = PostgresEventStore.prototype.readStream;
    let reads = 0;
    let appended = 0;
    // The chain is read from version 1, then the replay: between the two, a transfer lands that
    // both points match (as back-dated entries do at a month-end close while the auditor runs it).
    const spy = vi.spyOn(PostgresEventStore.prototype, 'readStream').mockImplementation(async function (this: PostgresEventStore, request) {
      if (request.ledgerId === 'growing' && request.fromVersion === 1 && (reads += 1) % 2 === 0) {
        appended += 1;
        const late = await growing.transfer({ transferId: `late-${appended}`, debitAccountId: 'cash', creditAccountId: 'gina', amount: '1.00', currency: 'EUR' });
        expect(late.ok).toBe(true);
      }
      return readStream.call(this, request);
    });
    try {
      for (const point of [['--as-of-effective', new Date(now).toISOString()], ['--as-of-recorded', '9999-12-31T23:59:59.999Z']]) {
        const version = growing.version;
        const { code, report, err } = await audit('--tenant', TENANT, '--ledger', 'growing', '--account', 'gina', ...point);
        expect(err, point[0]).toBe('');
        expect(code, point[0]).toBe(0);
        expect(report, point[0]).toMatchObject({ chain: { ok: true, lastVersion: version }, lastIncludedVersion: version, balances: { gina: { posted: `${10 + appended - 1}.00` } } });
        expect(report?.trialBalance?.totals, point[0]).toEqual([{ currency: 'EUR', debits: `${10 + appended - 1}.00`, credits: `${10 + appended - 1}.00`, balanced: true }]);
      }
    } finally {
      spy.mockRestore();
      await growing.close();
    }
    // The late transfers are there: the next audit verifies and counts them.
    expect(appended).toBe(2);
    expect(await audit('--tenant', TENANT, '--ledger', 'growing', '--account', 'gina', '--as-of-recorded', '9999-12-31T23:59:59.999Z')).toMatchObject({ code: 0, report: { lastIncludedVersion: 5, balances: { gina: { posted: '12.00' } } } });
  });

  it('a readable, correctly hashed event that breaks the ledger\'s invariants (a posting on an account never opened) fails the audit (exit 1) naming its version, in the report and on stderr', async () => {
    const store = await PostgresEventStore.open({ pool: db.app });
    await (await threeEvents('forged', 'hugo')).close();
    const [head] = await store.readStream({ tenantId: TENANT, ledgerId: 'forged', direction: 'backward', limit: 1 });
    if (head === undefined) throw new Error('the forged ledger is empty');
    const { hash: previousHash, ...envelope } = head;
    // What a client holding the application role can append: the store checks readability only.
    const forged: Omit<StoredEvent, 'hash'> = {
      ...envelope,
      eventId: 'forged-4',
      ledgerVersion: 4,
      type: 'TransferPosted',
      data: { transferId: 'x1', postings: [{ accountId: 'ghost', side: 'debit', amount: '5.00', currency: 'EUR' }, { accountId: 'hugo', side: 'credit', amount: '5.00', currency: 'EUR' }], metadata: {} },
      previousHash,
    };
    await store.append({ tenantId: TENANT, ledgerId: 'forged', expectedVersion: 3, events: [{ ...forged, hash: hashEvent(forged) }] });
    const { code, report, err } = await audit('--tenant', TENANT, '--ledger', 'forged', '--account', 'hugo');
    expect(code).toBe(1);
    expect(report).toMatchObject({
      ok: false,
      chain: { ok: true, lastVersion: 4 },
      head: { recordedVersion: 4, reached: true },
      lastIncludedVersion: null,
      trialBalance: null,
      invalidEvent: { ledgerVersion: 4, reason: expect.stringMatching(/TransferPosted event breaks the ledger's invariants .*account ghost/) },
      balances: {},
    });
    expect(err).toMatch(/^ledgerkit-audit: event at ledger version 4: the TransferPosted event breaks the ledger's invariants/);
    // A point before it replays no further, and the ledger was sound then.
    expect(await audit('--tenant', TENANT, '--ledger', 'forged', '--as-of-version', '3')).toMatchObject({ code: 0, err: '', report: { ok: true, lastIncludedVersion: 3 } });
  });

  it('an --account id off the id pattern (__proto__, empty) is a usage error naming it, exit 2; every valid id asked for is a key of balances', async () => {
    for (const accountId of ['__proto__', '', ' alice', 'x'.repeat(129)]) {
      const { code, report, err } = await audit('--tenant', TENANT, '--ledger', 'points', '--currency', 'POINTS:0', '--account', accountId);
      expect({ code, report }, JSON.stringify(accountId)).toEqual({ code: 2, report: undefined });
      expect(err.split('\n')[0], JSON.stringify(accountId)).toBe(`--account ${JSON.stringify(accountId)}: an account id must be 1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit`);
      expect(err).toMatch(/usage: ledgerkit-audit/);
    }
    const { code, report } = await audit('--tenant', TENANT, '--ledger', 'points', '--currency', 'POINTS:0', '--account', 'constructor', '--account', 'carol', '--account', 'toString');
    expect(code).toBe(0);
    expect(Object.keys(report?.balances ?? {})).toEqual(['constructor', 'carol', 'toString']);
    expect(report?.balances).toMatchObject({ constructor: null, carol: { posted: '300' }, toString: null });
  });

  it('a bad --as-of-recorded, --as-of-effective or --as-of-version value is a usage error naming the option and the value typed, before any connection', async () => {
    const cases: [string, string, string][] = [
      ['--as-of-recorded', '2025-03-01T00:00:00', 'must be a valid Date, or an ISO-8601 date-time with seconds and an offset'],
      ['--as-of-effective', '2025-02-30T00:00:00Z', 'must be a valid Date, or an ISO-8601 date-time with seconds and an offset'],
      ['--as-of-version', '9999999999999999', `must be a non-negative integer of at most ${Number.MAX_SAFE_INTEGER}`],
    ];
    for (const [option, value, problem] of cases) {
      let out = '';
      let err = '';
      const code = await runAudit(['--tenant', TENANT, '--ledger', 'eur', option, value], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/nowhere' }, { out: (text) => (out += text), err: (text) => (err += text) });
      expect({ code, out }, option).toEqual({ code: 2, out: '' });
      expect(err.split('\n')[0], option).toContain(`${option} ${JSON.stringify(value)} ${problem}`);
      expect(err, option).not.toContain('asOf');
      expect(err, option).toMatch(/\n\nusage: ledgerkit-audit/);
    }
  });
});
