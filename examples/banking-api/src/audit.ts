/**
 * Audit events off the request path. A request that reads or moves money records who (client,
 * subject), which tenant and ledger, what (action and resource id) and how it ended; the event
 * goes into a bounded in-process queue (an O(1) push, never awaited by the request) and a
 * background loop writes the queue in batches: one `banking_api.audit_segments` row per tenant
 * per batch (append-only, tenant-scoped), read one event per row through the `audit_events` view. When the database is slow the queue grows up to its bound; past it new events are
 * dropped and counted, never blocking a request: `stats().dropped` and the logs show it.
 */
import { withPooledClient, type ClientPool } from '@ledgerkit/tenant-rls';
import { API_SCHEMA } from './migrations.js';

/** One audit event. */
export interface AuditEvent {
  readonly occurredAt: Date;
  readonly requestId: string;
  readonly tenantId: string;
  /** The client: its `client_id` claim, or the pseudonym of `sub` (`sub:` and 16 hex digits) without one. */
  readonly clientId: string;
  /** The pseudonym of the token's `sub` (`pseudonymOfSubject`): the trail never holds a `sub` in clear. */
  readonly subject: string;
  /** E.g. `balance.read`, `transfer.create`. */
  readonly action: string;
  /** `null` when the request named a ledger that is not a valid id. */
  readonly ledgerId: string | null;
  /** The account or transfer read, changed or created, when there is one. */
  readonly resourceId: string | null;
  /**
   * The transfer acted on by a request that creates another (the hold a post or void resolves,
   * the transfer a reversal reverses); `null` for every other request.
   */
  readonly targetId: string | null;
  /**
   * The transfers a linked group (`transfer.group`) names, in the body's order, whether or not
   * they were applied (the outcome says); `null` for every other request, and for a group whose
   * body did not pass its schema.
   */
  readonly memberIds: readonly string[] | null;
  readonly status: number;
  /** `success` (2xx), `rejected` (4xx) or `error` (5xx). */
  readonly outcome: 'success' | 'rejected' | 'error';
  /** The problem code of a failed request. */
  readonly problemCode: string | null;
  /** True when the answer was an idempotent replay. */
  readonly replayed: boolean;
}

/** Options of an {@link AuditSink}. */
export interface AuditSinkOptions {
  /** Pool of the application role. */
  readonly pool: ClientPool;
  /** Most events waiting. */
  readonly queueMax: number;
  /** Most events per statement. */
  readonly batchMax: number;
  /** Longest wait between flushes, ms. */
  readonly flushIntervalMs: number;
  /** Told about write failures and drops (rate-limited by the caller's logger, if at all). */
  readonly onProblem?: (message: string, error?: unknown) => void;
}

/** Counters of an {@link AuditSink}. */
export interface AuditStats {
  readonly queued: number;
  readonly written: number;
  readonly dropped: number;
  readonly failedWrites: number;
}

/** An event as the queue holds it: serialised when recorded, so that a flush only joins strings. */
interface QueuedEvent {
  readonly tenantId: string;
  readonly occurredAtMs: number;
  /** The event as JSON, without its tenant (the segment row carries it). */
  readonly json: string;
}

/** An event as stored: every field but the tenant (the segment's), `occurredAt` as ISO-8601. */
type StoredAuditEvent = Omit<AuditEvent, 'tenantId' | 'occurredAt'> & { readonly occurredAt: string | null };

/**
 * The JSON of an event as stored, in this order. Built as an object literal, which
 * `JSON.stringify` serialises about 1.6 times as fast as through a replacer list of keys, with
 * the time already formatted (`isoTime`), which halves it again.
 */
function storedJson(event: AuditEvent, isoTime: string | null): string {
  const stored: StoredAuditEvent = {
    occurredAt: isoTime,
    requestId: event.requestId,
    clientId: event.clientId,
    subject: event.subject,
    action: event.action,
    ledgerId: event.ledgerId,
    resourceId: event.resourceId,
    targetId: event.targetId,
    memberIds: event.memberIds,
    status: event.status,
    outcome: event.outcome,
    problemCode: event.problemCode,
    replayed: event.replayed,
  };
  return JSON.stringify(stored);
}

const INSERT_SQL = `SELECT ${API_SCHEMA}.append_audit_segment($1, $2::timestamptz, $3::timestamptz, $4, $5::jsonb)`;
const RETRY_PAUSE_MS_MAX = 5_000;

/** The bounded audit queue and its writer; see the module comment. */
export class AuditSink {
  readonly #pool: ClientPool;
  readonly #queueMax: number;
  readonly #batchMax: number;
  readonly #flushIntervalMs: number;
  readonly #onProblem: AuditSinkOptions['onProblem'];
  #queue: QueuedEvent[] = [];
  #written = 0;
  #dropped = 0;
  #failedWrites = 0;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #retryPauseMs = 0;
  #closed = false;
  /** The last time `#isoTime` formatted, epoch ms, and its ISO-8601 text. */
  #lastTimeMs = Number.NaN;
  #lastTimeIso = '';

