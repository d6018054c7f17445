/**
 * `ledgerkit-audit`: an auditor's replay of one ledger, straight from the PostgreSQL log and
 * nothing else (no read model, no writer). It checks the whole hash chain, replays the events to
 * a point (a ledger version, a recorded time or an effective time; default the head), and prints
 * one JSON document: the chain's verdict, the trial balance at that point with per-currency
 * totals, and the balances of the accounts asked for. The exit code is the verdict: 0 when the
 * chain holds and every currency balances, 1 when either does not, 2 when the audit could not
 * run (bad arguments, no connection, an event it cannot read, a ledger with no event the role can
 * read — a mistyped tenant or ledger id must not pass as an empty, balanced ledger — or a
 * version past the ledger's head).
 *
 * It connects as the application role (row-level security applies, and the store refuses a role
 * that escapes it), reads only, and keeps in memory the ledger's accounts and open holds, never
 * its events.
 */
import { parseArgs } from 'node:util';
import {
  balanceOf,
  CurrencyRegistry,
  EventCodec,
  LimitExceededError,
  parseAsOf,
  readLedger,
  replayLedger,
  trialBalanceOf,
  verifyChain,
  type AccountState,
  type AsOf,
  type Balance,
  type ChainVerification,
  type Currency,
  type TrialBalance,
} from '@ledgerkit/ledger-core';
import pg from 'pg';
import { PostgresEventStore } from './postgres-event-store.js';

/** The usage text `--help` prints and a bad argument repeats. */
export const AUDIT_USAGE = `usage: ledgerkit-audit --tenant <id> --ledger <id> [options]

  --database-url <url>         the application role's URL (default: DATABASE_URL)
  --as-of-version <n>          the state after event n
  --as-of-recorded <instant>   what the ledger knew at that instant (ISO-8601 with an offset)
  --as-of-effective <instant>  the books as of that business time, back-dated events included
  --account <id>               also print this account's balance (repeatable, at most 1,000)
  --currency <CODE:scale>      a custom asset of the ledger, e.g. POINTS:0 (repeatable)
  --accounts-max <n>           refuse a ledger with more accounts (default 1,000,000)

Prints one JSON document. Exit code 0: the chain holds and every currency balances; 1: it does
not; 2: the audit could not run (also for a ledger with no events, which is most often a
mistyped --tenant or --ledger, and for --as-of-version past the ledger's head).`;

/** Most `--account` arguments. */
const ACCOUNTS_LISTED_MAX = 1_000;
/** Default and ceiling of `--accounts-max`. */
const ACCOUNTS_MAX_DEFAULT = 1_000_000;
/** Connections the audit opens: it reads one page at a time. */
const POOL_SIZE = 2;

/** What the audit prints. */
export interface AuditReport {
  readonly tenantId: string;
  readonly ledgerId: string;
  /** The point replayed to; `null` for the head. */
  readonly asOf: AsOf | null;
  /** The whole stream's chain, checked from the first event to the head. */
  readonly chain: ChainVerification;
  /**
   * Version of the last event the replay took in (the head's with no point; with an effective
   * time, the last event effective by then); `null` when the chain is broken.
   */
  readonly lastIncludedVersion: number | null;
  /** At the point; `null` when the chain is broken (replay stops at the first bad link). */
  readonly trialBalance: TrialBalance | null;
  /** The accounts asked for, `null` for one not opened by then. */
  readonly balances: Readonly<Record<string, Balance | null>>;
  /** The chain holds and every currency's debits equal its credits. */
  readonly ok: boolean;
}

/** Where the audit writes: the report to `out`, a reason it could not run to `err`. */
export interface AuditOutput {
  out(text: string): void;
  err(text: string): void;
}

/** A reason the audit cannot run, reported with the usage text. */
class UsageError extends Error {}

/**
 * Runs the audit for the command-line arguments `argv` (without `node` and the script) and
 * returns the exit code. Never throws: whatever stops it is written to `output.err`.
 */
