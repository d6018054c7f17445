import { z } from 'zod';
import type { JsonObject } from '../events/stored-event.js';
import { CURRENCY_SCALE_MAX, type CurrencyRegistry } from '../money/currency.js';
import { LIFECYCLE_COMMAND_IDS_PER_ACCOUNT_MAX } from './limits.js';
import { stateBytesOf } from './state-bytes.js';
import { initialState, type AccountState, type LedgerState, type LifecycleCommandRecord, type TransferRecord } from './state.js';
import type { Posting } from './types.js';

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
 */
export const SNAPSHOT_SCHEMA_VERSION = 2;

const minor = z.string().regex(/^[0-9]{1,40}$/);
const posting = z.tuple([z.string(), z.enum(['debit', 'credit']), minor, z.string()]);
const snapshotStateSchema = z.strictObject({
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

/**
 * Serializes what a writer needs to resume: every account (with the lifecycle command ids it
 * remembers) and every unresolved hold, with the scale `currencies` gives each of their
 * currencies (a currency it does not know is left out, and {@link restoreState} then refuses the
 * data). Resolved and posted transfers are not included; the writer finds them through the
 * store's index.
 */
export function serializeState(state: LedgerState, accounts: Iterable<AccountState>, holds: Iterable<TransferRecord>, currencies: CurrencyRegistry): JsonObject {
  const scales: Record<string, number> = {};
  const noteScale = (code: string): void => {
    if (Object.hasOwn(scales, code)) return;
    const currency = currencies.find(code);
    if (currency !== undefined) scales[code] = currency.scale;
  };
  const accountRows = [];
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
  const holdRows = [];
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
  return { version: state.version, lastRecordedAtMs: state.lastRecordedAtMs, scales, accounts: accountRows, holds: holdRows } as JsonObject;
}

/** An account's remembered lifecycle command ids as snapshot rows: nothing at all when it has none. */
function lifecycleCommandsRow(recent: readonly LifecycleCommandRecord[] | undefined): { lifecycleCommands?: [string, string, number, number][] } {
  if (recent === undefined || recent.length === 0) return {};
  return { lifecycleCommands: recent.map((r) => [r.commandId, r.kind, r.ledgerVersion, r.recordedAtMs]) };
}

/**
 * Rebuilds a state from {@link serializeState}'s output; `undefined` if the data is not valid, or
 * if it holds an amount in a currency whose recorded scale is missing or differs from the scale
 * `currencies` gives it (its minor units would be read at the wrong scale: 1.50 counted as 150
 * at scale 2 is 150 at scale 0). The caller then rebuilds the state from the log instead.
 */
export function restoreState(data: JsonObject, currencies: CurrencyRegistry): LedgerState | undefined {
  const parsed = snapshotStateSchema.safeParse(data);
  if (!parsed.success) return undefined;
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
    state.transfers.set(h.id, hold);
    holds.push(hold);
  }
  state.stateBytes = stateBytesOf(accounts, holds);
  return state;
}
