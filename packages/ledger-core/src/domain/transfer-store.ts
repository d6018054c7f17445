import type { TransferRecord } from './state.js';
import { makeRecord, transferRecordOf, type EventMeta } from './transfer-record.js';
import type { LedgerEvent, Metadata, Posting } from './types.js';

/** Fewest entry slots a store starts with; its hash table has twice as many. */
const ENTRIES_MIN = 1_024;
/** Table slots per entry slot, at most: a linear-probing table at most half full keeps probes short. */
const TABLE_SLOTS_PER_ENTRY = 2;
/** Estimated bytes of a record apart from its strings and postings: the entry's columns and the record object. */
const RECORD_BYTES = 200;
/** Estimated bytes of one posting apart from its account id: the object, its bigint amount, its currency. */
const POSTING_BYTES = 96;
/** Estimated bytes of a string apart from its characters (V8's header, rounded up). */
const STRING_BYTES = 24;
/** Estimated bytes of one metadata entry apart from its key's and value's characters. */
const METADATA_ENTRY_BYTES = 48;

/**
 * The transfer records of a ledger state, keyed by transfer id: a `Map` to every reader, with its
 * own hash table and columns underneath.
 *
 * A ledger records one transfer per accepted command and reads almost none of them back: a record
 * answers a retry, or is resolved or reversed later. Keeping them in a `Map` made the ever-growing
 * table about 40% of the decide/evolve loop: `Map#set` into a table of 100,000s of string keys
 * walks hash chains through cold memory, and `decide` had just walked the same chains to find the
 * id absent. Here the id's hash, computed once for both, leads to one slot of an `Int32Array`
 * (open addressing, linear probing) that the insert finds still in cache. The common record, a
 * plain posted transfer created by `evolve` (no reversal, reference or metadata), is kept as a few
 * column entries and becomes an object only when someone reads it; every other record (holds,
 * resolutions, reversals, anything `set` from outside) is kept as the object it is.
 *
 * It behaves as a `Map`: insertion order, `delete` while iterating, entries added while iterating
 * are visited, and identity: `get` returns the stored object itself, and a compact record, once
 * read (by `get` or by iterating), is that same object from then on, so a caller may change it in
 * place as `evolve` does. Deleted entries are compacted away when the table is rebuilt, never while
 * an iterator is open, so memory follows the live count (at most about twice it).
 */
export class TransferStore extends Map<string, TransferRecord> {
  /**
   * Two cells per slot: entry index + 1 (0: empty slot) and the key's hash, side by side so that
   * probing past other keys reads one cache line. A deleted entry's slot probes on.
   */
  #table = new Int32Array(ENTRIES_MIN * TABLE_SLOTS_PER_ENTRY * 2);
  /** Entries in insertion order; `undefined` key: deleted. */
  #keys: (string | undefined)[] = [];
  /** The record itself, or `undefined` for a compact record not read yet (and for deleted entries). */
  #objects: (TransferRecord | undefined)[] = [];
  /** Compact records only: the event's postings. */
  #postings: (readonly Posting[] | undefined)[] = [];
  #hashes = new Int32Array(ENTRIES_MIN);
  #ledgerVersions = new Float64Array(ENTRIES_MIN);
  #recordedAtMs = new Float64Array(ENTRIES_MIN);
  #effectiveAtMs = new Float64Array(ENTRIES_MIN);
  /** Each entry's estimated size in bytes (see {@link TransferStore.estimatedBytes}). */
  #weights = new Int32Array(ENTRIES_MIN);
  /** Entries appended since the last compaction, deleted ones included. */
  #count = 0;
  #live = 0;
  /** Sum of the live entries' weights. */
  #bytes = 0;
  /** Iterators not yet finished: compaction renumbers entries, so it waits until none is open. */
  #openIterators = 0;
  /**
   * The key of the last lookup that missed, its hash and the empty slot its probe ended at, until
   * anything is placed in the table: `decide`'s lookup of a new id finds it absent, and `evolve`
   * then records it without hashing it again or probing the table twice more (once to find it
   * absent again, once for a free slot). Sound because, until the next insertion, an absent key
   * stays absent (a delete leaves its slot occupied) and every slot of the probe up to that empty
   * one stays occupied. (A one-key hash cache compared every looked-up id with the previous one:
   * a string comparison per lookup, dearer than what it saved outside this path.)
   */
  #missKey: string | undefined = undefined;
  #missHash = 0;
  #missSlot = 0;