  constructor(options: AuditSinkOptions) {
    this.#pool = options.pool;
    this.#queueMax = options.queueMax;
    this.#batchMax = options.batchMax;
    this.#flushIntervalMs = options.flushIntervalMs;
    this.#onProblem = options.onProblem;
  }

  /** Queues an event; returns false (and counts it) when the queue is full or the sink closed. */
  record(event: AuditEvent): boolean {
    if (this.#closed || this.#queue.length >= this.#queueMax) {
      this.#dropped += 1;
      if (this.#dropped === 1 || this.#dropped % 1_000 === 0) this.#onProblem?.(`audit queue full: ${this.#dropped} events dropped so far`);
      return false;
    }
    // Serialised here, a microsecond or two per request, rather than a thousand at a time in the
    // flush, which held the event loop for milliseconds and showed in the requests' p99.
    this.#queue.push({ tenantId: event.tenantId, occurredAtMs: event.occurredAt.getTime(), json: storedJson(event, this.#isoTime(event.occurredAt)) });
    if (this.#queue.length >= this.#batchMax) this.#kick(0);
    else this.#kick(this.#flushIntervalMs);
    return true;
  }

  // Requests that end in the same millisecond share its formatted time.
  #isoTime(time: Date): string | null {
    const ms = time.getTime();
    // An invalid date is written as JSON.stringify writes it: null.
    if (!Number.isFinite(ms)) return null;
    if (ms !== this.#lastTimeMs) {
      this.#lastTimeIso = time.toISOString();
      this.#lastTimeMs = ms;
    }
    return this.#lastTimeIso;
  }

  /** Current counters. */
  stats(): AuditStats {
    return { queued: this.#queue.length, written: this.#written, dropped: this.#dropped, failedWrites: this.#failedWrites };
  }

  /** Whether the backlog is below 90 % of the bound (for readiness). */
  healthy(): boolean {
    return this.#queue.length < this.#queueMax * 0.9;
  }

  /** Waits until every queued event is written, or until `deadlineMs` (epoch) passes; then drops the rest. */
  async close(deadlineMs = Date.now() + 10_000): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    while ((this.#queue.length > 0 || this.#running !== undefined) && Date.now() < deadlineMs) {
      if (this.#running === undefined) this.#running = this.#drain().finally(() => (this.#running = undefined));
      await this.#running;
      if (this.#queue.length > 0) await sleep(Math.min(50, Math.max(0, deadlineMs - Date.now())));
    }
    if (this.#queue.length > 0) {
      this.#dropped += this.#queue.length;
      this.#onProblem?.(`audit sink closed with ${this.#queue.length} events unwritten`);
      this.#queue = [];
    }
  }

  #kick(delayMs: number): void {
    if (this.#running !== undefined) return;
    if (this.#timer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#drain().finally(() => {
        this.#running = undefined;
        if (this.#queue.length > 0 && !this.#closed) this.#kick(this.#retryPauseMs > 0 ? this.#retryPauseMs : this.#flushIntervalMs);
      });
    }, Math.max(delayMs, this.#retryPauseMs));
    this.#timer.unref();
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.slice(0, this.#batchMax);
      try {
        await this.#write(batch);
        this.#queue.splice(0, batch.length);
        this.#written += batch.length;
        this.#retryPauseMs = 0;
      } catch (error) {
        this.#failedWrites += 1;
        this.#retryPauseMs = Math.min(RETRY_PAUSE_MS_MAX, Math.max(50, this.#retryPauseMs * 2));
        this.#onProblem?.('audit events could not be written; will retry', error);
        return;
      }
    }
  }

  async #write(batch: readonly QueuedEvent[]): Promise<void> {
    const byTenant = new Map<string, QueuedEvent[]>();
    for (const event of batch) {
      const list = byTenant.get(event.tenantId);
      if (list === undefined) byTenant.set(event.tenantId, [event]);
      else list.push(event);
    }
    await withPooledClient(this.#pool, async (client) => {
      // All tenants' rows in one transaction: the batch is written whole or retried whole.
      await client.query('BEGIN');
      for (const [tenantId, events] of byTenant) {
        const first = events[0] as QueuedEvent;
        const last = events[events.length - 1] as QueuedEvent;
        const json = `[${events.map((event) => event.json).join(',')}]`;
        await client.query(INSERT_SQL, [tenantId, new Date(first.occurredAtMs).toISOString(), new Date(last.occurredAtMs).toISOString(), events.length, json]);
      }
      await client.query('COMMIT');
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
