import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { JsonObject } from '../events/stored-event.js';
import { CURRENCY_SCALE_MAX, type CurrencyRegistry } from '../money/currency.js';
import { BALANCE_MINOR_MAX, LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX } from './limits.js';
import { stateBytesOf } from './state-bytes.js';
import { initialState, type AccountState, type LedgerState, type LifecycleCommandRecord, type TransferRecord } from './state.js';
import { normalSideOf, type Posting } from './types.js';

/**
 * Shape version of serialized snapshot state.
 *
 * 2 since snapshots record the scale of every currency they hold amounts in (`scales`): a
 * snapshot's balances and held amounts are minor units, which mean something only at the scale
 * they were counted in. A ledger opened with a registry that gives one of those currencies
 * another scale does not use the snapshot (see {@link restoreState}); it replays the log, whose
 * amounts are decimal strings, and so gets the answer it would get with no snapshot at all. A
 * snapshot of version 1 (no scales) is not used either: the first open after upgrading replays.
 *
 * Accounts' `lifecycleCommands` (their remembered lifecycle command ids): the field is
 * optional and written only for an account that has some, so a snapshot of a ledger that never
 * used command ids is byte for byte what earlier releases wrote, and a snapshot without it reads
 * as accounts with none. An earlier release reading a snapshot that has it refuses the snapshot
 * (every object of the shape is strict), so its writer replays the log instead, as it does for a
 * snapshot of another version: never a state that has forgotten ids it should answer retries of.
 *
 * 3 since snapshots carry a `digest` (see `snapshotDigest`): a SHA-256 of the state,
 * bound to the ledger version and the hash of the event the snapshot was taken at, and
 * {@link restoreState} checks the state's consistency. A store's snapshots may be writable where
 * its events are not (PostgreSQL's application role may UPDATE them): a state altered there that
 * still parsed (an account dropped, a balance changed) was trusted, and the writer decided on a
 * state the log does not hold. A snapshot of version 2 (no digest) is not used: the first open
 * after upgrading replays the log and saves a version-3 snapshot.
 */
export const SNAPSHOT_SCHEMA_VERSION = 3;

/** What `snapshotDigest` hashes first: the shape's version, so that a digest of one shape is never taken for another's. */
const DIGEST_DOMAIN = `ledgerkit-snapshot:${SNAPSHOT_SCHEMA_VERSION}`;

const minor = z.string().regex(/^[0-9]{1,40}$/);
const posting = z.tuple([z.string(), z.enum(['debit', 'credit']), minor, z.string()]);
const snapshotStateSchema = z.strictObject({
  // SHA-256, lowercase hex: see snapshotDigest.
  digest: z.string().regex(/^[0-9a-f]{64}$/),
  version: z.int().nonnegative(),
  lastRecordedAtMs: z.int().nonnegative(),
  // Currency code → scale, for every currency of the accounts and holds below.
  scales: z.record(z.string(), z.int().min(0).max(CURRENCY_SCALE_MAX)),
  accounts: z.array(
    z.strictObject({
      id: z.string(),
      currency: z.string(),
      type: z.enum(['asset', 'liability', 'equity', 'income', 'expense']),
      normalSide: z.enum(['debit', 'credit']),
      flags: z.strictObject({ debitsMustNotExceedCredits: z.boolean(), creditsMustNotExceedDebits: z.boolean() }),
      metadata: z.record(z.string(), z.string()),
      openedAtVersion: z.int(),
      openedAtMs: z.int(),
      status: z.enum(['open', 'frozen', 'closed']),
      balances: z.tuple([minor, minor, minor, minor]),
      // [commandId, kind, ledgerVersion, recordedAtMs], oldest first; absent when there are none.
      lifecycleCommands: z
        .array(z.tuple([z.string(), z.enum(['freezeAccount', 'unfreezeAccount', 'closeAccount']), z.int().positive(), z.int().nonnegative()]))
        .min(1)
        .max(LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX)
        .optional(),
    }),
  ),
  holds: z.array(
    z.strictObject({
      id: z.string(),
      postings: z.array(posting),
      timeoutMs: z.int().optional(),
      reference: z.string().optional(),
      metadata: z.record(z.string(), z.string()),
      ledgerVersion: z.int(),
      recordedAtMs: z.int(),
      effectiveAtMs: z.int(),
    }),
  ),
});

/** A snapshot's data as {@link serializeState} writes it and {@link restoreState} reads it, without its digest. */
export type SnapshotContent = Omit<z.infer<typeof snapshotStateSchema>, 'digest'>;