  constructor() {
    // No entries argument: `Map`'s constructor would call `set` before the fields above exist.
    super();
  }

  override get size(): number {
    return this.#live;
  }

  /**
   * The records' memory, estimated from what grows with them: ids, account ids, references and
   * metadata by their lengths, plus a fixed cost per record and per posting. One transfer of 32
   * postings between long account ids with 4 KB of metadata weighs about 200 times a plain
   * two-posting one; a writer bounds its cache by this as well as by the count.
   */
  get estimatedBytes(): number {
    return this.#bytes;
  }

  override get(key: string): TransferRecord | undefined {
    const entry = this.#find(key);
    return entry < 0 ? undefined : this.#recordAt(entry);
  }

  override has(key: string): boolean {
    return this.#find(key) >= 0;
  }

  /** Stores `value` itself under `key`, replacing any record there and keeping the key's place. */
  override set(key: string, value: TransferRecord): this {
    let entry = this.#find(key);
    if (entry < 0) entry = this.#append(key);
    this.#objects[entry] = value;
    this.#postings[entry] = undefined;
    this.#weigh(entry, recordBytes(key, value));
    return this;
  }

  override delete(key: string): boolean {
    const entry = this.#find(key);
    if (entry < 0) return false;
    this.#weigh(entry, 0);
    this.#keys[entry] = undefined;
    this.#objects[entry] = undefined;
    this.#postings[entry] = undefined;
    this.#live -= 1;
    return true;
  }

  override clear(): void {
    this.#table = new Int32Array(ENTRIES_MIN * TABLE_SLOTS_PER_ENTRY * 2);
    this.#keys = [];
    this.#objects = [];
    this.#postings = [];
    this.#hashes = new Int32Array(ENTRIES_MIN);
    this.#ledgerVersions = new Float64Array(ENTRIES_MIN);
    this.#recordedAtMs = new Float64Array(ENTRIES_MIN);
    this.#effectiveAtMs = new Float64Array(ENTRIES_MIN);
    this.#weights = new Int32Array(ENTRIES_MIN);
    this.#count = 0;
    this.#live = 0;
    this.#bytes = 0;
    this.#missKey = undefined;
  }

  override forEach(callback: (value: TransferRecord, key: string, map: Map<string, TransferRecord>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.#entries()) callback.call(thisArg, value, key, this);
  }

  override keys(): MapIterator<string> {
    return this.#iterate((key) => key);
  }

  override values(): MapIterator<TransferRecord> {
    return this.#iterate((_, entry) => this.#recordAt(entry));
  }

  override entries(): MapIterator<[string, TransferRecord]> {
    return this.#entries();
  }

  override [Symbol.iterator](): MapIterator<[string, TransferRecord]> {
    return this.#entries();
  }

  /**
   * Records the transfer `event` creates, as `set(id, transferRecordOf(event, meta))` would, but
   * without building the record when it fits the compact form. Returns `false`, recording nothing,
   * if the id already has a record; `true` otherwise (also for events that create no record).
   */
  record(event: LedgerEvent, meta: EventMeta): boolean {
    if (event.type !== 'TransferPosted' || event.reversalOf !== undefined || event.reference !== undefined || !isEmpty(event.metadata)) {
      const record = transferRecordOf(event, meta);
      if (record === undefined) return true;
      if (!this.#knownAbsent(record.id) && this.#find(record.id) >= 0) return false;
      const entry = this.#append(record.id);
      this.#objects[entry] = record;
      this.#weigh(entry, recordBytes(record.id, record));
      return true;
    }
    const id = event.transferId;
    if (!this.#knownAbsent(id) && this.#find(id) >= 0) return false;
    const entry = this.#append(id);
    this.#postings[entry] = event.postings;
    this.#weigh(entry, RECORD_BYTES + STRING_BYTES + id.length + postingsBytes(event.postings));
    this.#ledgerVersions[entry] = meta.ledgerVersion;
    this.#recordedAtMs[entry] = meta.recordedAtMs;
    this.#effectiveAtMs[entry] = meta.effectiveAtMs;
    return true;
  }

  #entries(): Generator<[string, TransferRecord], undefined, unknown> {
    return this.#iterate((key, entry): [string, TransferRecord] => [key, this.#recordAt(entry)]);
  }

  *#iterate<T>(view: (key: string, entry: number) => T): Generator<T, undefined, unknown> {
    this.#openIterators += 1;
    try {
      // `#count` is read on every step: entries appended meanwhile are visited, as in a `Map`.
      for (let entry = 0; entry < this.#count; entry += 1) {
        const key = this.#keys[entry];
        if (key !== undefined) yield view(key, entry);
      }
    } finally {
      this.#openIterators -= 1;
    }
    return undefined;
  }

  /** Whether `key` is the last key found absent, and still is (see `#missKey`). */
  #knownAbsent(key: string): boolean {
    return key === this.#missKey;
  }

