import { isIP } from 'node:net';
import { TOKEN_CACHE_TTL_MS_MAX } from './auth.js';

/**
 * The API's settings. Every number has a default and a hard limit, checked once at start-up, so
 * a typo in an environment variable fails loudly instead of removing a limit.
 */

/** Settings of {@link createBankingApi}; all optional except `auth`. */
export interface ApiSettings {
  /** Largest request body accepted, bytes: 1,024..1,048,576, default 65,536. Larger answers 413. */
  readonly bodyLimitBytes: number;
  /**
   * Longest a client may take to send one whole request, headers and body, ms: 1,000..300,000,
   * default 30,000. Slower answers 408 and the connection is closed, so that a client sending a
   * byte now and then cannot hold a connection (and a graceful shutdown) open for ever.
   */
  readonly requestTimeoutMs: number;
  /** Ledger used when a request has no `Ledger-Id` header; default `main`. */
  readonly defaultLedgerId: string;
  /**
   * Addresses (IPv4 or IPv6, or CIDR ranges) of the proxies in front of the API whose
   * `X-Forwarded-For` is believed: a request's address, which keys the rate limit of requests
   * without a valid token, is then the client's, not the proxy's. At most 64; default none (every
   * request's address is its connection's). Behind a load balancer, leave it empty and every
   * client shares one address: one client's bad tokens then hold up the others' new ones.
   */
  readonly trustedProxies: readonly string[];
  /** Per-client request rate (token bucket refill), requests per second; 0 disables the limiter. 0..100,000, default 100. */
  readonly rateLimitPerSecond: number;
  /** Bucket size: requests a client may send at once after being idle. 1..100,000, default = the rate (at least 1). */
  readonly rateLimitBurst: number;
  /** Clients (buckets) tracked at once; the stalest full bucket is dropped beyond it. 100..1,000,000, default 100,000. */
  readonly rateLimitClientsMax: number;
  /**
   * Tenants served by this process at once (each has a projection runner). 1..1,000, default 64. A
   * new tenant beyond it takes the place of the least recently used idle one (see `LedgerRegistry`).
   */
  readonly tenantsMax: number;
  /** Ledgers with an open writer in this process at once; an idle one is closed to make room. 1..10,000, default 256. */
  readonly ledgersMax: number;
  /**
   * Ledgers with an open writer of one tenant at once: 1..10,000, default 16. A tenant at its bound
   * that asks for another ledger closes its own least recently used idle one (never another
   * tenant's), or is answered 503 when all of its are busy; so one tenant sending many `Ledger-Id`s
   * cannot close every other tenant's writers.
   */
  readonly ledgersPerTenantMax: number;
  /** Commands a writer queues before answering 503: 100..1,000,000, default 20,000. */
  readonly writerQueueLengthMax: number;
  /** Most commands a writer decides and appends in one batch: 1..8,190, default 1,000. */
  readonly writerBatchSizeMax: number;
  /**
   * Most memory, estimated, a writer's transfer records may take (its `transfersCachedBytesMax`;
   * older records are read from the index on a retry): 0..1 GiB, default 16 MiB. With `ledgersMax`
   * open ledgers, this times `ledgersMax` is the most they take in all (256 × 16 MiB = 4 GiB).
   */
  readonly writerTransfersCachedBytesMax: number;
  /**
   * How long a tenant's projection runner, once live, waits after each batch before reading the
   * next, so that under load a batch gathers more events (fewer read-model transactions per
   * transfer, at most this much more lag): 0..1,000 ms, default 20.
   */
  readonly projectionBatchDelayMs: number;
  /**
   * The same wait for the read models every append keeps current itself (balances and the account
   * directory, through inline hooks): their runners only apply appends made without the hooks
   * (another process, a rebuild), so they may lag more and cost fewer transactions: 0..1,000 ms,
   * default 250. A read that waits for the projections (read-your-writes) never waits for this.
   */
  readonly inlineProjectionBatchDelayMs: number;
  /** How long an idempotency key is remembered, ms: 1 minute..30 days, default 24 hours. */
  readonly idempotencyTtlMs: number;
  /** How long a claimed key whose request never finished blocks retries, ms: 1 s..10 min, default 30 s. */
  readonly idempotencyLeaseMs: number;
  /** Audit events waiting to be written; beyond it new ones are dropped and counted. 100..1,000,000, default 50,000. */
  readonly auditQueueMax: number;
  /** Most audit events written in one statement: 1..10,000, default 1,000. */
  readonly auditBatchMax: number;
  /** Longest wait between audit flushes, ms: 5..10,000, default 200. */
  readonly auditFlushIntervalMs: number;
  /** Verified tokens remembered (so a repeated token is not verified again on every request): 0..1,000,000, default 10,000. */
  readonly tokenCacheMax: number;
  /**
   * Longest a verified token is admitted without a new signature check, ms: 0..600,000 (jose's
   * JWKS refresh age; 0 remembers nothing), default 60,000. Bounds how long a process keeps
   * admitting the tokens of a key its issuer withdrew (see `TokenVerifierOptions.cacheTtlMs`).
   */
  readonly tokenCacheTtlMs: number;
  /** How long a missing transfer is waited for while the read models catch up, ms: 0..10,000, default 2,000. */
  readonly readYourWritesWaitMs: number;
  /** Most lines a trial balance returns before answering 422 `result_too_large`: 1..1,000,000, default 10,000. */
  readonly trialBalanceLinesMax: number;
  /** How long shutdown waits for in-flight work before it gives up, ms: 100..120,000, default 10,000. */
  readonly shutdownTimeoutMs: number;
  /** Check every response against its zod schema (a mismatch answers 500): for tests; default false. */
  readonly validateResponses: boolean;
}

