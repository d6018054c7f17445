/**
 * The process's writers and projection runners. One `Ledger` (and so one `LedgerWriter`) per
 * (tenant, ledger), opened on first use and shared by every request for it, so concurrent
 * requests are batched into one append; one `ProjectionRunner` per tenant, started on the
 * tenant's first request. Both are bounded: an idle ledger is closed to make room for another,
 * and a new tenant beyond the bound of tenants takes the place of the least recently used idle
 * tenant (its runner stopped, its writers closed; both start again on its next request), or is
 * refused with 503 while every tenant is busy or was used within the last second. Ledgers
 * are bounded per tenant too: a tenant at its bound makes room among its own ledgers only, so
 * one tenant opening many cannot close every other tenant's writers (each would pay a reopen).
 */
import { LedgerError, Ledger, WriterFailedError, type CurrencyRegistry, type EventStore } from '@ledgerkit/ledger-core';
import { ProjectionRunner, RunnerNotRunningError, type Projection, type ProjectionStatus } from '@ledgerkit/projections';
import type { ClientPool } from '@ledgerkit/tenant-rls';
import { ProblemError } from './problems.js';

/** Options of a {@link LedgerRegistry}. */
export interface LedgerRegistryOptions {
  /** The event store every writer appends to (with the inline read-model hooks). */
  readonly store: EventStore;
  /** Pool the projection runners use (each holds one connection for its session). */
  readonly runnerPool: ClientPool;
  readonly currencies: CurrencyRegistry;
  readonly tenantsMax: number;
  /** Open ledgers in the process at once. */
  readonly ledgersMax: number;
  /** Open ledgers of one tenant at once. */
  readonly ledgersPerTenantMax: number;
  readonly writerQueueLengthMax: number;
  readonly writerBatchSizeMax: number;
  /** Each writer's `transfersCachedBytesMax`. */
  readonly writerTransfersCachedBytesMax: number;
  /** The runners' `liveBatchDelayMs`. */
  readonly projectionBatchDelayMs: number;
  /** The projections each tenant's runner runs. */
  readonly projections: () => Projection[];
  /** Told about projection errors (the runner retries them itself). */
  readonly onRunnerError?: (error: Error, where: { readonly projection: string; readonly tenantId: string }) => void;
  /**
   * How long a tenant must have gone without a request before its place may be given to a new
   * tenant, ms; default {@link TENANT_IDLE_MS_MIN}. Keeps tenants in steady use from being stopped
   * and started again in turn when more than `tenantsMax` are active.
   */
  readonly tenantIdleMsMin?: number;
  /** Told when stopping an evicted tenant's runner or closing its writers failed. */
  readonly onEvictionError?: (error: Error, tenantId: string) => void;
}

/** Default of {@link LedgerRegistryOptions.tenantIdleMsMin}: one second. */
export const TENANT_IDLE_MS_MIN = 1_000;

interface TenantEntry {
  readonly runner: ProjectionRunner;
  /** The tenant's last admitted request, epoch ms. */
  lastUsedMs: number;
}

interface LedgerEntry {
  readonly tenantId: string;
  readonly opening: Promise<Ledger>;
  ledger: Ledger | undefined;
  inFlight: number;
  lastUsedMs: number;
  /** Writer failures in a row (store unavailable, ...): reset by any success. */
  failuresInARow: number;
}

/** Health of the writers, for `/health/ready`. */
export interface WritersHealth {
  readonly ok: boolean;
  /** Why not, for the log (`/health/ready` answers a fixed text instead); absent when `ok`. */
  readonly detail?: string;
}

/** Writer failures in a row after which a ledger's writer counts as unhealthy. */
const FAILURES_UNHEALTHY = 3;
/**
 * Each tenant's runner keeps at most this much, estimated, of the decoded events its projections
 * share (`logTailBytesMax`): `tenantsMax` × 4 MiB in all, 256 MiB at the default 64 tenants.
 */
const RUNNER_LOG_TAIL_BYTES_MAX = 4 * 2 ** 20;

