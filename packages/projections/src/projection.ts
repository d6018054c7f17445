import { InvalidInputError, type EventMeta, type LedgerEvent, type StoredEvent } from '@ledgerkit/ledger-core';
import type { PoolClient } from 'pg';
import type { FailedEvent } from './errors.js';

/** An event as a projection receives it: decoded, as stored, and where it sits in the global log. */
export interface ProjectionEvent {
  /** The store's global-log position of the event: the checkpoint moves to it once it is handled. */
  readonly position: string;
  /** The event as stored (wire shape: decimal strings, ISO times). */
  readonly stored: StoredEvent;
  /** The event decoded into the domain (bigint minor units). */
  readonly event: LedgerEvent;
  /** Ledger version, recorded and effective time (epoch ms). */
  readonly meta: EventMeta;
}

/** Where a projection writes: the runner's transaction for one batch of one tenant. */
export interface ProjectionContext {
  /**
   * The batch's connection, inside a transaction with the tenant set (application role, forced
   * row-level security). The checkpoint moves in this same transaction, so every row written here
   * commits with it or not at all. Never COMMIT, ROLLBACK or change the tenant on it.
   */
  readonly client: PoolClient;
  readonly tenantId: string;
  /**
   * The checkpoint this batch starts from: the position of the event before its first, `null` at
   * the start of the log (and in `reset`). A projection that keeps state in memory between
   * batches may trust it only when it was made by the batch that ended at exactly this position:
   * the checkpoint is there only if that batch committed (or the same events were applied again).
   */
  readonly after: string | null;
}

/**
 * What to do when a projection cannot handle an event:
 * - `stop` (the default): commit everything before the event, record the error with the event's
 *   position, and stop this projection for this tenant (others keep running) until `retry` or
 *   `rebuild`. The read model stays exactly as of the event before.
 * - `skip-with-record`: record the position and the error in `ledgerkit.projection_failures`, move
 *   the checkpoint past the event without applying it (calling {@link Projection.skipped}), and go
 *   on. The read model then lacks that event, and only that event: use it only where a gap is
 *   better than a halt, and watch the failures table.
 */
export type ErrorPolicy = 'stop' | 'skip-with-record';

/**
 * A named handler over a tenant's global event log. The runner calls {@link Projection.apply}
 * with consecutive batches of events, in the log's order, each inside the transaction that also
 * moves the projection's checkpoint: a batch is applied exactly once or not at all. If `apply`
 * throws, the transaction rolls back and the runner retries the events one at a time to find the
 * one that fails, so `apply` must be deterministic, and state kept in memory across calls must
 * be checked against {@link ProjectionContext.after}.
 */
export interface Projection {
  /** Unique among the runner's projections: 1-64 characters of a-z, 0-9, `_` and `-`. Names the checkpoint. */
  readonly name: string;
  /** Overrides the runner's {@link ErrorPolicy} for this projection. */
  readonly errorPolicy?: ErrorPolicy;
  /**
   * Overrides the runner's `liveBatchDelayMs` for this projection, 0..1,000 ms: a longer wait for
   * a read model that may lag (one the inline hook keeps current, whose runner only catches up
   * appends made without it), a shorter one for a read model that must stay fresh.
   */
  readonly liveBatchDelayMs?: number;
  /** Applies 1..`batchSize` events, in global order, with writes through `context.client`. */
  apply(context: ProjectionContext, events: readonly ProjectionEvent[]): Promise<void>;
  /** Deletes every row this projection wrote for `context.tenantId`: the first half of a rebuild. */
  reset(context: ProjectionContext): Promise<void>;
  /**
   * Optional: told of an event skipped under `skip-with-record`, in the transaction that records
   * the skip and moves the checkpoint past it. Nothing of the event is to be applied; a read model
   * that tracks how far each ledger is applied (the balances model, which the inline hook also
   * moves) marks the event's version as passed here, so that the ledger's later events still apply.
   */
  skipped?(context: ProjectionContext, event: FailedEvent): Promise<void>;
}

/** Projection names: they key checkpoints and advisory locks. */
export const PROJECTION_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** The definition {@link eventProjection} turns into a {@link Projection}. */
export interface EventProjectionDefinition {
  /** See {@link Projection.name}. */
  readonly name: string;
  /** See {@link Projection.errorPolicy}. */
  readonly errorPolicy?: ErrorPolicy;
  /** See {@link Projection.liveBatchDelayMs}. */
  readonly liveBatchDelayMs?: number;
  /** Handles one event; called for each event of a batch in order, in the batch's transaction. */
  handle(context: ProjectionContext, event: ProjectionEvent): Promise<void>;
  /** Deletes the projection's rows of `context.tenantId`. */
  reset(context: ProjectionContext): Promise<void>;
}

/**
 * A projection written one event at a time: the simplest way to add a read model of your own.
 *
 * ```ts
 * const counts = eventProjection({
 *   name: 'transfer-counts',
 *   handle: async ({ client, tenantId }, { event, stored }) => {
 *     if (event.type === 'TransferPosted') await client.query('UPDATE app.counts SET n = n + 1 WHERE tenant_id = $1 AND ledger_id = $2', [tenantId, stored.ledgerId]);
 *   },
 *   reset: async ({ client, tenantId }) => { await client.query('UPDATE app.counts SET n = 0 WHERE tenant_id = $1', [tenantId]); },
 * });
 * ```
 *
 * A `definition` that is not an object is refused with `InvalidInputError` at `definition`, and
 * a `handle` or `reset` that is not a function at `handle` or `reset`; the name is checked by the
 * runner (see {@link Projection.name}).
 */
export function eventProjection(definition: EventProjectionDefinition): Projection {
  if (typeof definition !== 'object' || definition === null) throw new InvalidInputError([{ path: ['definition'], message: 'must be an object with name, handle and reset' }]);
  for (const callback of ['handle', 'reset'] as const) {
    if (typeof definition[callback] !== 'function') throw new InvalidInputError([{ path: [callback], message: 'must be a function' }]);
  }
  return {
    name: definition.name,
    ...(definition.errorPolicy === undefined ? {} : { errorPolicy: definition.errorPolicy }),
    ...(definition.liveBatchDelayMs === undefined ? {} : { liveBatchDelayMs: definition.liveBatchDelayMs }),
    async apply(context, events) {
      for (const event of events) await definition.handle(context, event);
    },
    reset: (context) => definition.reset(context),
  };
}
