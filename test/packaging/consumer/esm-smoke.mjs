// Run by scripts/pack-check.mjs in a throwaway project outside the workspace, where the packed
// tarballs were installed with npm: imports every package's ESM entry (and the `./testing`
// subpath where the export map offers it to `import`) and uses ledger-core end to end on its
// in-memory store. Any failed assertion exits non-zero with its message.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const packages = JSON.parse(process.env.LEDGERKIT_PACKAGES ?? '[]');
assert.ok(packages.length > 0, 'LEDGERKIT_PACKAGES names no package');

/** Exported names each package's entry must have, on top of "it loads". */
const expected = {
  '@ledgerkit/ledger-core': ['Ledger', 'LedgerWriter', 'InMemoryEventStore', 'EventCodec', 'verifyChain', 'REJECTION_CODES', 'InvalidInputError'],
  '@ledgerkit/tenant-rls': ['withTenant', 'quoteName', 'ensureRoles', 'DEFAULT_ROLES'],
  '@ledgerkit/store-postgres': ['PostgresEventStore', 'migrate', 'MIGRATIONS', 'startEmbeddedPostgres'],
  '@ledgerkit/projections': ['ProjectionRunner', 'eventProjection', 'reconcileLedger', 'migrateReadModels'],
};

const loaded = {};
for (const name of packages) {
  let module;
  try {
    module = await import(name);
  } catch (error) {
    assert.fail(`import('${name}') failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  for (const exported of expected[name] ?? []) {
    assert.ok(module[exported] !== undefined, `import('${name}') has no export ${exported}`);
  }
  assert.ok(Object.keys(module).length > 0, `import('${name}') exports nothing`);
  loaded[name] = module;
}

// The `./testing` subpath, when ledger-core's export map offers it to `import`.
if (packages.includes('@ledgerkit/ledger-core')) {
  const manifest = JSON.parse(readFileSync(require.resolve('@ledgerkit/ledger-core/package.json'), 'utf8').toString());
  const testing = manifest.exports?.['./testing'];
  const importable = testing !== undefined && (typeof testing === 'string' || 'import' in testing || 'default' in testing);
  if (importable) {
    const testingModule = await import('@ledgerkit/ledger-core/testing').catch((error) => {
      assert.fail(`import('@ledgerkit/ledger-core/testing') failed: ${error instanceof Error ? error.message : String(error)}`);
    });
    for (const exported of ['describeEventStoreConformance', 'deciderSpec']) {
      assert.equal(typeof testingModule[exported], 'function', `@ledgerkit/ledger-core/testing has no function ${exported}`);
    }
    console.log('esm: @ledgerkit/ledger-core/testing loads');
  }

  // End to end on the in-memory store, as the README shows it.
  const { Ledger, LedgerWriter, InMemoryEventStore, InvalidInputError } = loaded['@ledgerkit/ledger-core'];
  const ledger = await Ledger.open({ store: new InMemoryEventStore(), tenantId: 'acme', ledgerId: 'eur' });
  await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' });
  await ledger.openAccount({ accountId: 'alice', currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } });
  const deposit = await ledger.transfer({ transferId: 'dep-1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '100.00', currency: 'EUR' });
  assert.equal(deposit.ok, true, `the deposit was rejected: ${JSON.stringify(deposit)}`);
  const overdraft = await ledger.transfer({ transferId: 'wd-1', debitAccountId: 'alice', creditAccountId: 'cash', amount: '100.01', currency: 'EUR' });
  assert.equal(overdraft.ok, false, 'an overdraft of a debitsMustNotExceedCredits account was accepted');
  assert.equal(overdraft.code, 'insufficient_funds');
  assert.equal(ledger.balance('alice')?.posted, '100.00', 'alice does not hold 100.00 after the deposit');
  assert.equal((await ledger.balanceAt('alice', { ledgerVersion: 2 }))?.posted, '0.00', 'alice does not hold 0.00 at version 2');
  const chain = await ledger.verifyChain();
  assert.equal(chain.ok, true, `the hash chain does not hold: ${JSON.stringify(chain)}`);
  await assert.rejects(ledger.transfer({ transferId: 'bad id!', debitAccountId: 'cash', creditAccountId: 'alice', amount: '1.00', currency: 'EUR' }), InvalidInputError);
  assert.equal(typeof LedgerWriter.open, 'function', 'LedgerWriter.open is not a function');
  console.log(`esm: ledger-core end to end on InMemoryEventStore: alice posted ${ledger.balance('alice')?.posted}, chain ok`);
}

if (packages.includes('@ledgerkit/tenant-rls')) {
  assert.equal(loaded['@ledgerkit/tenant-rls'].quoteName('ledger_events', 'table'), '"ledger_events"');
}
console.log(`esm: ${packages.length} package(s) import`);
