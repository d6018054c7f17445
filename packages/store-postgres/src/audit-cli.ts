/**
 * `ledgerkit-audit`: an auditor's replay of one ledger, straight from the PostgreSQL log and
 * nothing else (no read model, no writer). It checks the whole hash chain, replays the events to
 * a point (a ledger version, a recorded time or an effective time; default the head), and prints
 * one JSON document: the chain's verdict, the trial balance at that point with per-currency
 * totals, and the balances of the accounts asked for. The exit code is the verdict: 0 when the
 * chain holds and every currency balances, 1 when either does not (or when an event breaks the
 * ledger's invariants), 2 when the audit could not run (bad arguments, an `--upcasters` module
 * that gives no registry, no connection, an event it cannot read, a ledger with neither an event
 * the role can read nor a recorded head — a mistyped tenant or ledger id must not pass as an
 * empty, balanced ledger — or a version past the ledger's head).
 *
 * The chain is an unkeyed SHA-256 chain: it shows a change made by someone who did not recompute
 * every later hash, and events missing at the end (the chain ends short of the head the
 * database records), but not a rewrite by a superuser or the tables' owner who disabled the
 * triggers and recomputed the hashes after it. Against that, the auditor keeps the head hash of
 * an earlier report outside the database and gives it back with `--expect-head-hash`: the audit
 * then fails unless that event is still in the verified chain.
 *
 * It reads events with the built-in upcasters, plus the steps of the `--upcasters` module, if
 * given (the module's code runs in the audit's process: give it only a module you trust).
 *
 * It connects as the application role (row-level security applies, and the store refuses a role
 * that escapes it), reads only, and keeps in memory the ledger's accounts and open holds, never
 * its events.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  balanceOf,
  CurrencyRegistry,
  EventCodec,
  ID_PATTERN,
  ID_PATTERN_MESSAGE,
  InvalidInputError,
  LimitExceededError,
  parseAsOf,
  readLedger,
  replayLedger,
  trialBalanceOf,
  UpcasterRegistry,
  verifyChain,
  type AsOf,
  type Balance,
  type ChainVerification,
  type Currency,
  type ReplayedState,
  type StoredEvent,
  type TrialBalance,
} from '@ledgerkit/ledger-core';
import { withTenant } from '@ledgerkit/tenant-rls';
import pg from 'pg';
import { PostgresEventStore } from './postgres-event-store.js';

/** The usage text `--help` prints and a bad argument repeats. */
export const AUDIT_USAGE = `usage: ledgerkit-audit --tenant <id> --ledger <id> [options]

  --database-url <url>         the application role's URL, postgres://… or postgresql://…
                               (default: DATABASE_URL; a libpq keyword string is refused)
  --as-of-version <n>          the state after event n
  --as-of-recorded <instant>   what the ledger knew at that instant (ISO-8601 with an offset)
  --as-of-effective <instant>  the books as of that business time, back-dated events included
  --account <id>               also print this account's balance (repeatable, at most 1,000)
  --currency <CODE:scale>      a custom asset of the ledger, e.g. POINTS:0 (repeatable)
  --accounts-max <n>           refuse a ledger with more accounts (default 1,000,000)
  --upcasters <module>         an ES module whose default export (or export \`upcasters\`) is an
                               UpcasterRegistry, or a function that registers steps on the
                               registry it is given; the built-in steps always apply
  --upcasters-timeout-ms <n>   how long that module may take to load and give its registry,
                               1..600,000 ms (default 30,000)
  --connect-timeout-ms <n>     how long to wait for the database to accept a connection,
                               1..600,000 ms (default 10,000)
  --expect-head-hash <hash>    the chain.lastHash of an earlier report (64 hex digits), kept
                               outside the database: the audit fails unless the event with that
                               hash is still in the verified chain (the ledger may have grown)

Prints one JSON document. Exit code 0: the chain holds, it reaches the head the database
records for the ledger, every currency balances, and the --expect-head-hash event, if given, is
in the chain; 1: it does not (events missing at the end count, and so does an --as-of-version
that only they reached, and an event that breaks the ledger's invariants); 2: the audit could
not run (also for a ledger with no events and no recorded head, which is most often a mistyped
--tenant or --ledger, for --as-of-version past the ledger's head, for an --upcasters module that
gives no registry, or none within --upcasters-timeout-ms, for a server that does not accept the
connection within --connect-timeout-ms or answer a query within 120 s, and for an option given
twice).`;