export async function runAudit(argv: readonly string[], env: NodeJS.ProcessEnv, output: AuditOutput): Promise<number> {
  let options: AuditOptions;
  try {
    options = auditOptionsOf(argv, env);
  } catch (error) {
    output.err(`${error instanceof Error ? error.message : String(error)}\n\n${AUDIT_USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    output.out(`${AUDIT_USAGE}\n`);
    return 0;
  }
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: POOL_SIZE });
  // A connection that drops while idle must not end the process with an unhandled error.
  pool.on('error', () => undefined);
  try {
    const report = await audit(pool, options);
    output.out(`${JSON.stringify(report, null, 2)}\n`);
    return report.ok ? 0 : 1;
  } catch (error) {
    output.err(`ledgerkit-audit: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  } finally {
    await pool.end().catch(() => undefined);
  }
}

interface AuditOptionsParsed {
  readonly databaseUrl: string;
  readonly tenantId: string;
  readonly ledgerId: string;
  readonly asOf: AsOf | undefined;
  readonly accountIds: readonly string[];
  readonly currencies: CurrencyRegistry;
  readonly accountsMax: number;
}

type AuditOptions = AuditOptionsParsed | 'help';

function auditOptionsOf(argv: readonly string[], env: NodeJS.ProcessEnv): AuditOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      help: { type: 'boolean' },
      'database-url': { type: 'string' },
      tenant: { type: 'string' },
      ledger: { type: 'string' },
      'as-of-version': { type: 'string' },
      'as-of-recorded': { type: 'string' },
      'as-of-effective': { type: 'string' },
      account: { type: 'string', multiple: true },
      currency: { type: 'string', multiple: true },
      'accounts-max': { type: 'string' },
    },
  });
  if (values.help === true) return 'help';
  const databaseUrl = values['database-url'] ?? env['DATABASE_URL'];
  if (databaseUrl === undefined || databaseUrl === '') throw new UsageError('give --database-url or set DATABASE_URL');
  if (values.tenant === undefined || values.ledger === undefined) throw new UsageError('--tenant and --ledger are required');
  const points: AsOf[] = [];
  if (values['as-of-version'] !== undefined) {
    const text = values['as-of-version'];
    if (!/^\d{1,16}$/.test(text)) throw new UsageError('--as-of-version must be a non-negative integer');
    points.push({ ledgerVersion: Number(text) });
  }
  if (values['as-of-recorded'] !== undefined) points.push({ recordedAt: values['as-of-recorded'] });
  if (values['as-of-effective'] !== undefined) points.push({ effectiveAt: values['as-of-effective'] });
  if (points.length > 1) throw new UsageError('give at most one of --as-of-version, --as-of-recorded, --as-of-effective');
  const asOf = points[0];
  if (asOf !== undefined) parseAsOf(asOf);
  const accountIds = values.account ?? [];
  if (accountIds.length > ACCOUNTS_LISTED_MAX) throw new UsageError(`at most ${ACCOUNTS_LISTED_MAX} --account arguments`);
  const custom = (values.currency ?? []).map((text): Currency => {
    const match = /^([A-Za-z0-9_]{1,16}):(\d{1,2})$/.exec(text);
    if (match === null) throw new UsageError(`--currency ${JSON.stringify(text)} must be CODE:scale, e.g. POINTS:0`);
    return { code: match[1] as string, scale: Number(match[2]) };
  });
  const accountsMaxText = values['accounts-max'] ?? String(ACCOUNTS_MAX_DEFAULT);
  const accountsMax = Number(accountsMaxText);
  if (!/^\d{1,7}$/.test(accountsMaxText) || accountsMax < 1 || accountsMax > ACCOUNTS_MAX_DEFAULT) {
    throw new UsageError(`--accounts-max must be an integer in 1..${ACCOUNTS_MAX_DEFAULT}`);
  }
  return { databaseUrl, tenantId: values.tenant, ledgerId: values.ledger, asOf, accountIds, currencies: new CurrencyRegistry(custom), accountsMax };
}

async function audit(pool: pg.Pool, options: AuditOptionsParsed): Promise<AuditReport> {
  const { tenantId, ledgerId, asOf, currencies } = options;
  const store = await PostgresEventStore.open({ pool });
  const source = { store, codec: new EventCodec({ currencies }), tenantId, ledgerId };
  const chain = await verifyChain(readLedger(source, { verify: false }));
  if (chain.eventCount === 0) {
    // Row-level security answers a wrong tenant, and the store a wrong ledger, with no rows: an
    // empty ledger would pass as a sound, balanced one.
    throw new Error(`tenant ${JSON.stringify(tenantId)} has no events in ledger ${JSON.stringify(ledgerId)} that this role can read: check --tenant and --ledger`);
  }
  const base = { tenantId, ledgerId, asOf: asOf ?? null, chain };
  if (!chain.ok) return { ...base, lastIncludedVersion: null, trialBalance: null, balances: {}, ok: false };
  if (asOf !== undefined && 'ledgerVersion' in asOf && asOf.ledgerVersion > chain.lastVersion) {
    throw new Error(`--as-of-version ${asOf.ledgerVersion} is past the ledger's head, version ${chain.lastVersion}`);
  }
  const state = await replayLedger(source, asOf, { accountsMax: options.accountsMax }).catch((error: unknown) => {
    if (error instanceof LimitExceededError) throw new Error(`${error.message}: more than --accounts-max`);
    throw error;
  });
  // replayLedger keeps the accounts in a Map.
  const accounts = state.accounts as Map<string, AccountState>;
  const trialBalance = trialBalanceOf(accounts.values(), currencies);
  const balances: Record<string, Balance | null> = {};
  for (const accountId of options.accountIds) {
    const account = accounts.get(accountId);
    balances[accountId] = account === undefined ? null : balanceOf(account, currencies);
  }
  return { ...base, lastIncludedVersion: state.version, trialBalance, balances, ok: trialBalance.totals.every((total) => total.balanced) };
}
