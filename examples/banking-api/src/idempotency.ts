/**
 * `Idempotency-Key` storage in PostgreSQL (`banking_api.idempotency_keys`, tenant-scoped under
 * row-level security). A POST first claims its key with the request's fingerprint, runs, then
 * stores its answer; a retry with the same key and fingerprint gets that answer back, a
 * different fingerprint is refused, and a retry while the first is still running is told so.
 *
 * Claims and answers arriving together are written together: one statement per tenant per
 * flush, the way the ledger writer batches commands, so that the keys cost two round trips per
 * batch of requests rather than per request.
 *
 * An answer counts from the moment it is handed to `finish`: until its row is written, a claim of
 * the same key in this process is answered from memory, so the caller may send the response
 * without waiting for the write (see {@link IdempotencyStore.isBehind} for when it should wait).
 */
import { createHash } from 'node:crypto';
import { canonicalJson, type JsonValue } from '@ledgerkit/ledger-core';
import { withPooledClient, type ClientPool } from '@ledgerkit/tenant-rls';
import { API_SCHEMA } from './migrations.js';

/** A stored answer. */
export interface StoredResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The body exactly as it was sent. */
  readonly body: string;
}

/** The outcome of a claim. */
export type ClaimResult =
  /**
   * The key is this request's: run it, then `finish`. `nonce` is drawn anew for a new request with
   * the key (a first claim, one after the key expired, another body after a release) and kept for
   * the same request claimed again; `null` for a key claimed before nonces existed.
   */
  | { readonly kind: 'claimed'; readonly nonce: string | null }
  /** The key already answered this same request: send `response` again. */
  | { readonly kind: 'replay'; readonly response: StoredResponse }
  /** The key was used for a different request. */
  | { readonly kind: 'mismatch' }
  /** The first request with this key is still running (or died less than a lease ago). */
  | { readonly kind: 'in_progress' };

/** Identifies one key. */
export interface KeyRef {
  readonly tenantId: string;
  readonly clientId: string;
  readonly key: string;
  readonly fingerprint: string;
}

/** Options of an {@link IdempotencyStore}. */
export interface IdempotencyStoreOptions {
  /** Pool of the application role. */
  readonly pool: ClientPool;
  /** How long keys are kept, ms. */
  readonly ttlMs: number;
  /** How long an unfinished claim blocks retries, ms. */
  readonly leaseMs: number;
  /** Most keys per statement; default 500. */
  readonly batchMax?: number;
  /** How often expired keys of active tenants are deleted, ms; default 60,000. */
  readonly sweepIntervalMs?: number;
  /**
   * Most answers held in memory while they wait to be written (1..1,000,000, default 10,000):
   * past it {@link IdempotencyStore.isBehind} is true and callers should wait for their writes.
   */
  readonly unwrittenAnswersMax?: number;
}

/** Hard ceiling of `unwrittenAnswersMax`. */
export const UNWRITTEN_ANSWERS_MAX_LIMIT = 1_000_000;

interface PendingClaim {
  readonly ref: KeyRef;
  readonly resolve: (result: ClaimResult) => void;
  readonly reject: (error: unknown) => void;
}

interface PendingFinish {
  readonly ref: KeyRef;
  /** `undefined` gives the key back. */
  readonly response: StoredResponse | undefined;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

interface ClaimRow {
  readonly o_ord: number;
  readonly o_claimed: boolean;
  readonly o_fingerprint: string | null;
  readonly o_state: 'pending' | 'done' | null;
  readonly o_status: number | null;
  readonly o_headers: Record<string, string> | null;
  readonly o_body: string | null;
  readonly o_nonce: string | null;
}

const CLAIM_SQL = `SELECT * FROM ${API_SCHEMA}.claim_idempotency_keys($1, $2::text[], $3::text[], $4::text[], $5, $6)`;
const FINISH_SQL = `SELECT ${API_SCHEMA}.finish_idempotency_keys($1, $2::text[], $3::text[], $4::text[], $5::integer[], $6::jsonb[], $7::text[])`;
const EXPIRE_SQL = `SELECT ${API_SCHEMA}.expire_idempotency_keys($1, 1000) AS deleted`;

/**
 * The fingerprint of a request: what must be equal for a retry to count as the same request.
 * The body is compared in canonical form, so key order and whitespace do not matter.
 */
export function requestFingerprint(parts: { method: string; route: string; params: unknown; ledgerId: string; body: unknown }): string {
  const hash = createHash('sha256');
  hash.update(`${parts.method} ${parts.route}\n${parts.ledgerId}\n`);
  hash.update(canonicalJson((parts.params ?? null) as JsonValue));
  hash.update('\n');
  hash.update(canonicalJson((parts.body ?? null) as JsonValue));
  return hash.digest('base64url');
}

/** Batched, tenant-scoped idempotency keys; see the module comment. */
export class IdempotencyStore {
  readonly #pool: ClientPool;
  readonly #ttlMs: number;
  readonly #leaseMs: number;
  readonly #batchMax: number;
  readonly #claims = new Map<string, PendingClaim[]>();
  readonly #finishes = new Map<string, PendingFinish[]>();
  readonly #tenantsSeen = new Set<string>();
  readonly #inFlight = new Set<Promise<void>>();
  /** Answers handed to `finish` and not yet written, by {@link keyIdOf}. */
  readonly #unwritten = new Map<string, UnwrittenAnswer>();
  readonly #unwrittenMax: number;
  readonly #sweepTimer: NodeJS.Timeout;
  #flushScheduled = false;