/** Writers and runners of this process; see the module comment. */
export class LedgerRegistry {
  readonly #options: LedgerRegistryOptions;
  readonly #ledgers = new Map<string, LedgerEntry>();
  /**
   * The same entries by tenant (same keys), kept with `#ledgers` by `#open` and `#forget`: a
   * tenant's count is its map's size, and room is made among its own entries only.
   */
  readonly #ledgersByTenant = new Map<string, Map<string, LedgerEntry>>();
  readonly #tenants = new Map<string, TenantEntry>();
  /** Runners stopping and writers closing of evicted tenants: shutdown waits for them. */
  readonly #evictions = new Set<Promise<void>>();
  #closing = false;

  constructor(options: LedgerRegistryOptions) {
    this.#options = options;
  }

  /**
   * Makes sure the tenant's projection runner runs (a Map lookup after the first call) and marks
   * the tenant as used now. A new tenant when the process serves its maximum of tenants takes the
   * place of the least recently used idle one (see {@link LedgerRegistry.#evictTenant}); throws a
   * 503 problem when there is none.
   */
  ensureTenant(tenantId: string): void {
    const known = this.#tenants.get(tenantId);
    if (known !== undefined) {
      known.lastUsedMs = Date.now();
      return;
    }
    if (this.#closing) return;
    if (this.#tenants.size >= this.#options.tenantsMax) this.#evictTenant();
    const runner = new ProjectionRunner({
      pool: this.#options.runnerPool,
      store: this.#options.store,
      tenantIds: [tenantId],
      projections: this.#options.projections(),
      currencies: this.#options.currencies,
      liveBatchDelayMs: this.#options.projectionBatchDelayMs,
      // A runner per tenant: each keeps a share of what a lone runner may (64 MiB).
      logTailBytesMax: RUNNER_LOG_TAIL_BYTES_MAX,
      ...(this.#options.onRunnerError === undefined ? {} : { onError: this.#options.onRunnerError }),
    });
    const entry: TenantEntry = { runner, lastUsedMs: Date.now() };
    this.#tenants.set(tenantId, entry);
    // A start that fails (read models at another schema version, the database out of reach)
    // started nothing: the runner is dropped, reported, and the tenant's next request tries again.
    // One that `stopRunners` cut short is no news.
    runner.start().catch((error: unknown) => {
      if (this.#tenants.get(tenantId) === entry) this.#tenants.delete(tenantId);
      if (error instanceof RunnerNotRunningError) return;
      this.#options.onRunnerError?.(error instanceof Error ? error : new Error(String(error)), { projection: '*', tenantId });
    });
  }

  /**
   * Waits (at most `timeoutMs`) until the tenant's projections have read the end of the log:
   * for a read of something the same client has just written. False when it timed out.
   */
  async waitForProjections(tenantId: string, timeoutMs: number): Promise<boolean> {
    const runner = this.#tenants.get(tenantId)?.runner;
    if (runner === undefined || timeoutMs <= 0) return false;
    try {
      await runner.whenCaughtUp(timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Runs `fn` with the (tenant, ledger)'s `Ledger`, opening it first if needed. The ledger is
   * not closed while `fn` runs. Writer failures are counted for readiness and passed on.
   */
  async use<T>(tenantId: string, ledgerId: string, fn: (ledger: Ledger) => Promise<T>): Promise<T> {
    if (this.#closing) throw new ProblemError('unavailable', 'the server is shutting down', { retryAfterSeconds: 1 });
    const key = `${tenantId}\u0000${ledgerId}`;
    let entry = this.#ledgers.get(key);
    // Room is made and the new ledger registered in one synchronous step (the evicted one closes
    // before the new one opens): requests arriving together, as they do when their idempotency
    // claims come back in one batch, cannot all see room while an evicted ledger is closing.
    entry ??= this.#open(key, tenantId, ledgerId, this.#makeRoom(tenantId));
    entry.inFlight += 1;
    entry.lastUsedMs = Date.now();
    try {
      const ledger = await entry.opening;
      const result = await fn(ledger);
      entry.failuresInARow = 0;
      return result;
    } catch (error) {
      if (error instanceof WriterFailedError) entry.failuresInARow += 1;
      throw error;
    } finally {
      entry.inFlight -= 1;
    }
  }

  /** Writers that are overloaded or failing make the process not ready. */
  health(): WritersHealth {
    for (const entry of this.#ledgers.values()) {
      const ledger = entry.ledger;
      if (ledger === undefined) continue;
      if (entry.failuresInARow >= FAILURES_UNHEALTHY) return { ok: false, detail: `a writer failed ${entry.failuresInARow} times in a row` };
      if (ledger.writer.queueLength >= this.#options.writerQueueLengthMax * 0.9) return { ok: false, detail: 'a writer queue is nearly full' };
    }
    if (this.#closing) return { ok: false, detail: 'shutting down' };
    return { ok: true };
  }

  /** Every open writer's queue length and ledger version, for the metrics. */
  writers(): { readonly tenantId: string; readonly ledgerId: string; readonly queueLength: number; readonly version: number }[] {
    const result = [];
    for (const entry of this.#ledgers.values()) {
      const ledger = entry.ledger;
      if (ledger !== undefined) result.push({ tenantId: ledger.writer.tenantId, ledgerId: ledger.writer.ledgerId, queueLength: ledger.writer.queueLength, version: ledger.version });
    }
    return result;
  }

  /** The status (lag included) of every projection of every tenant this process serves; tenants that fail to answer are left out. */
  async projectionStatus(): Promise<ProjectionStatus[]> {
    const answers = await Promise.allSettled([...this.#tenants.values()].map((tenant) => tenant.runner.status()));
    return answers.flatMap((answer) => (answer.status === 'fulfilled' ? answer.value : []));
  }

  /** The open ledger of a (tenant, ledger), if any: for tests and tools. */
  async ledger(tenantId: string, ledgerId: string): Promise<Ledger | undefined> {
    return this.#ledgers.get(`${tenantId}\u0000${ledgerId}`)?.opening;
  }

  /** Drains and closes every writer (queued commands are decided and appended first). */
  async closeWriters(): Promise<void> {
    this.#closing = true;
    const entries = [...this.#ledgers.values()];
    this.#ledgers.clear();
    this.#ledgersByTenant.clear();
    await Promise.allSettled([...entries.map(async (entry) => (await entry.opening).close()), ...this.#evictions]);
  }

  /** Stops every projection runner (after their batches in flight). */
  async stopRunners(): Promise<void> {
    this.#closing = true;
    const runners = [...this.#tenants.values()].map((tenant) => tenant.runner);
    this.#tenants.clear();
    await Promise.allSettled([...runners.map((runner) => runner.stop()), ...this.#evictions]);
  }

  /**
   * Makes room for a new tenant, synchronously: the least recently used tenant that has had no
   * request for `tenantIdleMsMin` and whose writers are all idle (none opening, none with a command
   * in flight or queued) is forgotten at once, its writers closed and its runner stopped in the
   * background (both start again on its next request; its read models resume from their
   * checkpoints). Throws a 503 problem, with `Retry-After`, when no tenant qualifies: every one is
   * in use, which changes within a second or so, unless more than `tenantsMax` tenants stay busy
   * (then an operator should raise `tenantsMax`).
   */
  #evictTenant(): void {
    const nowMs = Date.now();
    const idleMsMin = this.#options.tenantIdleMsMin ?? TENANT_IDLE_MS_MIN;
    let victim: { readonly tenantId: string; readonly entry: TenantEntry } | undefined;
    for (const [tenantId, entry] of this.#tenants) {
      if (nowMs - entry.lastUsedMs < idleMsMin || !this.#writersIdle(tenantId)) continue;
      if (victim === undefined || entry.lastUsedMs < victim.entry.lastUsedMs) victim = { tenantId, entry };
    }
    if (victim === undefined) {
      throw new ProblemError(
        'overloaded',
        `this server serves its maximum of ${this.#options.tenantsMax} tenants and each is in use: retry later (if this persists, an operator must raise tenantsMax)`,
        { retryAfterSeconds: Math.max(1, Math.ceil(idleMsMin / 1_000)) },
      );
    }
    const { tenantId, entry } = victim;
    this.#tenants.delete(tenantId);
    const closing: Promise<void>[] = [];
    for (const [key, ledgerEntry] of this.#ledgersByTenant.get(tenantId) ?? []) {
      this.#forget(key, ledgerEntry);
      const ledger = ledgerEntry.ledger;
      if (ledger !== undefined) {
        closing.push(
          ledger.close().catch((error: unknown) => {
            if (!(error instanceof LedgerError)) throw error;
          }),
        );
      }
    }
    closing.push(
      entry.runner.stop().catch((error: unknown) => {
        if (!(error instanceof RunnerNotRunningError)) throw error;
      }),
    );
    const eviction = Promise.all(closing).then(
      () => undefined,
      (error: unknown) => this.#options.onEvictionError?.(error instanceof Error ? error : new Error(String(error)), tenantId),
    );
    this.#evictions.add(eviction);
    void eviction.finally(() => this.#evictions.delete(eviction));
  }

  /** Whether none of the tenant's writers is opening, running a command or holding one queued. */
  #writersIdle(tenantId: string): boolean {
    for (const entry of this.#ledgersByTenant.get(tenantId)?.values() ?? []) {
      if (entry.inFlight !== 0 || entry.ledger === undefined || entry.ledger.writer.queueLength !== 0) return false;
    }
    return true;
  }

  /** Registers and opens a ledger, once `evicted` (the closing of the ledger it replaces, if any) has settled. */
  #open(key: string, tenantId: string, ledgerId: string, evicted: Promise<void> | undefined): LedgerEntry {
    const open = (): Promise<Ledger> =>
      Ledger.open({
        store: this.#options.store,
        tenantId,
        ledgerId,
        currencies: this.#options.currencies,
        queueLengthMax: this.#options.writerQueueLengthMax,
        batchSizeMax: this.#options.writerBatchSizeMax,
        transfersCachedBytesMax: this.#options.writerTransfersCachedBytesMax,
      });
    const opening = evicted === undefined ? open() : evicted.then(open);
    const entry: LedgerEntry = { tenantId, opening, ledger: undefined, inFlight: 0, lastUsedMs: Date.now(), failuresInARow: 0 };
    this.#ledgers.set(key, entry);
    let own = this.#ledgersByTenant.get(tenantId);
    if (own === undefined) this.#ledgersByTenant.set(tenantId, (own = new Map()));
    own.set(key, entry);
    opening.then(
      (ledger) => {
        entry.ledger = ledger;
      },
      () => {
        // A ledger that failed to open (store unavailable, say) is forgotten, and no longer counts
        // against its tenant: the next request tries again.
        this.#forget(key, entry);
      },
    );
    return entry;
  }

  /** Removes `entry` from both maps, unless it was already replaced or forgotten (or the registry closed). */
  #forget(key: string, entry: LedgerEntry): void {
    if (this.#ledgers.get(key) !== entry) return;
    this.#ledgers.delete(key);
    const own = this.#ledgersByTenant.get(entry.tenantId);
    own?.delete(key);
    if (own?.size === 0) this.#ledgersByTenant.delete(entry.tenantId);
  }

  /**
   * Makes room for a new ledger of `tenantId`, synchronously: a tenant at its own bound gives up
   * its least recently used idle ledger, else a full process gives up its least recently used
   * idle ledger of any tenant. The ledger given up is forgotten at once; the returned promise
   * settles when it is closed (`undefined` when there was room). Throws a 503 problem when every
   * candidate is busy.
   */
  #makeRoom(tenantId: string): Promise<void> | undefined {
    const own = this.#ledgersByTenant.get(tenantId);
    let candidates: Map<string, LedgerEntry>;
    let busy: string;
    if (own !== undefined && own.size >= this.#options.ledgersPerTenantMax) {
      candidates = own;
      busy = 'every ledger writer of this tenant is busy, and it has its maximum open';
    } else if (this.#ledgers.size >= this.#options.ledgersMax) {
      candidates = this.#ledgers;
      busy = 'every ledger writer of this server is busy';
    } else {
      return undefined;
    }
    let victim: { readonly key: string; readonly entry: LedgerEntry; readonly ledger: Ledger } | undefined;
    for (const [key, entry] of candidates) {
      const ledger = entry.ledger;
      const idle = entry.inFlight === 0 && ledger !== undefined && ledger.writer.queueLength === 0;
      if (idle && (victim === undefined || entry.lastUsedMs < victim.entry.lastUsedMs)) victim = { key, entry, ledger };
    }
    if (victim === undefined) throw new ProblemError('overloaded', busy, { retryAfterSeconds: 1 });
    this.#forget(victim.key, victim.entry);
    return victim.ledger.close().catch((error: unknown) => {
      if (!(error instanceof LedgerError)) throw error;
    });
  }
}