/** Characters of digest input gathered before they are handed to the hash: a call per row would cost more than the row. */
const DIGEST_CHUNK_CHARS = 2 ** 16;

/**
 * The `digest` a snapshot's data carries: SHA-256 (lowercase hex) of a serialization of its
 * content that does not depend on the order of any object's keys (a store may reorder them, as
 * PostgreSQL's `jsonb` does), bound to the ledger version and `hash`, the hash of the event at
 * that version. Bound to that event, the data cannot be passed off as a snapshot of another
 * ledger, or of another point of this one: the loader checks that hash against the stream.
 *
 * What is hashed, each part a line: `ledgerkit-snapshot:<SNAPSHOT_SCHEMA_VERSION>`, the version,
 * `hash`; then, as JSON arrays, the version, last recorded time, the scales as `[code, scale]`
 * pairs sorted by code and the numbers of accounts and holds; then each account, and then each
 * hold, in the data's order, as an array of every field of its row in the schema's order (an
 * absent optional field `null`, metadata as `[key, value]` pairs sorted by key). Arrays, not
 * objects: `JSON.stringify` writes them the same whatever order a store gave the keys in, at a
 * fraction of the cost of sorting every object's keys as canonical JSON does.
 *
 * It detects damage, and edits by someone who does not recompute it. No secret goes into it:
 * anyone who can write the snapshot can recompute it after changing the data, so it does not
 * stop a deliberate forger holding a role that may write snapshots (see `restoreState`'s checks,
 * and keep that role as guarded as the log). Computed only when a snapshot is saved or restored.
 */
export function snapshotDigest(content: SnapshotContent, hash: string): string {
  const digest = createHash('sha256');
  const { version, lastRecordedAtMs, scales, accounts, holds } = content;
  const scaleRows = Object.keys(scales).sort().map((code) => [code, scales[code]]);
  let chunk = `${DIGEST_DOMAIN}\n${version}\n${hash}\n${JSON.stringify([version, lastRecordedAtMs, scaleRows, accounts.length, holds.length])}\n`;
  // Every field of a row, in the schema's order: a field added to the schema must be added here.
  for (const a of accounts) {
    const flags = [a.flags.debitsMustNotExceedCredits, a.flags.creditsMustNotExceedDebits];
    chunk += `${JSON.stringify([a.id, a.currency, a.type, a.normalSide, flags, metadataRows(a.metadata), a.openedAtVersion, a.openedAtMs, a.status, a.balances, a.lifecycleCommands ?? null])}\n`;
    if (chunk.length >= DIGEST_CHUNK_CHARS) {
      digest.update(chunk);
      chunk = '';
    }
  }
  for (const h of holds) {
    chunk += `${JSON.stringify([h.id, h.postings, h.timeoutMs ?? null, h.reference ?? null, metadataRows(h.metadata), h.ledgerVersion, h.recordedAtMs, h.effectiveAtMs])}\n`;
    if (chunk.length >= DIGEST_CHUNK_CHARS) {
      digest.update(chunk);
      chunk = '';
    }
  }
  return digest.update(chunk).digest('hex');
}

/** Metadata as `[key, value]` pairs sorted by key (by UTF-16 code unit): the same for any key order. */
function metadataRows(metadata: Readonly<Record<string, string>>): [string, string][] | readonly never[] {
  const keys = Object.keys(metadata);
  if (keys.length === 0) return NO_ROWS;
  if (keys.length > 1) keys.sort();
  return keys.map((key) => [key, metadata[key] as string]);
}

const NO_ROWS: readonly never[] = [];

/**
 * Serializes what a writer needs to resume: every account (with the lifecycle command ids it
 * remembers) and every unresolved hold, with the scale `currencies` gives each of their
 * currencies (a currency it does not know is left out, and {@link restoreState} then refuses the
 * data). Resolved and posted transfers are not included; the writer finds them through the
 * store's index.
 *
 * `hash` is the hash of the event at `state.version` (the writer's last hash), which the data's
 * `digest` binds it to (see `snapshotDigest`); give {@link restoreState} the same. A state
 * kept apart from any stored stream may leave it out (the empty string).
 */
