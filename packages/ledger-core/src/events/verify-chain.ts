import { InvalidInputError } from '../errors.js';
import { hashEvent } from './canonical.js';
import { HEX_64_PATTERN } from './schemas.js';
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
 *
 * Arguments of the wrong shape reject with `InvalidInputError`, never a `TypeError`: `events`
 * that is not iterable (at `events`), an item of it that is not an object (at `events.<index>`),
 * and a `start` that is not an object with a non-negative integer `version` and a `hash` of 64
 * lower-case hex digits (at `start`, `start.version` or `start.hash`).
 */
export async function verifyChain(
  events: Iterable<StoredEvent> | AsyncIterable<StoredEvent>,
  start: ChainStart = { version: 0, hash: GENESIS_HASH },
): Promise<ChainVerification> {
  checkStart(start);
  if (!isIterable(events)) throw new InvalidInputError([{ path: ['events'], message: 'must be an iterable or async iterable of stored events' }]);
  let previousHash = start.hash;
  let previousVersion = start.version;
  let eventCount = 0;
  for await (const event of events) {
    if (typeof event !== 'object' || event === null) throw new InvalidInputError([{ path: ['events', eventCount], message: 'must be a stored event' }]);
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

function checkStart(start: ChainStart): void {
  if (typeof start !== 'object' || start === null) throw new InvalidInputError([{ path: ['start'], message: 'must be a { version, hash } object, or undefined for the genesis' }]);
  if (!Number.isSafeInteger(start.version) || start.version < 0) throw new InvalidInputError([{ path: ['start', 'version'], message: 'must be a non-negative integer' }]);
  if (typeof start.hash !== 'string' || !HEX_64_PATTERN.test(start.hash)) throw new InvalidInputError([{ path: ['start', 'hash'], message: 'must be 64 lower-case hex digits' }]);
}

function isIterable(value: unknown): boolean {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return false;
  const candidate = value as { [Symbol.iterator]?: unknown; [Symbol.asyncIterator]?: unknown };
  return typeof candidate[Symbol.asyncIterator] === 'function' || typeof candidate[Symbol.iterator] === 'function';
}