interface NumberSetting {
  readonly min: number;
  readonly max: number;
  readonly fallback: number;
}

const NUMBER_SETTINGS = {
  bodyLimitBytes: { min: 1_024, max: 1_048_576, fallback: 65_536 },
  requestTimeoutMs: { min: 1_000, max: 300_000, fallback: 30_000 },
  rateLimitPerSecond: { min: 0, max: 100_000, fallback: 100 },
  rateLimitClientsMax: { min: 100, max: 1_000_000, fallback: 100_000 },
  tenantsMax: { min: 1, max: 1_000, fallback: 64 },
  ledgersMax: { min: 1, max: 10_000, fallback: 256 },
  ledgersPerTenantMax: { min: 1, max: 10_000, fallback: 16 },
  writerQueueLengthMax: { min: 100, max: 1_000_000, fallback: 20_000 },
  writerBatchSizeMax: { min: 1, max: 8_190, fallback: 1_000 },
  writerTransfersCachedBytesMax: { min: 0, max: 2 ** 30, fallback: 16 * 2 ** 20 },
  projectionBatchDelayMs: { min: 0, max: 1_000, fallback: 20 },
  inlineProjectionBatchDelayMs: { min: 0, max: 1_000, fallback: 250 },
  idempotencyTtlMs: { min: 60_000, max: 30 * 86_400_000, fallback: 86_400_000 },
  idempotencyLeaseMs: { min: 1_000, max: 600_000, fallback: 30_000 },
  auditQueueMax: { min: 100, max: 1_000_000, fallback: 50_000 },
  auditBatchMax: { min: 1, max: 10_000, fallback: 1_000 },
  auditFlushIntervalMs: { min: 5, max: 10_000, fallback: 200 },
  tokenCacheMax: { min: 0, max: 1_000_000, fallback: 10_000 },
  tokenCacheTtlMs: { min: 0, max: TOKEN_CACHE_TTL_MS_MAX, fallback: 60_000 },
  readYourWritesWaitMs: { min: 0, max: 10_000, fallback: 2_000 },
  trialBalanceLinesMax: { min: 1, max: 1_000_000, fallback: 10_000 },
  shutdownTimeoutMs: { min: 100, max: 120_000, fallback: 10_000 },
} as const satisfies Record<string, NumberSetting>;

/** The range of `rateLimitBurst`, whose default follows `rateLimitPerSecond`. */
const RATE_LIMIT_BURST_RANGE = { min: 1, max: 100_000 } as const;

/** Most entries of `trustedProxies`. */
const TRUSTED_PROXIES_MAX = 64;

/** An IPv4 or IPv6 address, or a CIDR range of either (`10.0.0.0/8`, `fd00::/8`). */
function isAddressOrRange(text: string): boolean {
  const [address, prefix, extra] = text.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || extra !== undefined) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/** The ledger id pattern of ledger-core, repeated for the default ledger check. */