/** Most `--account` arguments. */
const ACCOUNTS_LISTED_MAX = 1_000;
/** Default and ceiling of `--accounts-max`. */
const ACCOUNTS_MAX_DEFAULT = 1_000_000;
/** Connections the audit opens: it reads one page at a time. */
const POOL_SIZE = 2;
/** Default of `--connect-timeout-ms`: a host that accepts and stays silent must not hang the audit. */
const CONNECT_TIMEOUT_MS_DEFAULT = 10_000;
/** Ceiling of `--connect-timeout-ms`, ms: ten minutes. */
const CONNECT_TIMEOUT_MS_MAX = 600_000;
/** How long it waits for any one query's answer, ms (a page of events, the head). */
const QUERY_TIMEOUT_MS = 120_000;
/** Options that take one value: given twice, an auditor's script would silently audit the last one. */
const SINGLE_VALUE_OPTIONS = ['database-url', 'tenant', 'ledger', 'as-of-version', 'as-of-recorded', 'as-of-effective', 'accounts-max', 'upcasters', 'upcasters-timeout-ms', 'connect-timeout-ms', 'expect-head-hash'];
/** The URL schemes node-postgres reads a connection string of: anything else it misreads (a host named `base`, say). */
const DATABASE_URL_PROTOCOLS = ['postgres:', 'postgresql:'];
/** An event hash: 64 hex digits (reports print them in lower case; either case is accepted). */
const HEAD_HASH_PATTERN = /^[0-9a-fA-F]{64}$/;
/** Longest `--upcasters` path. */
const MODULE_PATH_LENGTH_MAX = 4_096;
/**
 * Default of `--upcasters-timeout-ms`: how long, in milliseconds, the `--upcasters` module may
 * take to load (its top-level `await` included) and give its registry (the promise its function
 * returns included). A module that never settles would otherwise hang the audit, or let it end
 * with no report at all once nothing else keeps the process running.
 */
export const UPCASTERS_LOAD_TIMEOUT_MS_DEFAULT = 30_000;
/** Ceiling of `--upcasters-timeout-ms`, in milliseconds. */
export const UPCASTERS_LOAD_TIMEOUT_MS_MAX = 600_000;

/** What the audit prints. */
export interface AuditReport {
  readonly tenantId: string;
  readonly ledgerId: string;
  /** The point replayed to; `null` for the head. */
  readonly asOf: AsOf | null;
  /** The whole stream's chain, checked from the first event to the head. */
  readonly chain: ChainVerification;
  /**
   * The ledger's head as the database records it (`ledgerkit.ledger_streams`, read before the
   * chain), and whether the chain reaches it: events deleted from the end of a stream leave a
   * chain that holds, but one that ends short of the recorded head.
   */
  readonly head: { readonly recordedVersion: number; readonly reached: boolean };
  /**
   * With `--expect-head-hash` only: the hash given, and the version of the event of the verified
   * chain that has it (`found: false` and `ledgerVersion: null` when no such event is there: the
   * events up to it were rewritten or deleted since the report it was taken from).
   */
  readonly expectedHeadHash?: ExpectedHeadHash;
  /**
   * Version of the last event the replay took in (the head's with no point; with an effective
   * time, the last event effective by then; never past `chain.lastVersion`: events appended
   * after the chain was verified are not counted); `null` when the chain is broken, when
   * `--as-of-version` names a version the recorded head passes but no surviving event reaches,
   * or when the replay met an event that breaks the ledger's invariants (`invalidEvent`).
   */
  readonly lastIncludedVersion: number | null;
  /**
   * At the point; `null` when the chain is broken (replay stops at the first bad link), the
   * point is past the surviving events (see `lastIncludedVersion`), or an event breaks the
   * ledger's invariants.
   */
  readonly trialBalance: TrialBalance | null;
  /**
   * Only when the replay met one: the event, readable and correctly hashed, that breaks the
   * ledger's invariants (a posting on an account never opened, say), which no writer decides but
   * a client holding the application role can append.
   */
  readonly invalidEvent?: InvalidEvent;
  /** The accounts asked for, `null` for one not opened by then. */
  readonly balances: Readonly<Record<string, Balance | null>>;
  /**
   * The chain holds and reaches the recorded head, every currency's debits equal its credits, no
   * event replayed breaks the ledger's invariants, and the `--expect-head-hash` event, if given,
   * is in the chain.
   */
  readonly ok: boolean;
}

