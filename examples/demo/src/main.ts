/**
 * The demo behind `pnpm demo`: on PostgreSQL (an embedded server in a temporary directory when
 * DATABASE_URL is unset; the given server otherwise, where the data stays for psql), opens a
 * ledger, moves money through every kind of command, shows a rejection, then reads balances now
 * and as of an earlier instant, an account's statement, the trial balance and the hash-chain
 * verification.
 */
import pg from 'pg';
import { Ledger, type CommandResult, type EventStore } from '@ledgerkit/ledger-core';
import { migrate, PostgresEventStore, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';

const line = (text = ''): void => {
  process.stdout.write(`${text}\n`);
};
const outcome = (label: string, result: CommandResult): void => {
  line(`  ${label.padEnd(44)} ${result.ok ? `ok  v${result.ledgerVersion}${result.duplicate ? ' (duplicate: original outcome)' : ''}` : `rejected: ${result.code}`}`);
};

// The application role's password: trust-auth servers ignore it; set it for a server that checks.
const APP_PASSWORD = process.env['LEDGERKIT_APP_PASSWORD'] ?? 'ledgerkit-demo';

interface Database {
  readonly store: EventStore;
  readonly where: string;
  close(): Promise<void>;
}

async function openDatabase(): Promise<Database> {
  const given = process.env['DATABASE_URL'];
  const server: EmbeddedPostgresServer | undefined = given === undefined ? await startEmbeddedPostgres() : undefined;
  const adminUrl = given ?? (server as EmbeddedPostgresServer).connectionString;
  const admin = new pg.Pool({ connectionString: adminUrl, max: 2 });
  const appUrl = new URL(adminUrl);
  appUrl.username = 'ledgerkit_app';
  appUrl.password = APP_PASSWORD;
  const app = new pg.Pool({ connectionString: appUrl.toString(), max: 4 });
  try {
    await migrate({ pool: admin, appPassword: APP_PASSWORD });
    const store = await PostgresEventStore.open({ pool: app });
    const where = server === undefined ? `PostgreSQL at ${new URL(adminUrl).host}${new URL(adminUrl).pathname} (data kept)` : 'embedded PostgreSQL (temporary, removed at exit)';
    return {
      store,
      where,
      close: async () => {
        await app.end();
        await admin.end();
        await server?.stop();
      },
    };
  } catch (error) {
    await app.end().catch(() => undefined);
    await admin.end().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    throw error;
  }
}

async function main(): Promise<void> {
  const database = await openDatabase();
  try {
    await run(database);
  } finally {
    await database.close();
  }
}

async function run(database: Database): Promise<void> {
  // A new ledger each run, so runs against a kept database never collide.
  const ledgerId = `eur-${new Date().toISOString().replace(/[^0-9]/g, '').slice(0, 17)}`;
  const ledger = await Ledger.open({ store: database.store, tenantId: 'demo-bank', ledgerId });
  line(`Ledgerkit demo — ${database.where}, tenant demo-bank, ledger ${ledgerId}`);
  line();
  line('Accounts');
  outcome('open cash (asset)', await ledger.openAccount({ accountId: 'cash', currency: 'EUR', type: 'asset' }));
  for (const name of ['alice', 'bob']) {
    outcome(`open ${name} (liability, no overdraft)`, await ledger.openAccount({ accountId: name, currency: 'EUR', type: 'liability', flags: { debitsMustNotExceedCredits: true } }));
  }
  outcome('open fees (income)', await ledger.openAccount({ accountId: 'fees', currency: 'EUR', type: 'income' }));

  line();
  line('Transfers');
  outcome('deposit 250.00 to alice', await ledger.transfer({ transferId: 'dep-1', debitAccountId: 'cash', creditAccountId: 'alice', amount: '250.00', currency: 'EUR' }));
  const beforePayments = new Date();
  await new Promise((resolve) => setTimeout(resolve, 5));
  outcome('alice pays bob 40.00 + 0.50 fee (3 postings)', await ledger.transfer({
    transferId: 'pay-1',
    postings: [
      { accountId: 'alice', side: 'debit', amount: '40.50', currency: 'EUR' },
      { accountId: 'bob', side: 'credit', amount: '40.00', currency: 'EUR' },
      { accountId: 'fees', side: 'credit', amount: '0.50', currency: 'EUR' },
    ],
  }));
  outcome('retry of pay-1 with the same content', await ledger.transfer({
    transferId: 'pay-1',
    postings: [
      { accountId: 'alice', side: 'debit', amount: '40.50', currency: 'EUR' },
      { accountId: 'bob', side: 'credit', amount: '40.00', currency: 'EUR' },
      { accountId: 'fees', side: 'credit', amount: '0.50', currency: 'EUR' },
    ],
  }));
  outcome('bob tries to send 1000.00 to alice', await ledger.transfer({ transferId: 'pay-2', debitAccountId: 'bob', creditAccountId: 'alice', amount: '1000.00', currency: 'EUR' }));
  outcome('card hold of 60.00 on alice', await ledger.hold({ transferId: 'hold-1', debitAccountId: 'alice', creditAccountId: 'bob', amount: '60.00', currency: 'EUR', timeoutMs: 86_400_000 }));
  outcome('merchant captures 45.00 of the hold', await ledger.postPending({ transferId: 'cap-1', pendingId: 'hold-1', amount: '45.00', currency: 'EUR' }));
  outcome('reverse the payment pay-1', await ledger.reverse({ transferId: 'rev-1', reversalOf: 'pay-1' }));

  line();
  line('Balances now (posted / available)');
  for (const id of ['cash', 'alice', 'bob', 'fees']) {
    const balance = ledger.balance(id);
    if (balance !== undefined) line(`  ${id.padEnd(8)} ${balance.posted.padStart(10)} / ${balance.available.padStart(10)} ${balance.currency}`);
  }
  line();
  line(`alice as of ${beforePayments.toISOString()} (recorded time, by replay)`);
  const past = await ledger.balanceAt('alice', { recordedAt: beforePayments });
  line(`  posted ${past?.posted ?? 'n/a'} EUR`);

  line();
  line("alice's statement");
  const history = await ledger.history('alice', { limit: 20 });
  for (const entry of history.entries) {
    line(`  v${String(entry.ledgerVersion).padEnd(3)} ${entry.transferId.padEnd(7)} ${entry.bucket.padEnd(7)} ${entry.side.padEnd(6)} ${entry.amount.padStart(8)}  balance ${entry.balanceAfter}`);
  }

  line();
  line('Trial balance');
  const trial = await ledger.trialBalance();
  for (const row of trial.lines) line(`  ${row.accountId.padEnd(8)} debit ${row.debit.padStart(10)}  credit ${row.credit.padStart(10)}`);
  for (const total of trial.totals) line(`  ${total.currency} totals: debits ${total.debits} = credits ${total.credits}: ${total.balanced ? 'balanced' : 'NOT BALANCED'}`);

  const chain = await ledger.verifyChain();
  line();
  line(chain.ok ? `Hash chain verified: ${chain.eventCount} events, last hash ${chain.lastHash.slice(0, 16)}…` : `Hash chain BROKEN at version ${chain.brokenAt.ledgerVersion}`);
  await ledger.close();
  if (!chain.ok || trial.totals.some((total) => !total.balanced)) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exitCode = 1;
});
