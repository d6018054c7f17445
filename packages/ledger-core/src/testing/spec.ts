import { decide, type Accepted, type DecideContext, type Decision, type EventDraft, type OriginalOutcome, type Rejected } from '../domain/decide.js';
import { evolve, type EventMeta } from '../domain/evolve.js';
import { BACKDATE_WINDOW_MS_DEFAULT } from '../domain/limits.js';
import type { RejectionCode } from '../domain/rejections.js';
import type { AccountState, LedgerState, TransferRecord } from '../domain/state.js';
import type { LedgerCommand, LedgerEvent } from '../domain/types.js';

/** Options of {@link deciderSpec}. */
export interface DeciderSpecOptions {
  /** Recorded time of the command under test, epoch ms: the `nowMs` passed to `decide`. */
  readonly nowMs: number;
  /** How far in the past `effectiveAtMs` may be, in ms. Default: `BACKDATE_WINDOW_MS_DEFAULT` (31 days). */
  readonly backdateWindowMs?: number;
  /** Recorded (and effective) time of given events that do not state their own. Default: `nowMs`. */
  readonly givenAtMs?: number;
}

/**
 * An event of a specification's history: a bare event, or an event with the parts of its meta
 * that matter to the rule. Missing parts are filled in: the ledger version follows the previous
 * event's, the recorded time is the spec's `givenAtMs`, the effective time is the recorded time.
 */
export type GivenEvent = LedgerEvent | { readonly event: LedgerEvent; readonly meta?: Partial<EventMeta> };

/** An expected event: a bare event, or an event with the effective time it must carry. */
export type ExpectedEvent = LedgerEvent | EventDraft;

/** What an accepted command's events did: the decision, and the given state with them applied. */
export interface SpecOutcome {
  /** The accepted decision, with its events and, for a linked group, its members. */
  readonly decision: Accepted;
  /** A fresh state: the given events and then the decided ones, folded with `evolve`. */
  readonly stateAfter: LedgerState;
}

/** A decider specification: the context every `when` decides in. */
export interface DeciderSpec {
  /** Folds `events` with `evolve` into an empty ledger: the history the command meets. */
  given(events: readonly GivenEvent[]): GivenHistory;
}

/** A history ready for a command. */
export interface GivenHistory {
  /** The folded state. Read it; do not change it, or the `then` checks lose their meaning. */
  readonly state: LedgerState;
  /** Decides `command` against the history; `context` overrides the spec's time settings. */
  when(command: LedgerCommand, context?: Partial<DecideContext>): DecidedCommand;
}

/**
 * A decided command, ready for its expectation. Each `then…` throws a plain `Error` describing
 * the difference when the decision is not the expected one, or when `decide` changed the state
 * it was given.
 */
export interface DecidedCommand {
  /** The raw decision, for checks the `then…` helpers do not cover. */
  readonly decision: Decision;
  /**
   * Expects the command to be accepted with exactly `expected`, in order. A bare event is
   * compared without its effective time; an `{ event, effectiveAtMs }` draft with it. Fields
   * that are `undefined` and fields that are absent compare equal.
   */
  then(expected: readonly ExpectedEvent[]): SpecOutcome;
  /** Expects the command to be rejected with `code`; returns the rejection (linked groups carry `members`). */
  thenRejects(code: RejectionCode): Rejected;
  /**
   * Expects the command to be recognised as a retry of one already recorded: accepted, no
   * events, and `duplicateOf` set (and equal to `original` in the fields it names).
   */
  thenDuplicate(original?: Partial<OriginalOutcome>): OriginalOutcome;
}

/**
 * Creates given/when/then specifications for the ledger decider, in the manner of Emmett: the
 * history as events, the command, and the events (or rejection) the rule calls for.
 * ```ts
 * const spec = deciderSpec({ nowMs: Date.parse('2025-03-01T12:00:00Z') });
 * const flags = { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: false };
 * spec
 *   .given([{ type: 'AccountOpened', accountId: 'alice', currency: 'EUR', accountType: 'liability', flags, metadata: {} }])
 *   .when({ kind: 'closeAccount', accountId: 'alice' })
 *   .then([{ type: 'AccountClosed', accountId: 'alice' }]);
 * ```
 * It needs no test runner: a failed expectation throws a plain `Error`.
 */
export function deciderSpec(options: DeciderSpecOptions): DeciderSpec {
  const context: DecideContext = { nowMs: options.nowMs, backdateWindowMs: options.backdateWindowMs ?? BACKDATE_WINDOW_MS_DEFAULT };
  const givenAtMs = options.givenAtMs ?? options.nowMs;
  return {
    given(events: readonly GivenEvent[]): GivenHistory {
      const history = resolveHistory(events, givenAtMs);
      const state = foldHistory(history);
      return {
        state,
        when(command: LedgerCommand, overrides: Partial<DecideContext> = {}): DecidedCommand {
          return decideOnce(history, state, command, { ...context, ...overrides });
        },
      };
    },
  };
}

interface HistoryEntry {
  readonly event: LedgerEvent;
  readonly meta: EventMeta;
}