/** The report's {@link AuditReport.invalidEvent}. */
export interface InvalidEvent {
  /** The event's version. */
  readonly ledgerVersion: number;
  /** What is wrong with it: its type and the invariant it breaks. */
  readonly reason: string;
}

/** The report's {@link AuditReport.expectedHeadHash}: whether the event an earlier report ended at is still in the chain. */
export interface ExpectedHeadHash {
  /** The hash given with `--expect-head-hash`, in lower case. */
  readonly hash: string;
  /** Whether an event of the verified chain has this hash. */
  readonly found: boolean;
  /** That event's version, `null` when none has it. */
  readonly ledgerVersion: number | null;
}

/** Where the audit writes: the report to `out`, a reason it could not run to `err`. */
export interface AuditOutput {
  out(text: string): void;
  err(text: string): void;
}

/** A reason the audit cannot run, reported with the usage text. */
class UsageError extends Error {}

/** Why the `--upcasters` module gives no registry. */
class UpcastersModuleError extends Error {
  constructor(path: string, reason: string, cause?: unknown) {
    super(`--upcasters ${path}: ${reason}`, cause === undefined ? undefined : { cause });
  }
}

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
  let upcasters: UpcasterRegistry | undefined;
  try {
    // Before any connection: a module that gives no registry in time ends the audit here.
    upcasters = options.upcastersPath === undefined ? undefined : await upcastersWithin(options.upcastersPath, options.upcastersTimeoutMs);
  } catch (error) {
    output.err(`ledgerkit-audit: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: POOL_SIZE, connectionTimeoutMillis: options.connectTimeoutMs, query_timeout: QUERY_TIMEOUT_MS });
  // A connection that drops while idle must not end the process with an unhandled error.
  pool.on('error', () => undefined);
  try {
    const report = await audit(pool, options, upcasters);
    output.out(`${JSON.stringify(report, null, 2)}\n`);
    // The report says it too (`invalidEvent`); a reader of the exit code alone is told which event.
    if (report.invalidEvent !== undefined) output.err(`ledgerkit-audit: event at ledger version ${report.invalidEvent.ledgerVersion}: ${report.invalidEvent.reason}\n`);
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
  /** `--upcasters`, as given. */
  readonly upcastersPath: string | undefined;
  /** `--upcasters-timeout-ms`, or its default. */
  readonly upcastersTimeoutMs: number;
  /** `--connect-timeout-ms`, or its default. */
  readonly connectTimeoutMs: number;
  /** `--expect-head-hash`, in lower case. */
  readonly expectedHeadHash: string | undefined;
}

type AuditOptions = AuditOptionsParsed | 'help';

function auditOptionsOf(argv: readonly string[], env: NodeJS.ProcessEnv): AuditOptions {
  const { values, tokens } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    tokens: true,
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
      upcasters: { type: 'string' },
      'upcasters-timeout-ms': { type: 'string' },
      'connect-timeout-ms': { type: 'string' },
      'expect-head-hash': { type: 'string' },
    },
  });
  if (values.help === true) return 'help';
  for (const name of SINGLE_VALUE_OPTIONS) {
    if (tokens.filter((token) => token.kind === 'option' && token.name === name).length > 1) throw new UsageError(`--${name} given more than once`);
  }
  const databaseUrl = values['database-url'] ?? env['DATABASE_URL'];
  if (databaseUrl === undefined || databaseUrl === '') throw new UsageError('give --database-url or set DATABASE_URL');
  checkDatabaseUrl(databaseUrl, values['database-url'] === undefined ? 'DATABASE_URL' : '--database-url');
  if (values.tenant === undefined || values.ledger === undefined) throw new UsageError('--tenant and --ledger are required');
  // Each point with the option and the text that gave it, so that a bad value is reported as typed.
  const points: GivenPoint[] = [];
  if (values['as-of-version'] !== undefined) {
    const text = values['as-of-version'];
    // 16 digits may still pass Number.MAX_SAFE_INTEGER, which parseAsOf refuses (checkPoint).
    if (!/^\d{1,16}$/.test(text)) throw new UsageError('--as-of-version must be a non-negative integer');
    points.push({ option: '--as-of-version', text, asOf: { ledgerVersion: Number(text) } });
  }
  const recorded = values['as-of-recorded'];
  if (recorded !== undefined) points.push({ option: '--as-of-recorded', text: recorded, asOf: { recordedAt: recorded } });
  const effective = values['as-of-effective'];
  if (effective !== undefined) points.push({ option: '--as-of-effective', text: effective, asOf: { effectiveAt: effective } });
  if (points.length > 1) throw new UsageError('give at most one of --as-of-version, --as-of-recorded, --as-of-effective');
  const point = points[0];
  if (point !== undefined) checkPoint(point);
  const asOf = point?.asOf;
  const accountIds = values.account ?? [];
  if (accountIds.length > ACCOUNTS_LISTED_MAX) throw new UsageError(`at most ${ACCOUNTS_LISTED_MAX} --account arguments`);
  for (const accountId of accountIds) {
    // No account has such an id; `__proto__` would also be lost from the report's `balances`.
    if (!ID_PATTERN.test(accountId)) throw new UsageError(`--account ${JSON.stringify(accountId)}: an account id ${ID_PATTERN_MESSAGE}`);
  }
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
  const upcastersPath = values.upcasters;
  if (upcastersPath !== undefined && (upcastersPath.length < 1 || upcastersPath.length > MODULE_PATH_LENGTH_MAX)) {
    throw new UsageError(`--upcasters must be a path of 1..${MODULE_PATH_LENGTH_MAX} characters`);
  }
  const timeoutText = values['upcasters-timeout-ms'] ?? String(UPCASTERS_LOAD_TIMEOUT_MS_DEFAULT);
  const upcastersTimeoutMs = Number(timeoutText);
  if (!/^\d{1,6}$/.test(timeoutText) || upcastersTimeoutMs < 1 || upcastersTimeoutMs > UPCASTERS_LOAD_TIMEOUT_MS_MAX) {
    throw new UsageError(`--upcasters-timeout-ms must be an integer in 1..${UPCASTERS_LOAD_TIMEOUT_MS_MAX}`);
  }
  const connectText = values['connect-timeout-ms'] ?? String(CONNECT_TIMEOUT_MS_DEFAULT);
  const connectTimeoutMs = Number(connectText);
  if (!/^\d{1,6}$/.test(connectText) || connectTimeoutMs < 1 || connectTimeoutMs > CONNECT_TIMEOUT_MS_MAX) {
    throw new UsageError(`--connect-timeout-ms must be an integer in 1..${CONNECT_TIMEOUT_MS_MAX.toLocaleString('en-US')}`);
  }
  const expectedHeadHash = values['expect-head-hash'];
  if (expectedHeadHash !== undefined && !HEAD_HASH_PATTERN.test(expectedHeadHash)) {
    throw new UsageError('--expect-head-hash must be an event hash: 64 hex digits, such as the chain.lastHash of an earlier report');
  }
  return {
    databaseUrl,
    tenantId: values.tenant,
    ledgerId: values.ledger,
    asOf,
    accountIds,
    currencies: new CurrencyRegistry(custom),
    accountsMax,
    upcastersPath,
    upcastersTimeoutMs,
    connectTimeoutMs,
    expectedHeadHash: expectedHeadHash?.toLowerCase(),
  };
}

/** A point given on the command line: the option, its value as typed, and the point it names. */
interface GivenPoint {
  readonly option: '--as-of-version' | '--as-of-recorded' | '--as-of-effective';
  readonly text: string;
  readonly asOf: AsOf;
}

/**
 * Checks a point as the replay will (`parseAsOf`), and words a refusal as a usage error naming
 * the option and the value typed: the library's path (`asOf.recordedAt`) is not what the auditor
 * typed.
 */
function checkPoint({ option, text, asOf }: GivenPoint): void {
  try {
    parseAsOf(asOf);
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    const problem = option === '--as-of-version' ? `must be a non-negative integer of at most ${Number.MAX_SAFE_INTEGER}` : (error.issues[0]?.message ?? 'is not a valid instant');
    throw new UsageError(`${option} ${JSON.stringify(text)} ${problem}`);
  }
}

/**
 * Refuses a database URL that node-postgres would misread: a libpq keyword string
 * (`host=… user=…`) or a URL without its scheme (`user:pw@host/db`) is read as a URL relative to
 * some base, and the audit then fails late with a host it never meant. The message names where
 * the value came from (`source`), never the value: it may hold a password.
 */
function checkDatabaseUrl(databaseUrl: string, source: string): void {
  let protocol: string | undefined;
  try {
    protocol = new URL(databaseUrl).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol === undefined || !DATABASE_URL_PROTOCOLS.includes(protocol)) {
    throw new UsageError(`${source} must be a URL with the scheme postgres: or postgresql:, such as postgres://user:password@host:5432/database (a libpq keyword string, host=… user=…, is not accepted); its value is not shown, as it may hold a password`);
  }
}

