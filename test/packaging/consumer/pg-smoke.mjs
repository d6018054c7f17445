// Run by scripts/pack-check.mjs in a throwaway project outside the workspace, where the packed
// tarballs were installed with npm, when it is given a PostgreSQL server (LEDGERKIT_PG_URL, a
// superuser URL): the PostgreSQL packages as a consumer uses them, end to end. In a database and
// under roles of its own (removed at the end, whatever happens): the store's and the read models'
// migrations, a LedgerWriter appending through PostgresEventStore, a projection runner catching
// up, and the read models answering what the ledger says. Any failed assertion exits non-zero.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { CurrencyRegistry, Ledger } from '@ledgerkit/ledger-core';
import { migrate, PostgresEventStore } from '@ledgerkit/store-postgres';
import { balancesProjection, historyProjection, migrateReadModels, ProjectionRunner, ReadModels } from '@ledgerkit/projections';

const serverUrl = process.env.LEDGERKIT_PG_URL;
assert.ok(serverUrl, 'LEDGERKIT_PG_URL is not set');

const suffix = randomBytes(5).toString('hex');
const database = `lk_pack_${suffix}`;
const roles = { owner: `lk_pack_${suffix}_owner`, app: `lk_pack_${suffix}_app` };
const appPassword = randomBytes(12).toString('hex');
const urlWith = (changes) => {
  const url = new URL(serverUrl);
  if (changes.database !== undefined) url.pathname = `/${changes.database}`;
  if (changes.user !== undefined) {
    url.username = changes.user;
    url.password = changes.password;
  }
  return url.toString();
};

const maintenance = new pg.Client({ connectionString: serverUrl });
await maintenance.connect();
await maintenance.query(`CREATE DATABASE ${database}`);
const pools = [];
const pool = (connectionString) => {
  const created = new pg.Pool({ connectionString, max: 5 });
  pools.push(created);
  return created;
};
let ledger;
let runner;
try {
  const admin = pool(urlWith({ database }));
  const migrated = await migrate({ pool: admin, roles, appPassword });
  assert.ok(migrated.applied.length > 0, 'migrate applied nothing to a new database');
  await migrateReadModels({ pool: admin, roles });
  const app = pool(urlWith({ database, user: roles.app, password: appPassword }));

  const store = await PostgresEventStore.open({ pool: app });
  ledger = await Ledger.open({ store, tenantId: 'acme', ledgerId: 'eur' });
  await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
  await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } });
  for (let n = 1; n <= 20; n += 1) {
    const result = await ledger.transfer({ transferId: `dep-${n}`, debitAccountId: 'cash', creditAccountId: 'alice', amount: '2.50', currency: 'EUR' });
    assert.equal(result.ok, true, `deposit ${n} was rejected: ${JSON.stringify(result)}`);
  }
  const overdraft = await ledger.transfer({ transferId: 'wd-1', debitAccountId: 'alice', creditAccountId: 'cash', amount: '50.01', currency: 'EUR' });
  assert.equal(overdraft.code, 'insufficient_funds', 'an overdraft was not refused');
  const again = await ledger.transfer({ transferId: 'dep-1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '2.50', currency: 'EUR' });
  assert.equal(again.ok && again.duplicate, true, 'a retried transfer id was not answered as a duplicate');
  assert.equal(ledger.balance('alice')?.posted, '50.00');

  const currencies = new CurrencyRegistry();
  runner = new ProjectionRunner({ pool: app, store, tenantIds: ['acme'], projections: [balancesProjection(), historyProjection()], currencies });
  await runner.start();
  await runner.whenCaughtUp();
  const models = new ReadModels({ pool: app, currencies });
  const balance = await models.balance('acme', 'eur', 'alice');
  assert.equal(balance?.posted, '50.00', `the balances read model says ${JSON.stringify(balance)}`);
  const earlier = await models.balanceAt('acme', 'eur', 'alice', { ledgerVersion: 4 });
  assert.equal(earlier?.posted, '5.00', `the history read model says ${JSON.stringify(earlier)} at version 4`);
  console.log(`pg: migrated, ${ledger.version} events appended, read models agree (alice posted ${balance.posted}; ${earlier.posted} at version 4)`);
} finally {
  await runner?.stop().catch(() => undefined);
  await ledger?.close().catch(() => undefined);
  await Promise.all(pools.map((created) => created.end().catch(() => undefined)));
  // Ended pools' connections leave the server a moment later: wait for them (a connection still
  // there after 5 s is one the packages leaked, which the forced drop below turns into a crash).
  for (let polls = 0; polls < 250; polls += 1) {
    const { rows } = await maintenance.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [database]);
    if (rows[0]?.n === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await maintenance.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
  await maintenance.query(`DROP ROLE IF EXISTS ${roles.app}`).catch(() => undefined);
  await maintenance.query(`DROP ROLE IF EXISTS ${roles.owner}`).catch(() => undefined);
  await maintenance.end();
}
