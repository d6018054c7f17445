import { ChainBrokenError, LimitExceededError } from '../errors.js';
import { GENESIS_HASH, type StoredEvent } from '../events/stored-event.js';
import { checkOptions } from '../input/options.js';
import { readLedger } from '../query/replay.js';
import { APPEND_EVENTS_MAX, READ_LIMIT_MAX, type EventStore } from './event-store.js';

/** Events per read and per append of {@link copyLedger} by default. */
export const COPY_BATCH_SIZE_DEFAULT = 1_000;

/** Options of {@link copyLedger}. */
export interface CopyLedgerOptions {
  /** Where the ledger is now. */
  readonly from: EventStore;
  /** Where it goes: empty for this ledger, or holding a prefix of it (a copy that stopped part way). */
  readonly to: EventStore;
  readonly tenantId: string;
  readonly ledgerId: string;
  /** Events per read and per append, 1..10,000; default 1,000. */
  readonly batchSize?: number;
}

/** What {@link copyLedger} did. */
export interface CopyLedgerResult {
  /** Events appended to the target by this call. */
  readonly eventsCopied: number;
  /** The target's version and head hash afterwards: the source's as they were when it was read. */
  readonly ledgerVersion: number;
  readonly hash: string;
  /** Whether the source's snapshot was saved to the target (it was newer than the target's own). */
  readonly snapshotCopied: boolean;
}

/**
 * Copies one ledger's stream, and its latest snapshot, from one store to another: how a ledger
 * moves between databases (see `docs/performance.md`, "Scaling out"). Every event read is checked
 * against the hash chain on the way (`ChainBrokenError` names the first bad one), and the target's
 * `append` checks each copied event as its readers will (see `appendableDataJson`), so a damaged
 * or forged source stops the copy with an error instead of spreading. Appends are atomic per
 * batch and fenced by the target's version, so the call is resumable: run it again after a
 * failure, or after the source moved on, and it continues from the target's head, having checked
 * that the target's last event is the source's event at that version.
 *
 * It copies what the source holds when it reads it: for the final copy of a move, stop the
 * ledger's writer first, and open the writer on the target only once the copy has returned.
 */
export async function copyLedger(options: CopyLedgerOptions): Promise<CopyLedgerResult> {
  const { from, to, tenantId, ledgerId } = checkOptions(options);
  const batchSize = options.batchSize ?? COPY_BATCH_SIZE_DEFAULT;
  // 10,000 of the largest events hold ~110 million characters of data JSON: within
  // APPEND_DATA_CHARS_MAX, so a batch is never refused for its size.
  const batchSizeMax = Math.min(READ_LIMIT_MAX, APPEND_EVENTS_MAX);
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > batchSizeMax) {
    throw new LimitExceededError(`batchSize must be an integer in 1..${batchSizeMax}, got ${String(options.batchSize)}`);
  }
  const [targetHead] = await to.readStream({ tenantId, ledgerId, direction: 'backward', limit: 1 });
  let version = targetHead?.ledgerVersion ?? 0;
  let hash = targetHead?.hash ?? GENESIS_HASH;
  if (targetHead !== undefined) {
    const [source] = await from.readStream({ tenantId, ledgerId, direction: 'forward', fromVersion: version, limit: 1 });
    if (source?.ledgerVersion !== version || source.hash !== hash) {
      throw new ChainBrokenError(version, 'the target already holds another event at this version: it is not a prefix of the source');
    }
  }
  let eventsCopied = 0;
  let batch: StoredEvent[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const last = batch[batch.length - 1] as StoredEvent;
    await to.append({ tenantId, ledgerId, expectedVersion: version, events: batch });
    version = last.ledgerVersion;
    hash = last.hash;
    eventsCopied += batch.length;
    batch = [];
  };
  for await (const event of readLedger({ store: from, tenantId, ledgerId }, { pageSize: batchSize, after: { ledgerVersion: version, hash } })) {
    batch.push(event);
    if (batch.length === batchSize) await flush();
  }
  await flush();
  let snapshotCopied = false;
  const snapshot = await from.loadSnapshot({ tenantId, ledgerId });
  if (snapshot !== null && snapshot.ledgerVersion <= version) {
    const existing = await to.loadSnapshot({ tenantId, ledgerId });
    if (existing === null || existing.ledgerVersion < snapshot.ledgerVersion) {
      await to.saveSnapshot(snapshot);
      snapshotCopied = true;
    }
  }
  return { eventsCopied, ledgerVersion: version, hash, snapshotCopied };
}
