import type { TransferKind, TransferRecord } from './state.js';
import type { LedgerEvent, Metadata, Posting } from './types.js';

/** Where an event sits in its stream and when it happened. */
export interface EventMeta {
  readonly ledgerVersion: number;
  readonly recordedAtMs: number;
  readonly effectiveAtMs: number;
}

/** The transfer record an event creates, or `undefined` for events that create none. */
export function transferRecordOf(event: LedgerEvent, meta: EventMeta): TransferRecord | undefined {
  switch (event.type) {
    case 'TransferPosted':
      return makeRecord(
        event.transferId,
        event.reversalOf === undefined ? 'transfer' : 'reversal',
        event.postings,
        undefined,
        event.reversalOf,
        undefined,
        event.reference,
        event.metadata,
        meta.ledgerVersion,
        meta.recordedAtMs,
        meta.effectiveAtMs,
        undefined,
      );
    case 'TransferPending':
      return makeRecord(
        event.transferId,
        'hold',
        event.postings,
        undefined,
        undefined,
        event.timeoutMs,
        event.reference,
        event.metadata,
        meta.ledgerVersion,
        meta.recordedAtMs,
        meta.effectiveAtMs,
        'pending',
      );
    case 'PendingPosted':
      return makeRecord(
        event.transferId,
        'postPending',
        event.postings,
        event.pendingId,
        undefined,
        undefined,
        undefined,
        event.metadata,
        meta.ledgerVersion,
        meta.recordedAtMs,
        meta.effectiveAtMs,
        undefined,
      );
    case 'PendingVoided':
      return makeRecord(
        event.transferId,
        'voidPending',
        [],
        event.pendingId,
        undefined,
        undefined,
        undefined,
        event.metadata,
        meta.ledgerVersion,
        meta.recordedAtMs,
        meta.effectiveAtMs,
        undefined,
      );
    default:
      return undefined;
  }
}

// One literal with every field in one order, so all records share one hidden class: an object
// spread here made each record's shape unique and cost ~5x the whole decide/evolve loop.
/** A transfer record; `timeoutAtMs` is derived from the recorded time and the timeout. */
export function makeRecord(
  id: string,
  kind: TransferKind,
  postings: readonly Posting[],
  pendingId: string | undefined,
  reversalOf: string | undefined,
  timeoutMs: number | undefined,
  reference: string | undefined,
  metadata: Metadata,
  ledgerVersion: number,
  recordedAtMs: number,
  effectiveAtMs: number,
  resolution: TransferRecord['resolution'],
): TransferRecord {
  return {
    id,
    kind,
    postings,
    pendingId,
    reversalOf,
    timeoutMs,
    timeoutAtMs: timeoutMs === undefined ? undefined : recordedAtMs + timeoutMs,
    reference,
    metadata,
    ledgerVersion,
    recordedAtMs,
    effectiveAtMs,
    resolution,
    reversedBy: undefined,
  };
}