/**
 * {@link upcastersFrom}, bounded: an {@link UpcastersModuleError} when the module has not given
 * its registry within `timeoutMs`. The pending timer keeps the process running until then, so
 * a module that never settles ends the audit with exit code 2, not with nothing. (Its loading
 * cannot be cancelled: it goes on in the background, and the command exits all the same.)
 */
async function upcastersWithin(path: string, timeoutMs: number): Promise<UpcasterRegistry> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new UpcastersModuleError(
          path,
          `gave no registry within ${timeoutMs} ms (its top-level await, or the promise its function returned, has not settled): fix the module, or give it longer with --upcasters-timeout-ms`,
        ),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([upcastersFrom(path), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Why a registry from another copy of ledger-core cannot be used. */
const FOREIGN_REGISTRY = '(it comes from another copy of @ledgerkit/ledger-core than the one the command runs with)';

/**
 * The registry of the `--upcasters` module at `path` (relative to the working directory): its
 * default export or, without one, its export `upcasters`; either an `UpcasterRegistry` or a
 * function called once with a new registry (which holds the built-in steps) to register steps on,
 * that returns nothing, that registry or another one (a promise of either is awaited). Throws
 * {@link UpcastersModuleError} saying what is wrong.
 */
async function upcastersFrom(path: string): Promise<UpcasterRegistry> {
  const file = resolve(path);
  const found = await stat(file).catch(() => undefined);
  if (found === undefined || !found.isFile()) throw new UpcastersModuleError(path, `no such file (looked for ${file})`);
  let exported: Record<string, unknown>;
  try {
    exported = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    throw new UpcastersModuleError(path, `could not be loaded: ${error instanceof Error ? error.message : String(error)}`, error);
  }
  const { default: byDefault, upcasters: named } = exported;
  if (byDefault !== undefined && named !== undefined && byDefault !== named) {
    throw new UpcastersModuleError(path, 'exports both a default export and `upcasters`: export only one');
  }
  const given = byDefault ?? named;
  if (given === undefined) throw new UpcastersModuleError(path, 'exports neither a default export nor `upcasters`');
  if (given instanceof UpcasterRegistry) return given;
  if (typeof given === 'function') {
    const registry = new UpcasterRegistry();
    let returned: unknown;
    try {
      returned = await (given as (registry: UpcasterRegistry) => unknown)(registry);
    } catch (error) {
      throw new UpcastersModuleError(path, `its function failed: ${error instanceof Error ? error.message : String(error)}`, error);
    }
    if (returned === undefined) return registry;
    if (returned instanceof UpcasterRegistry) return returned;
    if (isForeignRegistry(returned)) {
      throw new UpcastersModuleError(path, `its function returned an UpcasterRegistry that is not this command's ${FOREIGN_REGISTRY}: register the steps on the registry it is given and return nothing`);
    }
    throw new UpcastersModuleError(path, 'its function must return nothing or an UpcasterRegistry');
  }
  if (isForeignRegistry(given)) throw new UpcastersModuleError(path, `its UpcasterRegistry is not this command's ${FOREIGN_REGISTRY}: export a function that registers the steps on the registry it is given`);
  throw new UpcastersModuleError(path, 'must be an UpcasterRegistry or a function that registers steps on the registry it is given');
}

/** Whether `value` looks like an `UpcasterRegistry` that is not an instance of this one's class. */
function isForeignRegistry(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as { register?: unknown; upcast?: unknown };
  return typeof candidate.register === 'function' && typeof candidate.upcast === 'function';
}

async function audit(pool: pg.Pool, options: AuditOptionsParsed, upcasters: UpcasterRegistry | undefined): Promise<AuditReport> {
  const { tenantId, ledgerId, asOf, currencies } = options;
  const store = await PostgresEventStore.open({ pool });
  const source = { store, codec: new EventCodec({ currencies, ...(upcasters === undefined ? {} : { upcasters }) }), tenantId, ledgerId };
  // The head first: events appended while the chain is read only take the chain past it.
  const recordedVersion = await withTenant(pool, tenantId, async (client) =>
    Number((await client.query<{ version: string }>(`SELECT version FROM ledgerkit.ledger_streams WHERE tenant_id = $1 AND ledger_id = $2`, [tenantId, ledgerId])).rows[0]?.version ?? 0),
  { readOnly: true });
  // The version of the event whose hash is the expected one, as the chain is read past it.
  let expectedAt: number | undefined;
  const expectedHash = options.expectedHeadHash;
  const events = readLedger(source, { verify: false });
  const chain = await verifyChain(expectedHash === undefined ? events : watchForHash(events, expectedHash, (version) => (expectedAt ??= version)));
  if (chain.ok && chain.eventCount === 0 && recordedVersion === 0) {
    // Row-level security answers a wrong tenant, and the store a wrong ledger, with no rows: an
    // empty ledger would pass as a sound, balanced one. Only then: a chain broken at its first
    // event (changed or deleted) also counts no event, and a ledger whose every event was
    // deleted still has its recorded head; both are verdicts (exit 1), not a mistyped id.
    throw new Error(`tenant ${JSON.stringify(tenantId)} has no events in ledger ${JSON.stringify(ledgerId)} that this role can read: check --tenant and --ledger`);
  }
  const head = { recordedVersion, reached: chain.ok && chain.lastVersion >= recordedVersion };
  // Only the events verifyChain accepted count: with a broken chain, those below the broken link.
  const verifiedAt = expectedAt !== undefined && (chain.ok || expectedAt < chain.brokenAt.ledgerVersion) ? expectedAt : undefined;
  const expected: ExpectedHeadHash | undefined = expectedHash === undefined ? undefined : { hash: expectedHash, found: verifiedAt !== undefined, ledgerVersion: verifiedAt ?? null };
  const base = { tenantId, ledgerId, asOf: asOf ?? null, chain, head, ...(expected === undefined ? {} : { expectedHeadHash: expected }) };
  if (!chain.ok) return { ...base, lastIncludedVersion: null, trialBalance: null, balances: {}, ok: false };
  if (asOf !== undefined && 'ledgerVersion' in asOf && asOf.ledgerVersion > chain.lastVersion) {
    // The head is the later of the chain's end and the recorded head: events deleted from the end
    // leave versions the database recorded but no event reaches, and such a point fails the audit.
    const headVersion = Math.max(chain.lastVersion, recordedVersion);
    if (asOf.ledgerVersion > headVersion) throw new Error(`--as-of-version ${asOf.ledgerVersion} is past the ledger's head, version ${headVersion}`);
    return { ...base, lastIncludedVersion: null, trialBalance: null, balances: {}, ok: false };
  }
  // Whatever the point, no further than the version the chain was checked to: events appended
  // since (back-dated ones match an effective time, any a recorded time still to come) are
  // neither verified nor replayed, so the trial balance is of events the chain covered.
  let state: ReplayedState;
  try {
    state = await replayLedger(source, asOf, { accountsMax: options.accountsMax, untilVersion: chain.lastVersion });
  } catch (error) {
    if (error instanceof LimitExceededError) throw new Error(`${error.message}: more than --accounts-max`);
    const invalidEvent = invalidEventOf(error);
    if (invalidEvent === undefined) throw error;
    // A verdict on the ledger, not a reason the audit could not run: the report says which event.
    return { ...base, lastIncludedVersion: null, trialBalance: null, invalidEvent, balances: {}, ok: false };
  }
  const accounts = state.accounts;
  const trialBalance = trialBalanceOf(accounts.values(), currencies);
  // Without a prototype: an id such as `__proto__` would otherwise set it instead of a key.
  const balances: Record<string, Balance | null> = Object.create(null) as Record<string, Balance | null>;
  for (const accountId of options.accountIds) {
    const account = accounts.get(accountId);
    balances[accountId] = account === undefined ? null : balanceOf(account, currencies);
  }
  const ok = head.reached && (expected === undefined || expected.found) && trialBalance.totals.every((total) => total.balanced);
  return { ...base, lastIncludedVersion: state.version, trialBalance, balances, ok };
}

/**
 * The event `error` names when it is replay's refusal of a readable, correctly hashed event that
 * breaks the ledger's invariants (a `CorruptEventError` caused by an `InvariantViolationError`);
 * `undefined` for any other error (an event the audit cannot read is still exit code 2). Judged
 * by the errors' codes: they may come from another copy of ledger-core.
 */
function invalidEventOf(error: unknown): InvalidEvent | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const found = error as { readonly code?: unknown; readonly ledgerVersion?: unknown; readonly reason?: unknown; readonly cause?: unknown };
  const cause = found.cause as { readonly code?: unknown } | undefined;
  if (found.code !== 'corrupt_event' || cause?.code !== 'invariant_violated') return undefined;
  if (typeof found.ledgerVersion !== 'number' || typeof found.reason !== 'string') return undefined;
  return { ledgerVersion: found.ledgerVersion, reason: found.reason };
}

/** The events of `events`, as they are; `seen` is told the version of each one whose hash is `hash`. */
async function* watchForHash(events: AsyncIterable<StoredEvent>, hash: string, seen: (version: number) => void): AsyncGenerator<StoredEvent> {
  for await (const event of events) {
    if (event.hash === hash) seen(event.ledgerVersion);
    yield event;
  }
}