const LEDGER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Fills in defaults and checks every limit; throws a `RangeError` naming the first bad setting. */
export function resolveSettings(given: Partial<ApiSettings> = {}): ApiSettings {
  const numbers = {} as Record<keyof typeof NUMBER_SETTINGS, number>;
  for (const [name, setting] of Object.entries(NUMBER_SETTINGS) as [keyof typeof NUMBER_SETTINGS, NumberSetting][]) {
    numbers[name] = bounded(name, given[name], setting);
  }
  const burstFallback = Math.max(1, numbers.rateLimitPerSecond);
  const rateLimitBurst = bounded('rateLimitBurst', given.rateLimitBurst, { ...RATE_LIMIT_BURST_RANGE, fallback: burstFallback });
  const defaultLedgerId = given.defaultLedgerId ?? 'main';
  if (!LEDGER_ID_PATTERN.test(defaultLedgerId)) throw new RangeError(`defaultLedgerId ${JSON.stringify(defaultLedgerId)} is not a valid ledger id`);
  const trustedProxies = [...(given.trustedProxies ?? [])];
  if (trustedProxies.length > TRUSTED_PROXIES_MAX) throw new RangeError(`trustedProxies: at most ${TRUSTED_PROXIES_MAX} entries, got ${trustedProxies.length}`);
  for (const entry of trustedProxies) {
    if (typeof entry !== 'string' || !isAddressOrRange(entry)) throw new RangeError(`trustedProxies: ${JSON.stringify(entry)} is not an IP address or CIDR range`);
  }
  return { ...numbers, rateLimitBurst, defaultLedgerId, trustedProxies, validateResponses: given.validateResponses ?? false };
}

function bounded(name: string, value: number | undefined, setting: NumberSetting): number {
  const chosen = value ?? setting.fallback;
  if (!Number.isInteger(chosen) || chosen < setting.min || chosen > setting.max) {
    throw new RangeError(`${name} must be an integer in ${setting.min}..${setting.max}, got ${String(value)}`);
  }
  return chosen;
}

/**
 * Reads settings from `BANKING_API_*` environment variables (e.g. `BANKING_API_RATE_LIMIT_PER_SECOND`,
 * the setting's name in upper snake case). Unset variables keep their defaults. A number is read
 * as {@link integerFromEnv} reads it: decimal digits only, in the setting's range, else a
 * `RangeError` naming the variable and the range (an empty or blank value, `0x10`, `1e3`, `+5`
 * are refused, not read as 0, 16, 1000 or 5).
 */
export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<ApiSettings> {
  const settings: Record<string, number | string | boolean> = {};
  const ranges: [string, { readonly min: number; readonly max: number }][] = [...Object.entries(NUMBER_SETTINGS), ['rateLimitBurst', RATE_LIMIT_BURST_RANGE]];
  for (const [name, range] of ranges) {
    const value = integerFromEnv(env, `BANKING_API_${upperSnake(name)}`, range);
    if (value !== undefined) settings[name] = value;
  }
  const ledger = env['BANKING_API_DEFAULT_LEDGER_ID'];
  if (ledger !== undefined && ledger !== '') settings['defaultLedgerId'] = ledger;
  // Comma-separated; checked by resolveSettings.
  const proxies = env['BANKING_API_TRUSTED_PROXIES'];
  const trustedProxies = proxies === undefined || proxies.trim() === '' ? {} : { trustedProxies: proxies.split(',').map((entry) => entry.trim()) };
  return { ...(settings as Partial<ApiSettings>), ...trustedProxies };
}

function upperSnake(name: string): string {
  return name.replace(/([A-Z])/g, '_$1').toUpperCase();
}

/** The range of a TCP port setting (`PORT`, `METRICS_PORT`): 0 asks the system for a free port. */
export const PORT_RANGE = { min: 0, max: 65_535 } as const;

/**
 * Longest value {@link integerFromEnv} reads: as many digits as the largest of its settings needs
 * (`BANKING_API_IDEMPOTENCY_TTL_MS`, up to 2,592,000,000), far below 2^53.
 */
const INTEGER_DIGITS_MAX = 10;

/**
 * An integer setting of the process from the environment variable `name`: `undefined` when it is
 * unset; otherwise it must be written as decimal digits only (no sign, point, exponent, space or
 * hex: `Number()` would read `''` as 0 and `'0x1F'` as 31) and lie in `range`, else a `RangeError`
 * naming the variable, the range and the value, for a start-up that fails loudly instead of, say,
 * listening on a port the system picked.
 */
export function integerFromEnv(env: NodeJS.ProcessEnv, name: string, range: { readonly min: number; readonly max: number }): number | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const value = new RegExp(`^[0-9]{1,${INTEGER_DIGITS_MAX}}$`).test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= range.min && value <= range.max)) {
    throw new RangeError(`${name} must be an integer in ${range.min}..${range.max}, got ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return value;
}