  constructor(options: IdempotencyStoreOptions) {
    this.#pool = options.pool;
    this.#ttlMs = options.ttlMs;
    this.#leaseMs = options.leaseMs;
    this.#batchMax = options.batchMax ?? 500;
    const unwrittenMax = options.unwrittenAnswersMax ?? 10_000;
    if (!Number.isInteger(unwrittenMax) || unwrittenMax < 1 || unwrittenMax > UNWRITTEN_ANSWERS_MAX_LIMIT) {
      throw new RangeError(`unwrittenAnswersMax must be an integer in 1..${UNWRITTEN_ANSWERS_MAX_LIMIT}, got ${String(unwrittenMax)}`);
    }
    this.#unwrittenMax = unwrittenMax;
    this.#sweepTimer = setInterval(() => void this.#sweep(), options.sweepIntervalMs ?? 60_000);
    this.#sweepTimer.unref();
  }

  /** Claims a key for a request (see {@link ClaimResult}). */
  claim(ref: KeyRef): Promise<ClaimResult> {
    const unwritten = this.#unwritten.get(keyIdOf(ref));
    if (unwritten !== undefined) {
      return Promise.resolve(unwritten.fingerprint === ref.fingerprint ? { kind: 'replay', response: unwritten.response } : { kind: 'mismatch' });
    }
    return new Promise<ClaimResult>((resolve, reject) => {
      push(this.#claims, ref.tenantId, { ref, resolve, reject });
      this.#schedule();
    });
  }

  /**
   * Stores the answer of a claimed key, or (with `undefined`) releases the key for a retry (kept,
   * with its nonce, until it expires: the same request claims it again with the same nonce).
   * An answer is replayed to claims in this process at once; the promise settles when it is
   * written (a failed write leaves the key claimed until its lease runs out, so a retry after
   * that runs the request again). A key given back is free only once the promise resolves.
   */
  finish(ref: KeyRef, response: StoredResponse | undefined): Promise<void> {
    const id = keyIdOf(ref);
    const unwritten = response === undefined ? undefined : { fingerprint: ref.fingerprint, response };
    if (unwritten !== undefined) this.#unwritten.set(id, unwritten);
    const written = new Promise<void>((resolve, reject) => {
      push(this.#finishes, ref.tenantId, { ref, response, resolve, reject });
      this.#schedule();
    });
    if (unwritten === undefined) return written;
    const forget = (): void => {
      if (this.#unwritten.get(id) === unwritten) this.#unwritten.delete(id);
    };
    return written.then(forget, (error: unknown) => {
      forget();
      throw error;
    });
  }

  /**
   * Whether more answers wait to be written than `unwrittenAnswersMax`: the database is behind,
   * and a caller should wait for its answer's write before it responds (back-pressure).
   */
  isBehind(): boolean {
    return this.#unwritten.size > this.#unwrittenMax;
  }

  /** Claims and answers queued or being written now (for the metrics). */
  backlog(): number {
    let queued = 0;
    for (const list of this.#claims.values()) queued += list.length;
    for (const list of this.#finishes.values()) queued += list.length;
    return queued + this.#inFlight.size;
  }

  /** Waits for every queued claim and answer to be written, and stops the expiry sweep. */
  async close(): Promise<void> {
    clearInterval(this.#sweepTimer);
    while (this.#claims.size > 0 || this.#finishes.size > 0 || this.#inFlight.size > 0) {
      if (this.#claims.size > 0 || this.#finishes.size > 0) this.#flush();
      await Promise.allSettled([...this.#inFlight]);
    }
  }

  #schedule(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // The next turn of the event loop: requests parsed in the same turn share one statement.
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    for (const [tenantId, claims] of this.#claims) {
      this.#claims.delete(tenantId);
      for (let start = 0; start < claims.length; start += this.#batchMax) this.#track(this.#writeClaims(tenantId, claims.slice(start, start + this.#batchMax)));
    }
    for (const [tenantId, finishes] of this.#finishes) {
      this.#finishes.delete(tenantId);
      for (let start = 0; start < finishes.length; start += this.#batchMax) this.#track(this.#writeFinishes(tenantId, finishes.slice(start, start + this.#batchMax)));
    }
  }

  #track(work: Promise<void>): void {
    this.#inFlight.add(work);
    void work.finally(() => this.#inFlight.delete(work));
  }

  async #writeClaims(tenantId: string, claims: PendingClaim[]): Promise<void> {
    this.#tenantsSeen.add(tenantId);
    // One statement may not claim the same key twice: a second request with a key that is in
    // this very batch is, by definition, a concurrent duplicate if it is the same request (409,
    // in progress), and a reuse of the key if its body differs (422), as it would be a moment later.
    const unique: PendingClaim[] = [];
    const firstFingerprint = new Map<string, string>();
    for (const claim of claims) {
      const id = keyIdOf(claim.ref);
      const first = firstFingerprint.get(id);
      if (first === undefined) {
        firstFingerprint.set(id, claim.ref.fingerprint);
        unique.push(claim);
      } else claim.resolve(first === claim.ref.fingerprint ? { kind: 'in_progress' } : { kind: 'mismatch' });
    }
    // Every batch takes its keys' rows in one order, so two batches (two processes) claiming some
    // of the same keys wait for each other instead of deadlocking.
    unique.sort(byKey);
    try {
      const rows = await withPooledClient(this.#pool, async (client) =>
        (
          await client.query<ClaimRow>(CLAIM_SQL, [
            tenantId,
            unique.map((claim) => claim.ref.clientId),
            unique.map((claim) => claim.ref.key),
            unique.map((claim) => claim.ref.fingerprint),
            this.#leaseMs,
            this.#ttlMs,
          ])
        ).rows,
      );
      for (const row of rows) {
        const claim = unique[row.o_ord - 1];
        if (claim === undefined) continue;
        claim.resolve(claimResultOf(row, claim.ref.fingerprint));
      }
    } catch (error) {
      for (const claim of unique) claim.reject(error);
    }
  }

  async #writeFinishes(tenantId: string, finishes: PendingFinish[]): Promise<void> {
    // In the claims' order (stable: a key answered twice in one turn keeps its two answers' order).
    finishes.sort(byKey);
    try {
      await withPooledClient(this.#pool, (client) =>
        client.query(FINISH_SQL, [
          tenantId,
          finishes.map((finish) => finish.ref.clientId),
          finishes.map((finish) => finish.ref.key),
          finishes.map((finish) => finish.ref.fingerprint),
          finishes.map((finish) => finish.response?.status ?? null),
          finishes.map((finish) => (finish.response === undefined ? null : JSON.stringify(finish.response.headers))),
          finishes.map((finish) => finish.response?.body ?? null),
        ]),
      );
      for (const finish of finishes) finish.resolve();
    } catch (error) {
      for (const finish of finishes) finish.reject(error);
    }
  }

  async #sweep(): Promise<void> {
    for (const tenantId of [...this.#tenantsSeen]) {
      try {
        await withPooledClient(this.#pool, (client) => client.query(EXPIRE_SQL, [tenantId]));
      } catch {
        // The next sweep tries again; expired keys are ignored by claims meanwhile.
        return;
      }
    }
  }
}

function claimResultOf(row: ClaimRow, fingerprint: string): ClaimResult {
  if (row.o_claimed) return { kind: 'claimed', nonce: row.o_nonce };
  if (row.o_fingerprint !== fingerprint) return { kind: 'mismatch' };
  if (row.o_state === 'done' && row.o_status !== null && row.o_body !== null) {
    return { kind: 'replay', response: { status: row.o_status, headers: row.o_headers ?? {}, body: row.o_body } };
  }
  return { kind: 'in_progress' };
}

/** An answer waiting to be written. */
interface UnwrittenAnswer {
  readonly fingerprint: string;
  readonly response: StoredResponse;
}

/** One key's identity: tenant, client and key. */
function keyIdOf(ref: KeyRef): string {
  return `${ref.tenantId}\u0000${ref.clientId}\u0000${ref.key}`;
}

/** Orders claims or answers by client and key (code units): the order a batch takes their rows in. */
function byKey(a: { readonly ref: KeyRef }, b: { readonly ref: KeyRef }): number {
  if (a.ref.clientId !== b.ref.clientId) return a.ref.clientId < b.ref.clientId ? -1 : 1;
  if (a.ref.key !== b.ref.key) return a.ref.key < b.ref.key ? -1 : 1;
  return 0;
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