  /** The entry holding `key`, or -1 (remembering where the probe ended, see `#missKey`). */
  #find(key: string): number {
    const hash = hashString(key);
    const table = this.#table;
    const mask = (table.length >> 1) - 1;
    const keys = this.#keys;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = table[slot << 1] as number;
      if (stored === 0) {
        this.#missKey = key;
        this.#missHash = hash;
        this.#missSlot = slot;
        return -1;
      }
      if (table[(slot << 1) + 1] === hash && keys[stored - 1] === key) return stored - 1;
    }
  }

  /** Sets an entry's weight (0 for one being deleted), keeping the total. */
  #weigh(entry: number, bytes: number): void {
    this.#bytes += bytes - (this.#weights[entry] as number);
    this.#weights[entry] = bytes;
  }

  /** Adds an entry for a key known to be absent and returns its index. */
  #append(key: string): number {
    if ((this.#count + 1) * TABLE_SLOTS_PER_ENTRY > this.#table.length >> 1) this.#rebuild();
    const hash = key === this.#missKey ? this.#missHash : hashString(key);
    const entry = this.#count;
    if (entry === this.#hashes.length) this.#growColumns();
    this.#count = entry + 1;
    this.#live += 1;
    this.#keys.push(key);
    this.#objects.push(undefined);
    this.#postings.push(undefined);
    this.#hashes[entry] = hash;
    this.#weights[entry] = 0;
    this.#place(entry, hash);
    return entry;
  }

  #place(entry: number, hash: number): void {
    const table = this.#table;
    const mask = (table.length >> 1) - 1;
    // The probe of a key just found absent ended at the slot this one would reach.
    let slot = this.#keys[entry] === this.#missKey ? this.#missSlot : hash & mask;
    while (table[slot << 1] !== 0) slot = (slot + 1) & mask;
    table[slot << 1] = entry + 1;
    table[(slot << 1) + 1] = hash;
    this.#missKey = undefined;
  }

  /** A fresh table sized for the live entries, after dropping deleted ones if no iterator is open. */
  #rebuild(): void {
    if (this.#live < this.#count && this.#openIterators === 0) this.#compact();
    let size = ENTRIES_MIN * TABLE_SLOTS_PER_ENTRY;
    // Room to double the entries before the next rebuild.
    while (size < (this.#count + 1) * TABLE_SLOTS_PER_ENTRY * 2) size *= 2;
    this.#table = new Int32Array(size * 2);
    this.#missKey = undefined;
    for (let entry = 0; entry < this.#count; entry += 1) {
      if (this.#keys[entry] !== undefined) this.#place(entry, this.#hashes[entry] as number);
    }
  }

  /** Moves the live entries down over the deleted ones, keeping their order. */
  #compact(): void {
    let to = 0;
    for (let from = 0; from < this.#count; from += 1) {
      if (this.#keys[from] === undefined) continue;
      if (to !== from) {
        this.#keys[to] = this.#keys[from];
        this.#objects[to] = this.#objects[from];
        this.#postings[to] = this.#postings[from];
        this.#hashes[to] = this.#hashes[from] as number;
        this.#ledgerVersions[to] = this.#ledgerVersions[from] as number;
        this.#recordedAtMs[to] = this.#recordedAtMs[from] as number;
        this.#effectiveAtMs[to] = this.#effectiveAtMs[from] as number;
        this.#weights[to] = this.#weights[from] as number;
      }
      to += 1;
    }
    this.#keys.length = to;
    this.#objects.length = to;
    this.#postings.length = to;
    this.#count = to;
  }

  #growColumns(): void {
    const capacity = this.#hashes.length * 2;
    this.#hashes = grown(this.#hashes, new Int32Array(capacity));
    this.#ledgerVersions = grown(this.#ledgerVersions, new Float64Array(capacity));
    this.#recordedAtMs = grown(this.#recordedAtMs, new Float64Array(capacity));
    this.#effectiveAtMs = grown(this.#effectiveAtMs, new Float64Array(capacity));
    this.#weights = grown(this.#weights, new Int32Array(capacity));
  }

  #recordAt(entry: number): TransferRecord {
    const stored = this.#objects[entry];
    if (stored !== undefined) return stored;
    // First read of a compact record: build it once and keep it, so every reader shares it.
    const record = makeRecord(
      this.#keys[entry] as string,
      'transfer',
      this.#postings[entry] as readonly Posting[],
      undefined,
      undefined,
      undefined,
      undefined,
      {},
      this.#ledgerVersions[entry] as number,
      this.#recordedAtMs[entry] as number,
      this.#effectiveAtMs[entry] as number,
      undefined,
    );
    this.#objects[entry] = record;
    this.#postings[entry] = undefined;
    return record;
  }
}

// Seeded per process, as V8 seeds its own string hash, so that nobody can precompute ids that all
// land in one probe run. The seed changes no result, only where entries sit in the table.
const HASH_SEED = Math.floor(Math.random() * 0x1_0000_0000) | 0;

/** A 32-bit hash of every UTF-16 unit of `key` (murmur3-style rounds and finaliser). */
function hashString(key: string): number {
  let hash = HASH_SEED ^ key.length;
  for (let i = 0; i < key.length; i += 1) {
    let unit = Math.imul(key.charCodeAt(i), 0xcc9e2d51);
    unit = Math.imul((unit << 15) | (unit >>> 17), 0x1b873593);
    hash ^= unit;
    hash = Math.imul((hash << 13) | (hash >>> 19), 5) + 0xe6546b64;
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash;
}

function grown<A extends Int32Array | Float64Array>(from: A, to: A): A {
  to.set(from);
  return to;
}

/** Estimated bytes of postings (see {@link TransferStore.estimatedBytes}). */
function postingsBytes(postings: readonly Posting[]): number {
  let bytes = 0;
  for (let i = 0; i < postings.length; i += 1) bytes += POSTING_BYTES + STRING_BYTES + (postings[i] as Posting).accountId.length;
  return bytes;
}

/**
 * Estimated bytes of a record (see {@link TransferStore.estimatedBytes}); a compact record weighs
 * what its object would. Exported for the tests, not from the package.
 */
export function recordBytes(id: string, record: TransferRecord): number {
  let bytes = RECORD_BYTES + STRING_BYTES + id.length + postingsBytes(record.postings);
  if (record.reference !== undefined) bytes += STRING_BYTES + record.reference.length;
  const metadata = record.metadata;
  for (const key in metadata) {
    if (Object.hasOwn(metadata, key)) bytes += METADATA_ENTRY_BYTES + 2 * STRING_BYTES + key.length + String(metadata[key]).length;
  }
  return bytes;
}

function isEmpty(metadata: Metadata): boolean {
  for (const key in metadata) if (Object.hasOwn(metadata, key)) return false;
  return true;
}