export function serializeState(state: LedgerState, accounts: Iterable<AccountState>, holds: Iterable<TransferRecord>, currencies: CurrencyRegistry, hash = ''): JsonObject {
  const scales: Record<string, number> = {};
  const noteScale = (code: string): void => {
    if (Object.hasOwn(scales, code)) return;
    const currency = currencies.find(code);
    if (currency !== undefined) scales[code] = currency.scale;
  };
  const accountRows: SnapshotContent['accounts'] = [];
  for (const a of accounts) {
    noteScale(a.currency);
    accountRows.push({
      id: a.id,
      currency: a.currency,
      type: a.type,
      normalSide: a.normalSide,
      flags: { ...a.flags },
      metadata: a.metadata,
      openedAtVersion: a.openedAtVersion,
      openedAtMs: a.openedAtMs,
      status: a.status,
      balances: [String(a.debitsPosted), String(a.creditsPosted), String(a.debitsPending), String(a.creditsPending)],
      ...lifecycleCommandsRow(a.recentLifecycleCommands),
    });
  }
  const holdRows: SnapshotContent['holds'] = [];
  for (const h of holds) {
    if (h.kind !== 'hold' || h.resolution !== 'pending') continue;
    for (const p of h.postings) noteScale(p.currency);
    holdRows.push({
      id: h.id,
      postings: h.postings.map((p) => [p.accountId, p.side, String(p.amount), p.currency]),
      ...(h.timeoutMs === undefined ? {} : { timeoutMs: h.timeoutMs }),
      ...(h.reference === undefined ? {} : { reference: h.reference }),
      metadata: h.metadata,
      ledgerVersion: h.ledgerVersion,
      recordedAtMs: h.recordedAtMs,
      effectiveAtMs: h.effectiveAtMs,
    });
  }
  const content: SnapshotContent = { version: state.version, lastRecordedAtMs: state.lastRecordedAtMs, scales, accounts: accountRows, holds: holdRows };
  return { digest: snapshotDigest(content, hash), ...content } as unknown as JsonObject;
}

/** An account's remembered lifecycle command ids as snapshot rows: nothing at all when it has none. */
function lifecycleCommandsRow(recent: readonly LifecycleCommandRecord[] | undefined): Pick<SnapshotContent['accounts'][number], 'lifecycleCommands'> {
  if (recent === undefined || recent.length === 0) return {};
  return { lifecycleCommands: recent.map((r) => [r.commandId, r.kind, r.ledgerVersion, r.recordedAtMs]) };
}

/**
 * Rebuilds a state from {@link serializeState}'s output; `undefined` if the data is not valid, if
 * its `digest` is not `snapshotDigest` of it and `hash` (which must be the hash it was
 * serialized with: for a writer's snapshot, the snapshot's `hash`), if it is not consistent in
 * itself (see `consistent`), or if it holds an amount in a currency whose recorded scale is
 * missing or differs from the scale `currencies` gives it (its minor units would be read at the
 * wrong scale: 1.50 counted as 150 at scale 2 is 150 at scale 0). The caller then rebuilds the
 * state from the log instead.
 */
export function restoreState(data: JsonObject, currencies: CurrencyRegistry, hash = ''): LedgerState | undefined {
  const parsed = snapshotStateSchema.safeParse(data);
  if (!parsed.success) return undefined;
  // Over the parsed copy: what is hashed is then what is restored.
  if (snapshotDigest(parsed.data, hash) !== parsed.data.digest) return undefined;
  const { scales } = parsed.data;
  const scaleHolds = (code: string): boolean => Object.hasOwn(scales, code) && currencies.find(code)?.scale === scales[code];
  if (!parsed.data.accounts.every((a) => scaleHolds(a.currency))) return undefined;
  if (!parsed.data.holds.every((h) => h.postings.every(([, , , currency]) => scaleHolds(currency)))) return undefined;
  const state = initialState();
  state.version = parsed.data.version;
  state.lastRecordedAtMs = parsed.data.lastRecordedAtMs;
  const accounts: AccountState[] = [];
  const holds: TransferRecord[] = [];
  for (const a of parsed.data.accounts) {
    const [dP, cP, dPe, cPe] = a.balances;
    const account: AccountState = {
      id: a.id,
      currency: a.currency,
      type: a.type,
      normalSide: a.normalSide,
      flags: a.flags,
      metadata: a.metadata,
      openedAtVersion: a.openedAtVersion,
      openedAtMs: a.openedAtMs,
      status: a.status,
      debitsPosted: BigInt(dP),
      creditsPosted: BigInt(cP),
      debitsPending: BigInt(dPe),
      creditsPending: BigInt(cPe),
      recentLifecycleCommands: a.lifecycleCommands?.map(([commandId, kind, ledgerVersion, recordedAtMs]) => ({ commandId, kind, ledgerVersion, recordedAtMs })),
    };
    // A second row of one id would silently replace the first.
    if (state.accounts.get(a.id) !== undefined) return undefined;
    state.accounts.set(a.id, account);
    accounts.push(account);
  }
  for (const h of parsed.data.holds) {
    const postings: Posting[] = h.postings.map(([accountId, side, amount, currency]) => ({ accountId, side, amount: BigInt(amount), currency }));
    const hold: TransferRecord = {
      id: h.id,
      kind: 'hold',
      postings,
      pendingId: undefined,
      reversalOf: undefined,
      timeoutMs: h.timeoutMs,
      timeoutAtMs: h.timeoutMs === undefined ? undefined : h.recordedAtMs + h.timeoutMs,
      reference: h.reference,
      metadata: h.metadata,
      ledgerVersion: h.ledgerVersion,
      recordedAtMs: h.recordedAtMs,
      effectiveAtMs: h.effectiveAtMs,
      resolution: 'pending',
      reversedBy: undefined,
    };
    if (state.transfers.get(h.id) !== undefined) return undefined;
    state.transfers.set(h.id, hold);
    holds.push(hold);
  }
  if (!consistent(state, accounts, holds)) return undefined;
  state.stateBytes = stateBytesOf(accounts, holds);
  return state;
}