function resolveHistory(events: readonly GivenEvent[], givenAtMs: number): HistoryEntry[] {
  const history: HistoryEntry[] = [];
  let version = 0;
  for (const item of events) {
    const event = 'event' in item ? item.event : item;
    const partial: Partial<EventMeta> = 'event' in item ? (item.meta ?? {}) : {};
    const recordedAtMs = partial.recordedAtMs ?? givenAtMs;
    const meta: EventMeta = {
      ledgerVersion: partial.ledgerVersion ?? version + 1,
      recordedAtMs,
      effectiveAtMs: partial.effectiveAtMs ?? recordedAtMs,
    };
    version = meta.ledgerVersion;
    history.push({ event, meta });
  }
  return history;
}

/** A state whose tables are plain maps, so the spec can serialize it whole. */
interface InspectableState extends LedgerState {
  readonly accounts: Map<string, AccountState>;
  readonly transfers: Map<string, TransferRecord>;
}

function emptyState(): InspectableState {
  return { version: 0, lastRecordedAtMs: 0, stateBytes: 0, accounts: new Map(), transfers: new Map(), limitsAsserted: true };
}

function foldHistory(history: readonly HistoryEntry[]): InspectableState {
  const state = emptyState();
  for (const { event, meta } of history) evolve(state, event, meta);
  return state;
}

function decideOnce(history: readonly HistoryEntry[], state: InspectableState, command: LedgerCommand, context: DecideContext): DecidedCommand {
  const before = describe(state);
  const decision = decide(command, state, context);
  const after = describe(state);
  const assertUnchanged = (): void => {
    if (before !== after) {
      throw new Error(`decide changed the state it was given (it must only read it)\n  before: ${before}\n  after:  ${after}`);
    }
  };
  return {
    decision,
    then(expected: readonly ExpectedEvent[]): SpecOutcome {
      assertUnchanged();
      const accepted = mustAccept(decision);
      if (accepted.duplicateOf !== undefined) {
        throw new Error(`expected new events, but the command was taken as a retry of ledger version ${accepted.duplicateOf.ledgerVersion}`);
      }
      const actualText = describe(accepted.events.map((draft, index) => comparableActual(draft, expected[index])));
      const expectedText = describe(expected.map(comparableExpected));
      if (actualText !== expectedText) {
        throw new Error(`decide produced other events than expected\n  expected: ${expectedText}\n  actual:   ${actualText}`);
      }
      return { decision: accepted, stateAfter: applyDecided(history, accepted.events, context.nowMs) };
    },
    thenRejects(code: RejectionCode): Rejected {
      assertUnchanged();
      if (decision.ok) {
        throw new Error(`expected rejection ${code}, but the command was accepted with ${describe(decision.events.map((draft) => draft.event))}`);
      }
      if (decision.code !== code) {
        throw new Error(`expected rejection ${code}, but it was rejected with ${decision.code}: ${decision.message}`);
      }
      return decision;
    },
    thenDuplicate(original: Partial<OriginalOutcome> = {}): OriginalOutcome {
      assertUnchanged();
      const accepted = mustAccept(decision);
      if (accepted.duplicateOf === undefined) {
        throw new Error(`expected a retry of an earlier command, but decide produced ${describe(accepted.events.map((draft) => draft.event))}`);
      }
      if (accepted.events.length > 0) {
        throw new Error(`a retry must produce no events, but decide produced ${describe(accepted.events.map((draft) => draft.event))}`);
      }
      const outcome = accepted.duplicateOf;
      const mismatched = (Object.keys(original) as (keyof OriginalOutcome)[]).filter((key) => original[key] !== outcome[key]);
      if (mismatched.length > 0) {
        throw new Error(`expected a retry of ${describe(original)}, but it repeats ${describe(outcome)}`);
      }
      return outcome;
    },
  };
}

function mustAccept(decision: Decision): Accepted {
  if (!decision.ok) throw new Error(`expected the command to be accepted, but it was rejected with ${decision.code}: ${decision.message}`);
  return decision;
}

/** An actual draft in the form of the expected item: with its effective time only if the item names one. */
function comparableActual(draft: EventDraft, expected: ExpectedEvent | undefined): unknown {
  return expected !== undefined && 'event' in expected ? { event: draft.event, effectiveAtMs: draft.effectiveAtMs } : draft.event;
}

function comparableExpected(expected: ExpectedEvent): unknown {
  return 'event' in expected ? { event: expected.event, effectiveAtMs: expected.effectiveAtMs } : expected;
}

function applyDecided(history: readonly HistoryEntry[], drafts: readonly EventDraft[], nowMs: number): LedgerState {
  const state = foldHistory(history);
  drafts.forEach((draft, index) => {
    try {
      evolve(state, draft.event, { ledgerVersion: state.version + 1, recordedAtMs: nowMs, effectiveAtMs: draft.effectiveAtMs });
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new Error(`evolve refused decided event #${index} (${draft.event.type}): ${reason}`, { cause });
    }
  });
  return state;
}

/**
 * A deterministic text form of a value for comparison and messages: object keys sorted,
 * `undefined` fields dropped, bigints as `123n`, maps as sorted objects.
 */
function describe(value: unknown): string {
  return JSON.stringify(normalize(value));
}

function normalize(value: unknown): unknown {
  if (typeof value === 'bigint') return `${value}n`;
  if (value instanceof Map) {
    const entries = [...value.entries()].map(([key, item]): [string, unknown] => [String(key), item]);
    return normalize(Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
  }
  if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : normalize(item)));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const item = (value as Record<string, unknown>)[key];
      if (item !== undefined) out[key] = normalize(item);
    }
    return out;
  }
  return value;
}
