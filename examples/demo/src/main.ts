/**
 * The demo behind `pnpm demo`: on PostgreSQL (an embedded server in a temporary directory when
 * DATABASE_URL is unset; the given server otherwise, where the data stays for psql), opens a
 * ledger, moves money through every kind of command, shows a rejection, then reads balances now
 * and as of an earlier instant, an account's statement, the trial balance and the hash-chain
 * verification.
 *
 * SIGINT (Ctrl-C) or SIGTERM, from its first moment on, stops it gracefully: the step under way
 * (starting the embedded server, migrating, a section of the demo) is let finish, or fail if the
 * server went away (Ctrl-C reaches the embedded server too, in the same process group), then the
 * pools are closed, the embedded server is stopped and its temporary directory removed. Exit codes: 0 when the demo ran through and its checks held; 1 when it failed, when a
 * check failed (chain or trial balance), when it had not stopped within 60 s of the signal, or on
 * a further signal a second or more after the first (at once; the embedded server is signalled to
 * stop as the process exits, its directory is left); 128 + the signal's number after a graceful
 * stop (130 for SIGINT, 143 for SIGTERM), as a shell reports a command it interrupted.
 */
import { constants } from 'node:os';
import pg from 'pg';
import { Ledger, type CommandResult, type EventStore } from '@ledgerkit/ledger-core';
import { migrate, PostgresEventStore, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';
import { stopOnSignals, StoppedBySignal } from './lifecycle.js';

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

async function openDatabase(signal: AbortSignal): Promise<Database> {
  const given = process.env['DATABASE_URL'];
  if (given === undefined) line('demo: starting an embedded PostgreSQL server (temporary)');
  const server: EmbeddedPostgresServer | undefined = given === undefined ? await startEmbeddedPostgres() : undefined;
  if (server !== undefined && !signal.aborted) line(`demo: embedded PostgreSQL on port ${server.port}, data in ${server.directory}; migrating`);
  const adminUrl = given ?? (server as EmbeddedPostgresServer).connectionString;
  const admin = new pg.Pool({ connectionString: adminUrl, max: 2 });
  const appUrl = new URL(adminUrl);
  appUrl.username = 'ledgerkit_app';
  appUrl.password = APP_PASSWORD;
  const app = new pg.Pool({ connectionString: appUrl.toString(), max: 4 });
  // An idle connection the server ends (Ctrl-C reaches the embedded server too) must not crash the
  // demo before it has cleaned up: the next step fails instead.
  for (const pool of [admin, app]) pool.on('error', () => undefined);
  try {
    signal.throwIfAborted();
    await migrate({ pool: admin, appPassword: APP_PASSWORD });
    signal.throwIfAborted();
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

/** Closing what the demo opened failed: exit code 1, even after a signal. */
class CloseFailed extends Error {
  constructor(cause: unknown) {
    super(`closing failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'CloseFailed';
  }
}

/** Runs the demo; resolves with the exit code (see the module comment). */
async function main(signal: AbortSignal): Promise<number> {
  const database = await openDatabase(signal);
  const ran = await run(database, signal).then(
    (code) => ({ code }),
    (error: unknown) => ({ error }),
  );
  await database.close().catch((error: unknown) => {
    throw new CloseFailed(error);
  });
  if ('error' in ran) throw ran.error;
  return ran.code;
}

/** The demo's sections, each begun only while no signal came; resolves with the exit code. */
async function run(database: Database, signal: AbortSignal): Promise<number> {
  signal.throwIfAborted();
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
  signal.throwIfAborted();
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
  signal.throwIfAborted();
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
  signal.throwIfAborted();
  line("alice's statement");
  const history = await ledger.history('alice', { limit: 20 });
  for (const entry of history.entries) {
    line(`  v${String(entry.ledgerVersion).padEnd(3)} ${entry.transferId.padEnd(7)} ${entry.bucket.padEnd(7)} ${entry.side.padEnd(6)} ${entry.amount.padStart(8)}  balance ${entry.balanceAfter}`);
  }

  line();
  signal.throwIfAborted();
  line('Trial balance');
  const trial = await ledger.trialBalance();
  for (const row of trial.lines) line(`  ${row.accountId.padEnd(8)} debit ${row.debit.padStart(10)}  credit ${row.credit.padStart(10)}`);
  for (const total of trial.totals) line(`  ${total.currency} totals: debits ${total.debits} = credits ${total.credits}: ${total.balanced ? 'balanced' : 'NOT BALANCED'}`);

  const chain = await ledger.verifyChain();
  line();
  line(chain.ok ? `Hash chain verified: ${chain.eventCount} events, last hash ${chain.lastHash.slice(0, 16)}…` : `Hash chain BROKEN at version ${chain.brokenAt.ledgerVersion}`);
  await ledger.close();
  return !chain.ok || trial.totals.some((total) => !total.balanced) ? 1 : 0;
}

const stopSignal = stopOnSignals();
main(stopSignal).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const reason: unknown = stopSignal.reason;
    // Stopped: by the signal's own check, or by a step that failed once the signal had come (the
    // server it used went away with the same Ctrl-C); not if closing failed.
    if (reason instanceof StoppedBySignal && !(error instanceof CloseFailed)) {
      line(`demo: ${reason.message}: closed what it had opened${process.env['DATABASE_URL'] === undefined ? ', PostgreSQL shut down and its temporary data removed' : ''}.`);
      process.exit(128 + constants.signals[reason.signal]);
    }
    process.stderr.write(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
