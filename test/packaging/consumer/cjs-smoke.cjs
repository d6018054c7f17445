// Run by scripts/pack-check.mjs in a throwaway project outside the workspace: `require`s every
// package's CommonJS entry, checks a few exported names, and makes one transfer with ledger-core's
// CommonJS build. Any failed assertion exits non-zero with its message.
'use strict';
const assert = require('node:assert/strict');

const packages = JSON.parse(process.env.LEDGERKIT_PACKAGES ?? '[]');
assert.ok(packages.length > 0, 'LEDGERKIT_PACKAGES names no package');

const expected = {
  '@ledgerkit/ledger-core': ['Ledger', 'LedgerWriter', 'InMemoryEventStore', 'EventCodec', 'verifyChain', 'REJECTION_CODES'],
  '@ledgerkit/tenant-rls': ['withTenant', 'quoteName', 'ensureRoles'],
  '@ledgerkit/store-postgres': ['PostgresEventStore', 'migrate', 'MIGRATIONS'],
  '@ledgerkit/projections': ['ProjectionRunner', 'eventProjection', 'reconcileLedger'],
};

const loaded = {};
for (const name of packages) {
  let module;
  try {
    module = require(name);
  } catch (error) {
    assert.fail(`require('${name}') failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  for (const exported of expected[name] ?? []) {
    assert.ok(module[exported] !== undefined, `require('${name}') has no export ${exported}`);
  }
  loaded[name] = module;
}

(async () => {
  if (packages.includes('@ledgerkit/ledger-core')) {
    const { Ledger, InMemoryEventStore } = loaded['@ledgerkit/ledger-core'];
    const ledger = await Ledger.open({ store: new InMemoryEventStore(), tenantId: 'acme', ledgerId: 'usd' });
    await ledger.openAccount({ accountId: 'cash', currency: 'USD', type: 'asset' });
    await ledger.openAccount({ accountId: 'bob', currency: 'USD', type: 'liability' });
    const result = await ledger.transfer({ transferId: 't1', debitAccountId: 'cash', creditAccountId: 'bob', amount: '12.34', currency: 'USD' });
    assert.equal(result.ok, true, `the transfer was rejected: ${JSON.stringify(result)}`);
    assert.equal(ledger.balance('bob')?.posted, '12.34', 'bob does not hold 12.34 after the transfer');
    console.log(`cjs: ledger-core transfer on InMemoryEventStore: bob posted ${ledger.balance('bob')?.posted}`);
  }
  console.log(`cjs: ${packages.length} package(s) require`);
})().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
