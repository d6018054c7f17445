import { hashEvent } from './canonical.js';
import { GENESIS_HASH, type StoredEvent } from './stored-event.js';

/** The first place where a stream's hash chain does not hold. */
export interface BrokenLink {
  /** Ledger version of the first event that fails. */
  readonly ledgerVersion: number;
  readonly reason: 'hash_mismatch' | 'previous_hash_mismatch' | 'version_gap';
  readonly expected: string;
  readonly actual: string;
}

/** Result of {@link verifyChain}. */
export type ChainVerification =
  | { readonly ok: true; readonly eventCount: number; readonly lastHash: string; readonly lastVersion: number }
  | { readonly ok: false; readonly eventCount: number; readonly brokenAt: BrokenLink };

/** Where verification starts: the genesis, or a trusted (version, hash) pair. */
export interface ChainStart {
  readonly version: number;
  readonly hash: string;
}

/**
 * Recomputes a stream's hash chain and names the first broken link: an event whose stored hash
 * is not the hash of its content, whose `previousHash` is not the hash before it, or whose
 * version does not follow. Streams in constant memory: pass an async iterable over pages.
 */
export async function verifyChain(
  events: Iterable<StoredEvent> | AsyncIterable<StoredEvent>,
  start: ChainStart = { version: 0, hash: GENESIS_HASH },
): Promise<ChainVerification> {
  let previousHash = start.hash;
  let previousVersion = start.version;
  let eventCount = 0;
  for await (const event of events) {
    const broken = checkLink(event, previousHash, previousVersion);
    if (broken !== undefined) return { ok: false, eventCount, brokenAt: broken };
    previousHash = event.hash;
    previousVersion = event.ledgerVersion;
    eventCount += 1;
  }
  return { ok: true, eventCount, lastHash: previousHash, lastVersion: previousVersion };
}

function checkLink(event: StoredEvent, previousHash: string, previousVersion: number): BrokenLink | undefined {
  if (event.ledgerVersion !== previousVersion + 1) {
    return { ledgerVersion: event.ledgerVersion, reason: 'version_gap', expected: String(previousVersion + 1), actual: String(event.ledgerVersion) };
  }
  if (event.previousHash !== previousHash) {
    return { ledgerVersion: event.ledgerVersion, reason: 'previous_hash_mismatch', expected: previousHash, actual: String(event.previousHash) };
  }
  let recomputed: string;
  try {
    recomputed = hashEvent(event);
  } catch {
    recomputed = '<unencodable>';
  }
  if (recomputed !== event.hash) {
    return { ledgerVersion: event.ledgerVersion, reason: 'hash_mismatch', expected: recomputed, actual: String(event.hash) };
  }
  return undefined;
}
