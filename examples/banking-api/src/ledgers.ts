/**
 * The process's writers and projection runners. One `Ledger` (and so one `LedgerWriter`) per
 * (tenant, ledger), opened on first use and shared by every request for it, so concurrent
 * requests are batched into one append; one `ProjectionRunner` per tenant, started on the
 * tenant's first request. Both are bounded: an idle ledger is closed to make room for another,
 * and a tenant beyond the bound is refused with 503 rather than growing without limit. Ledgers
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
  /** The runners' `liveBatchDelayMs`. */
  readonly projectionBatchDelayMs: number;
  /** The projections each tenant's runner runs. */
  readonly projections: () => Projection[];
  /** Told about projection errors (the runner retries them itself). */
  readonly onRunnerError?: (error: Error, where: { readonly projection: string; readonly tenantId: string }) => void;
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
  readonly detail: string;
}

/** Writer failures in a row after which a ledger's writer counts as unhealthy. */
const FAILURES_UNHEALTHY = 3;

/** Writers and runners of this process; see the module comment. */
export class LedgerRegistry {
  readonly #options: LedgerRegistryOptions;
  readonly #ledgers = new Map<string, LedgerEntry>();
  /**
   * The same entries by tenant (same keys), kept with `#ledgers` by `#open` and `#forget`: a
   * tenant's count is its map's size, and room is made among its own entries only.
   */
  readonly #ledgersByTenant = new Map<string, Map<string, LedgerEntry>>();
  readonly #runners = new Map<string, ProjectionRunner>();
  #closing = false;

  constructor(options: LedgerRegistryOptions) {
    this.#options = options;
  }

  /**
   * Makes sure the tenant's projection runner runs (a Map lookup after the first call). Throws
   * a 503 problem when the process already serves its maximum of tenants.
   */
  ensureTenant(tenantId: string): void {
    if (this.#runners.has(tenantId) || this.#closing) return;
    if (this.#runners.size >= this.#options.tenantsMax) throw new ProblemError('overloaded', 'this server serves its maximum number of tenants', { retryAfterSeconds: 5 });
    const runner = new ProjectionRunner({
      pool: this.#options.runnerPool,
      store: this.#options.store,
      tenantIds: [tenantId],
      projections: this.#options.projections(),
      currencies: this.#options.currencies,
      liveBatchDelayMs: this.#options.projectionBatchDelayMs,
      ...(this.#options.onRunnerError === undefined ? {} : { onError: this.#options.onRunnerError }),
    });
    this.#runners.set(tenantId, runner);
    // A start that fails (read models at another schema version, the database out of reach)
    // started nothing: the runner is dropped, reported, and the tenant's next request tries again.
    // One that `stopRunners` cut short is no news.
    runner.start().catch((error: unknown) => {
      if (this.#runners.get(tenantId) === runner) this.#runners.delete(tenantId);
      if (error instanceof RunnerNotRunningError) return;
      this.#options.onRunnerError?.(error instanceof Error ? error : new Error(String(error)), { projection: '*', tenantId });
    });
  }

  /**
   * Waits (at most `timeoutMs`) until the tenant's projections have read the end of the log:
   * for a read of something the same client has just written. False when it timed out.
   */
  async waitForProjections(tenantId: string, timeoutMs: number): Promise<boolean> {
    const runner = this.#runners.get(tenantId);
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
    return { ok: true, detail: `${this.#ledgers.size} writers open, ${this.#runners.size} tenants` };
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
    const answers = await Promise.allSettled([...this.#runners.values()].map((runner) => runner.status()));
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
    await Promise.allSettled(entries.map(async (entry) => (await entry.opening).close()));
  }

  /** Stops every projection runner (after their batches in flight). */
  async stopRunners(): Promise<void> {
    this.#closing = true;
    const runners = [...this.#runners.values()];
    this.#runners.clear();
    await Promise.allSettled(runners.map((runner) => runner.stop()));
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