/**
 * Whether a restored state holds what folding a log can leave, as far as one pass over it can
 * tell: a second defence behind the digest, for a snapshot altered by someone who recomputed it
 * (or a bug in the writer that serialized it). Each account's balances are within
 * `BALANCE_MINOR_MAX`, its normal side is its type's, a closed one is empty (as `evolve` closes
 * it), a flagged one within its limit (as `evolve` asserts it), and it was opened, and its
 * remembered lifecycle commands recorded, at or before the state's version and last recorded
 * time; every open hold was recorded at or before them too, and its postings are positive and
 * name accounts the state holds, in their currency; and each account's pending debits and credits
 * are the sums of the open holds' postings on it. What it cannot tell (a posted balance changed
 * on both sides alike, an account dropped with nothing pending) only the digest, or the log, tells.
 */
function consistent(state: LedgerState, accounts: readonly AccountState[], holds: readonly TransferRecord[]): boolean {
  const { version, lastRecordedAtMs } = state;
  const pending = new Map<string, { debits: bigint; credits: bigint }>();
  for (const hold of holds) {
    if (hold.ledgerVersion < 1 || hold.ledgerVersion > version || hold.recordedAtMs > lastRecordedAtMs || hold.postings.length === 0) return false;
    for (const posting of hold.postings) {
      const account = state.accounts.get(posting.accountId);
      if (account === undefined || account.currency !== posting.currency || posting.amount <= 0n) return false;
      let sums = pending.get(posting.accountId);
      if (sums === undefined) pending.set(posting.accountId, (sums = { debits: 0n, credits: 0n }));
      if (posting.side === 'debit') sums.debits += posting.amount;
      else sums.credits += posting.amount;
    }
  }
  for (const a of accounts) {
    if (a.debitsPosted > BALANCE_MINOR_MAX || a.creditsPosted > BALANCE_MINOR_MAX || a.debitsPending > BALANCE_MINOR_MAX || a.creditsPending > BALANCE_MINOR_MAX) return false;
    if (a.normalSide !== normalSideOf(a.type)) return false;
    if (a.openedAtVersion < 1 || a.openedAtVersion > version || a.openedAtMs > lastRecordedAtMs) return false;
    for (const r of a.recentLifecycleCommands ?? []) {
      if (r.ledgerVersion < a.openedAtVersion || r.ledgerVersion > version || r.recordedAtMs > lastRecordedAtMs) return false;
    }
    const sums = pending.get(a.id);
    if (a.debitsPending !== (sums?.debits ?? 0n) || a.creditsPending !== (sums?.credits ?? 0n)) return false;
    if (a.status === 'closed' && (a.debitsPosted !== a.creditsPosted || a.debitsPending !== 0n || a.creditsPending !== 0n)) return false;
    if (a.flags.debitsMustNotExceedCredits && a.debitsPosted + a.debitsPending > a.creditsPosted) return false;
    if (a.flags.creditsMustNotExceedDebits && a.creditsPosted + a.creditsPending > a.debitsPosted) return false;
  }
  return true;
}
