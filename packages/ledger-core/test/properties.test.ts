/**
 * Model-based property tests: random interleavings of every command, good and bad, run through a
 * real `Ledger` over an `InMemoryEventStore` with a controllable clock, and compared step by step
 * with a small reference model written here from the rules (not from the decider's code).
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ChainBrokenError,
  CurrencyRegistry,
  EventCodec,
  InMemoryEventStore,
  InvalidAmountError,
  InvalidInputError,
  Ledger,
  parseCommand,
  readLedger,
  replayLedger,
  verifyChain,
  type AccountState,
  type CommandResult,
  type EventStore,
  type LedgerSource,
  type LedgerWriterOptions,
  type LinkedMemberInput,
  type ReplayedState,
  type StoredEvent,
} from '@ledgerkit/ledger-core';

// ---- the reference model ------------------------------------------------------------------------

const CURRENCIES = [
  { code: 'EUR', scale: 2 },
  { code: 'JPY', scale: 0 },
  { code: 'KWD', scale: 3 },
] as const;
const SCALE: Record<string, number> = Object.fromEntries(CURRENCIES.map((c) => [c.code, c.scale]));
const START_MS = Date.parse('2025-03-01T00:00:00.000Z');
const BACKDATE_WINDOW_MS = 60_000;
const TENANT = 'props';
const LEDGER = 'main';

type Side = 'debit' | 'credit';
type AccountType = 'asset' | 'liability' | 'equity' | 'income' | 'expense';
type Meta = Record<string, string>;

interface MPosting {
  readonly account: string;
  readonly side: Side;
  readonly amount: bigint;
  readonly currency: string;
}

interface MAccount {
  readonly id: string;
  readonly currency: string;
  readonly type: AccountType;
  readonly noOverdraft: boolean; // debitsMustNotExceedCredits
  readonly noOvercredit: boolean; // creditsMustNotExceedDebits
  readonly metadata: Meta;
  readonly openedAtMs: number;
  readonly openedAtVersion: number;
  status: 'open' | 'frozen' | 'closed';
  dPosted: bigint;
  cPosted: bigint;
  dPending: bigint;
  cPending: bigint;
}

type MKind = 'transfer' | 'hold' | 'postPending' | 'voidPending' | 'reversal';

interface MTransfer {
  readonly id: string;
  readonly kind: MKind;
  readonly postings: readonly MPosting[];
  readonly pendingId: string | undefined;
  readonly reversalOf: string | undefined;
  readonly timeoutMs: number | undefined;
  readonly reference: string | undefined;
  readonly metadata: Meta;
  readonly version: number;
  readonly recordedAtMs: number;
  readonly effectiveAtMs: number;
  state: 'pending' | 'posted' | 'voided' | 'expired' | undefined;
  reversedBy: string | undefined;
}

type TransferCmd = {
  readonly kind: 'transfer';
  readonly id: string;
  readonly simple: boolean;
  readonly hold: boolean;
  readonly timeoutMs: number | undefined;
  readonly postings: readonly MPosting[];
  readonly effectiveAtMs: number | undefined;
  readonly reference: string | undefined;
  readonly metadata: Meta;
};
type PostCmd = {
  readonly kind: 'post';
  readonly id: string;
  readonly pendingId: string;
  readonly amount: bigint | undefined;
  readonly currency: string;
  readonly effectiveAtMs: number | undefined;
  readonly metadata: Meta;
};
type VoidCmd = { readonly kind: 'void'; readonly id: string; readonly pendingId: string; readonly effectiveAtMs: number | undefined; readonly metadata: Meta };
type ReverseCmd = {
  readonly kind: 'reverse';
  readonly id: string;
  readonly reversalOf: string;
  readonly effectiveAtMs: number | undefined;
  readonly reference: string | undefined;
  readonly metadata: Meta;
};
type MemberCmd = TransferCmd | PostCmd | VoidCmd | ReverseCmd;
type Cmd =
  | { readonly kind: 'open'; readonly id: string; readonly currency: string; readonly type: AccountType; readonly noOverdraft: boolean; readonly noOvercredit: boolean; readonly metadata: Meta }
  | { readonly kind: 'freeze' | 'unfreeze' | 'close'; readonly id: string }
  | { readonly kind: 'expire'; readonly pendingId: string }
  | { readonly kind: 'linked'; readonly members: readonly MemberCmd[] }
  | MemberCmd;

type Outcome =
  | { readonly ok: true; readonly duplicate: boolean; readonly version: number; readonly recordedAtMs: number; readonly members?: readonly Outcome[] }
  | { readonly ok: false; readonly code: string; readonly members?: readonly Outcome[] };

const fail = (code: string): Outcome => ({ ok: false, code });

function sameMeta(a: Meta, b: Meta): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/**
 * What a ledger should do, written from the rules: balances as bigints per account, transfers
 * by id, holds with their state. Every method either returns a rejection code or records.
 */
class Model {
  accounts = new Map<string, MAccount>();
  transfers = new Map<string, MTransfer>();
  version = 0;
  lastRecordedAtMs = 0;

  clone(): Model {
    const copy = new Model();
    copy.accounts = structuredClone(this.accounts);
    copy.transfers = structuredClone(this.transfers);
    copy.version = this.version;
    copy.lastRecordedAtMs = this.lastRecordedAtMs;
    return copy;
  }

  adopt(other: Model): void {
    this.accounts = other.accounts;
    this.transfers = other.transfers;
    this.version = other.version;
    this.lastRecordedAtMs = other.lastRecordedAtMs;
  }

  /** Recorded time of a command submitted when the clock reads `clockMs`. */
  nowFor(clockMs: number): number {
    return Math.max(clockMs, this.lastRecordedAtMs);
  }

  openHolds(): MTransfer[] {
    return [...this.transfers.values()].filter((t) => t.kind === 'hold' && t.state === 'pending');
  }

  exec(cmd: Cmd, now: number): Outcome {
    switch (cmd.kind) {
      case 'open':
        return this.open(cmd, now);
      case 'freeze':
      case 'unfreeze':
      case 'close':
        return this.status(cmd.kind, cmd.id, now);
      case 'expire':
        return this.expire(cmd.pendingId, now);
      case 'linked':
        return this.linked(cmd.members, now);
      default:
        return this.member(cmd, now);
    }
  }

  #record(now: number): Outcome & { ok: true } {
    this.version += 1;
    this.lastRecordedAtMs = Math.max(this.lastRecordedAtMs, now);
    return { ok: true, duplicate: false, version: this.version, recordedAtMs: now };
  }

  open(cmd: Extract<Cmd, { kind: 'open' }>, now: number): Outcome {
    const existing = this.accounts.get(cmd.id);
    if (existing !== undefined) {
      const same =
        existing.currency === cmd.currency &&
        existing.type === cmd.type &&
        existing.noOverdraft === cmd.noOverdraft &&
        existing.noOvercredit === cmd.noOvercredit &&
        sameMeta(existing.metadata, cmd.metadata);
      return same ? { ok: true, duplicate: true, version: existing.openedAtVersion, recordedAtMs: existing.openedAtMs } : fail('account_exists');
    }
    if (cmd.noOverdraft && cmd.noOvercredit) return fail('limit_exceeded');
    const outcome = this.#record(now);
    this.accounts.set(cmd.id, {
      id: cmd.id,
      currency: cmd.currency,
      type: cmd.type,
      noOverdraft: cmd.noOverdraft,
      noOvercredit: cmd.noOvercredit,
      metadata: cmd.metadata,
      openedAtMs: now,
      openedAtVersion: outcome.version,
      status: 'open',
      dPosted: 0n,
      cPosted: 0n,
      dPending: 0n,
      cPending: 0n,
    });
    return outcome;
  }

  status(op: 'freeze' | 'unfreeze' | 'close', id: string, now: number): Outcome {
    const account = this.accounts.get(id);
    if (account === undefined) return fail('account_not_found');
    if (account.status === 'closed') return fail('account_closed');
    if (op === 'freeze') {
      if (account.status === 'frozen') return fail('account_frozen');
      account.status = 'frozen';
    } else if (op === 'unfreeze') {
      if (account.status !== 'frozen') return fail('account_not_frozen');
      account.status = 'open';
    } else {
      if (account.dPosted !== account.cPosted || account.dPending !== 0n || account.cPending !== 0n) return fail('account_not_empty');
      account.status = 'closed';
    }
    return this.#record(now);
  }

  expire(pendingId: string, now: number): Outcome {
    const hold = this.transfers.get(pendingId);
    if (hold === undefined || hold.kind !== 'hold') return fail('pending_not_found');
    if (hold.state !== 'pending') return fail('pending_already_resolved');
    if (hold.timeoutMs === undefined || hold.recordedAtMs + hold.timeoutMs > now) return fail('pending_not_expired');
    this.#release(hold, 'expired');
    return this.#record(now);
  }

  linked(members: readonly MemberCmd[], now: number): Outcome {
    const scratch = this.clone();
    const outcomes: Outcome[] = [];
    for (const member of members) {
      const outcome = scratch.member(member, now);
      outcomes.push(outcome);
      if (!outcome.ok) {
        const failedAt = outcomes.length - 1;
        return {
          ok: false,
          code: outcome.code,
          members: members.map((_, i) => (i === failedAt ? outcome : fail('linked_group_failed'))),
        };
      }
    }
    this.adopt(scratch);
    const accepted = outcomes as (Outcome & { ok: true })[];
    if (accepted.every((o) => o.duplicate)) {
      const latest = accepted.reduce((a, b) => (b.version > a.version ? b : a));
      return { ok: true, duplicate: true, version: latest.version, recordedAtMs: latest.recordedAtMs, members: outcomes };
    }
    return { ok: true, duplicate: false, version: this.version, recordedAtMs: now, members: outcomes };
  }

  member(cmd: MemberCmd, now: number): Outcome {
    switch (cmd.kind) {
      case 'transfer':
        return this.transfer(cmd, now);
      case 'post':
        return this.post(cmd, now);
      case 'void':
        return this.void(cmd, now);
      case 'reverse':
        return this.reverse(cmd, now);
    }
  }

  transfer(cmd: TransferCmd, now: number): Outcome {
    const existing = this.transfers.get(cmd.id);
    if (existing !== undefined) return this.#retry(existing, cmd, cmd.hold ? 'hold' : 'transfer', cmd.postings);
    const shape = shapeProblem(cmd.postings);
    if (shape !== undefined) return fail(shape);
    const effective = this.#effective(cmd.effectiveAtMs, now, 0);
    if (typeof effective === 'string') return fail(effective);
    const problem = this.#postingsProblem(cmd.postings, cmd.hold ? 'pending' : 'posted', effective);
    if (problem !== undefined) return fail(problem);
    this.#apply(cmd.postings, cmd.hold ? 'pending' : 'posted', 1n);
    const outcome = this.#record(now);
    this.transfers.set(cmd.id, {
      id: cmd.id,
      kind: cmd.hold ? 'hold' : 'transfer',
      postings: cmd.postings,
      pendingId: undefined,
      reversalOf: undefined,
      timeoutMs: cmd.hold ? cmd.timeoutMs : undefined,
      reference: cmd.reference,
      metadata: cmd.metadata,
      version: outcome.version,
      recordedAtMs: now,
      effectiveAtMs: effective,
      state: cmd.hold ? 'pending' : undefined,
      reversedBy: undefined,
    });
    return outcome;
  }

  post(cmd: PostCmd, now: number): Outcome {
    const named = this.transfers.get(cmd.pendingId);
    const existing = this.transfers.get(cmd.id);
    if (existing !== undefined) {
      const full = named === undefined ? undefined : twoPostingAmount(named);
      const asked = cmd.amount ?? full;
      const currency = cmd.amount === undefined ? undefined : cmd.currency;
      const askedPostings = asked === undefined ? undefined : (named ?? existing).postings.map((p) => ({ ...p, amount: asked, currency: currency ?? p.currency }));
      return this.#retry(existing, cmd, 'postPending', askedPostings);
    }
    const unusable = this.#holdProblem(named, now);
    if (unusable !== undefined) return fail(unusable);
    const hold = named as MTransfer;
    const effective = this.#effective(cmd.effectiveAtMs, now, hold.effectiveAtMs);
    if (typeof effective === 'string') return fail(effective);
    let postings = hold.postings;
    if (cmd.amount !== undefined) {
      const full = twoPostingAmount(hold);
      if (full === undefined) return fail('partial_post_not_supported');
      if (cmd.currency !== hold.postings[0]?.currency) return fail('currency_mismatch');
      if (cmd.amount > full) return fail('amount_exceeds_pending');
      const amount = cmd.amount;
      postings = hold.postings.map((p) => ({ ...p, amount }));
    }
    for (const p of hold.postings) {
      const account = this.accounts.get(p.account);
      if (account === undefined) return fail('account_not_found');
      if (account.status !== 'open') return fail(account.status === 'frozen' ? 'account_frozen' : 'account_closed');
    }
    // Posting at most the held amount can only lower what counts against a limit.
    this.#release(hold, 'posted');
    this.#apply(postings, 'posted', 1n);
    const outcome = this.#record(now);
    this.transfers.set(cmd.id, {
      id: cmd.id,
      kind: 'postPending',
      postings,
      pendingId: hold.id,
      reversalOf: undefined,
      timeoutMs: undefined,
      reference: undefined,
      metadata: cmd.metadata,
      version: outcome.version,
      recordedAtMs: now,
      effectiveAtMs: effective,
      state: undefined,
      reversedBy: undefined,
    });
    return outcome;
  }

  void(cmd: VoidCmd, now: number): Outcome {
    const existing = this.transfers.get(cmd.id);
    if (existing !== undefined) return this.#retry(existing, cmd, 'voidPending', undefined);
    const named = this.transfers.get(cmd.pendingId);
    const unusable = this.#holdProblem(named, now);
    if (unusable !== undefined) return fail(unusable);
    const hold = named as MTransfer;
    const effective = this.#effective(cmd.effectiveAtMs, now, hold.effectiveAtMs);
    if (typeof effective === 'string') return fail(effective);
    this.#release(hold, 'voided');
    const outcome = this.#record(now);
    this.transfers.set(cmd.id, {
      id: cmd.id,
      kind: 'voidPending',
      postings: [],
      pendingId: hold.id,
      reversalOf: undefined,
      timeoutMs: undefined,
      reference: undefined,
      metadata: cmd.metadata,
      version: outcome.version,
      recordedAtMs: now,
      effectiveAtMs: effective,
      state: undefined,
      reversedBy: undefined,
    });
    return outcome;
  }

  reverse(cmd: ReverseCmd, now: number): Outcome {
    const original = this.transfers.get(cmd.reversalOf);
    const existing = this.transfers.get(cmd.id);
    if (existing !== undefined) return this.#retry(existing, cmd, 'reversal', original === undefined ? undefined : swapped(original.postings));
    if (original === undefined) return fail('transfer_not_found');
    if (original.kind !== 'transfer' && original.kind !== 'postPending') return fail('transfer_not_reversible');
    if (original.reversedBy !== undefined) return fail('transfer_already_reversed');
    const effective = this.#effective(cmd.effectiveAtMs, now, original.effectiveAtMs);
    if (typeof effective === 'string') return fail(effective);
    const postings = swapped(original.postings);
    const problem = this.#postingsProblem(postings, 'posted', effective);
    if (problem !== undefined) return fail(problem);
    this.#apply(postings, 'posted', 1n);
    original.reversedBy = cmd.id;
    const outcome = this.#record(now);
    this.transfers.set(cmd.id, {
      id: cmd.id,
      kind: 'reversal',
      postings,
      pendingId: undefined,
      reversalOf: original.id,
      timeoutMs: undefined,
      reference: cmd.reference,
      metadata: cmd.metadata,
      version: outcome.version,
      recordedAtMs: now,
      effectiveAtMs: effective,
      state: undefined,
      reversedBy: undefined,
    });
    return outcome;
  }

  /** A reused id: the original outcome if the command is the same, else which part differs. */
  #retry(existing: MTransfer, cmd: MemberCmd, kind: MKind, asked: readonly MPosting[] | undefined): Outcome {
    if (existing.kind !== kind) return fail('exists_with_different_kind');
    if ((cmd.kind === 'post' || cmd.kind === 'void') && cmd.pendingId !== existing.pendingId) return fail('exists_with_different_pending_id');
    if (cmd.kind === 'reverse' && cmd.reversalOf !== existing.reversalOf) return fail('exists_with_different_reversal_of');
    if (asked !== undefined) {
      const was = existing.postings;
      if (was.length !== asked.length || was.some((p, i) => p.account !== asked[i]?.account || p.side !== asked[i]?.side)) {
        return fail('exists_with_different_accounts');
      }
      if (was.some((p, i) => p.currency !== asked[i]?.currency)) return fail('exists_with_different_currency');
      if (was.some((p, i) => p.amount !== asked[i]?.amount)) return fail('exists_with_different_amount');
    }
    if (cmd.kind === 'transfer' && cmd.hold && cmd.timeoutMs !== existing.timeoutMs) return fail('exists_with_different_timeout');
    if ((cmd.kind === 'transfer' || cmd.kind === 'reverse') && cmd.reference !== existing.reference) return fail('exists_with_different_reference');
    if (!sameMeta(existing.metadata, cmd.metadata)) return fail('exists_with_different_metadata');
    if (cmd.effectiveAtMs !== undefined && cmd.effectiveAtMs !== existing.effectiveAtMs) return fail('exists_with_different_effective_at');
    return { ok: true, duplicate: true, version: existing.version, recordedAtMs: existing.recordedAtMs };
  }

  #holdProblem(hold: MTransfer | undefined, now: number): string | undefined {
    if (hold === undefined || hold.kind !== 'hold') return 'pending_not_found';
    if (hold.state !== 'pending') return 'pending_already_resolved';
    if (hold.timeoutMs !== undefined && hold.recordedAtMs + hold.timeoutMs <= now) return 'pending_expired';
    return undefined;
  }

  #effective(requested: number | undefined, now: number, notBefore: number): number | string {
    const effective = requested ?? now;
    if (effective > now) return 'effective_at_in_future';
    if (effective < now - BACKDATE_WINDOW_MS) return 'effective_at_outside_window';
    if (effective < notBefore) return 'effective_at_before_dependency';
    return effective;
  }

  #postingsProblem(postings: readonly MPosting[], bucket: 'posted' | 'pending', effective: number): string | undefined {
    for (const p of postings) {
      const account = this.accounts.get(p.account);
      if (account === undefined) return 'account_not_found';
      if (account.currency !== p.currency) return 'currency_mismatch';
      if (account.status !== 'open') return account.status === 'frozen' ? 'account_frozen' : 'account_closed';
      if (effective < account.openedAtMs) return 'effective_at_before_dependency';
      let { dPosted, cPosted, dPending, cPending } = account;
      if (bucket === 'posted' && p.side === 'debit') dPosted += p.amount;
      if (bucket === 'posted' && p.side === 'credit') cPosted += p.amount;
      if (bucket === 'pending' && p.side === 'debit') dPending += p.amount;
      if (bucket === 'pending' && p.side === 'credit') cPending += p.amount;
      if (account.noOverdraft && dPosted + dPending > cPosted) return 'insufficient_funds';
      if (account.noOvercredit && cPosted + cPending > dPosted) return 'limit_exceeded';
    }
    return undefined;
  }

  #apply(postings: readonly MPosting[], bucket: 'posted' | 'pending', sign: 1n | -1n): void {
    for (const p of postings) {
      const account = this.accounts.get(p.account) as MAccount;
      const delta = sign * p.amount;
      if (bucket === 'posted') {
        if (p.side === 'debit') account.dPosted += delta;
        else account.cPosted += delta;
      } else if (p.side === 'debit') account.dPending += delta;
      else account.cPending += delta;
    }
  }

  #release(hold: MTransfer, state: 'posted' | 'voided' | 'expired'): void {
    this.#apply(hold.postings, 'pending', -1n);
    hold.state = state;
  }
}

function shapeProblem(postings: readonly MPosting[]): string | undefined {
  if (postings.length < 2) return 'unbalanced_postings';
  const ids = postings.map((p) => p.account);
  if (new Set(ids).size !== ids.length) return 'accounts_must_be_different';
  const net = new Map<string, bigint>();
  for (const p of postings) net.set(p.currency, (net.get(p.currency) ?? 0n) + (p.side === 'debit' ? p.amount : -p.amount));
  return [...net.values()].every((sum) => sum === 0n) ? undefined : 'unbalanced_postings';
}

function twoPostingAmount(t: MTransfer): bigint | undefined {
  return t.postings.length === 2 ? t.postings[0]?.amount : undefined;
}

function swapped(postings: readonly MPosting[]): MPosting[] {
  return postings.map((p) => ({ ...p, side: p.side === 'debit' ? 'credit' : 'debit' }));
}

// ---- turning model commands into Ledger calls ---------------------------------------------------

/** Minor units as a decimal string at `scale` (written here, independently of the library). */
function decimal(minor: bigint, scale: number): string {
  if (scale === 0) return minor.toString();
  const digits = minor.toString().padStart(scale + 1, '0');
  return `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

const iso = (ms: number): string => new Date(ms).toISOString();

function optional(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}

function memberInput(cmd: MemberCmd): LinkedMemberInput {
  const meta = Object.keys(cmd.metadata).length > 0 ? cmd.metadata : undefined;
  const effectiveAt = cmd.effectiveAtMs === undefined ? undefined : iso(cmd.effectiveAtMs);
  switch (cmd.kind) {
    case 'transfer': {
      const first = cmd.postings[0] as MPosting;
      const second = cmd.postings[1] as MPosting;
      const body = cmd.simple
        ? { debitAccountId: first.account, creditAccountId: second.account, amount: decimal(first.amount, SCALE[first.currency] as number), currency: first.currency }
        : {
            postings: cmd.postings.map((p) => ({ accountId: p.account, side: p.side, amount: decimal(p.amount, SCALE[p.currency] as number), currency: p.currency })),
          };
      const timeout = cmd.hold ? { timeoutMs: cmd.timeoutMs } : {};
      return { kind: cmd.hold ? 'hold' : 'transfer', input: optional({ transferId: cmd.id, ...body, ...timeout, effectiveAt, reference: cmd.reference, metadata: meta }) };
    }
    case 'post':
      return {
        kind: 'postPending',
        input: optional({
          transferId: cmd.id,
          pendingId: cmd.pendingId,
          amount: cmd.amount === undefined ? undefined : decimal(cmd.amount, SCALE[cmd.currency] as number),
          currency: cmd.amount === undefined ? undefined : cmd.currency,
          effectiveAt,
          metadata: meta,
        }),
      };
    case 'void':
      return { kind: 'voidPending', input: optional({ transferId: cmd.id, pendingId: cmd.pendingId, effectiveAt, metadata: meta }) };
    case 'reverse':
      return { kind: 'reverse', input: optional({ transferId: cmd.id, reversalOf: cmd.reversalOf, effectiveAt, reference: cmd.reference, metadata: meta }) };
  }
}

function submit(ledger: Ledger, cmd: Cmd): Promise<CommandResult> {
  switch (cmd.kind) {
    case 'open': {
      const input = optional({
        accountId: cmd.id,
        currency: cmd.currency,
        type: cmd.type,
        flags: { debitsMustNotExceedCredits: cmd.noOverdraft, creditsMustNotExceedDebits: cmd.noOvercredit },
        metadata: Object.keys(cmd.metadata).length > 0 ? cmd.metadata : undefined,
      });
      if (!(cmd.noOverdraft && cmd.noOvercredit)) return ledger.openAccount(input);
      // Both flags: input the parser refuses (checked at once, so that this command is submitted
      // in its turn among concurrent ones), so the decider's own rejection is reached with the
      // command built by hand, as a caller without parseCommand would.
      expect(() => parseCommand.openAccount(input)).toThrow(InvalidInputError);
      return ledger.writer.submit({
        kind: 'openAccount',
        accountId: cmd.id,
        currency: cmd.currency,
        type: cmd.type,
        flags: { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: true },
        metadata: cmd.metadata,
      });
    }
    case 'freeze':
      return ledger.freezeAccount({ accountId: cmd.id });
    case 'unfreeze':
      return ledger.unfreezeAccount({ accountId: cmd.id });
    case 'close':
      return ledger.closeAccount({ accountId: cmd.id });
    case 'expire':
      return ledger.writer.submit({ kind: 'expirePending', pendingId: cmd.pendingId });
    case 'linked':
      return ledger.linked(cmd.members.map(memberInput));
    default: {
      const { kind, input } = memberInput(cmd);
      switch (kind) {
        case 'transfer':
          return ledger.transfer(input);
        case 'hold':
          return ledger.hold(input);
        case 'postPending':
          return ledger.postPending(input);
        case 'voidPending':
          return ledger.voidPending(input);
        case 'reverse':
          return ledger.reverse(input);
      }
    }
  }
}

// ---- abstract steps, resolved against the model when they run ------------------------------------

type Eff = { readonly t: 'none' } | { readonly t: 'past' | 'future' | 'tooOld'; readonly ms: number };
type Mutation = 'none' | 'amount' | 'metadata' | 'reference' | 'kind' | 'timeout' | 'effective' | 'currency';

type TransferStep =
  | {
      readonly t: 'simple';
      readonly from: number;
      readonly to: number;
      readonly wrongCurrency: boolean;
      readonly amount: bigint;
      readonly hold: boolean;
      readonly timeoutMs: number | undefined;
      readonly eff: Eff;
      readonly meta: boolean;
      readonly ref: boolean;
    }
  | {
      readonly t: 'multi';
      readonly currency: number;
      readonly picks: readonly number[];
      readonly amounts: readonly bigint[];
      readonly mixed: boolean;
      readonly unbalanced: boolean;
      /** Mixed currencies, off by +k in one and by -k in the other: balanced in total, not per currency. */
      readonly crossUnbalanced: bigint | undefined;
      readonly hold: boolean;
      readonly timeoutMs: number | undefined;
      readonly eff: Eff;
    }
  | {
      readonly t: 'post';
      readonly pick: number;
      readonly preferOpen: boolean;
      readonly mode: 'omit' | 'full' | 'partial' | 'over';
      readonly fraction: number;
      /** The amount named in another currency than the hold's (an omitted amount becomes a partial one). */
      readonly wrongCurrency: boolean;
      readonly eff: Eff;
    }
  | { readonly t: 'void'; readonly pick: number; readonly preferOpen: boolean; readonly eff: Eff }
  | { readonly t: 'reverse'; readonly pick: number; readonly eff: Eff; readonly ref: boolean };

type CommandStep =
  | TransferStep
  | { readonly t: 'open'; readonly slot: number; readonly currency: number; readonly type: number; readonly flags: number; readonly meta: boolean }
  | { readonly t: 'status'; readonly op: 'freeze' | 'unfreeze' | 'close'; readonly pick: number }
  | { readonly t: 'expire'; readonly pick: number }
  | { readonly t: 'linked'; readonly members: readonly TransferStep[] }
  | { readonly t: 'retry'; readonly pick: number; readonly mutation: Mutation };

type Step =
  | CommandStep
  | { readonly t: 'clock'; readonly deltaMs: number }
  | { readonly t: 'restart' }
  | { readonly t: 'badAmount'; readonly pick: number; readonly jpy: boolean }
  | { readonly t: 'concurrent'; readonly steps: readonly CommandStep[] };

/** Writer options a run varies: small caches and frequent snapshots exercise the index and restore paths. */
type WriterTuning = Pick<LedgerWriterOptions, 'transfersCachedMax' | 'snapshotEveryEvents'>;

const ACCOUNT_TYPES: readonly AccountType[] = ['asset', 'liability', 'equity', 'income', 'expense'];
const GHOST_ACCOUNT = 'ghost-account';
const GHOST_TRANSFER = 'ghost-transfer';

const amountArb = fc.oneof({ weight: 4, arbitrary: fc.bigInt(1n, 2_000n) }, { weight: 1, arbitrary: fc.bigInt(1n, 1_000_000n) });
const effArb: fc.Arbitrary<Eff> = fc.oneof(
  { weight: 8, arbitrary: fc.constant<Eff>({ t: 'none' }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 50_000 }).map((ms): Eff => ({ t: 'past', ms })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 5_000 }).map((ms): Eff => ({ t: 'future', ms })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 5_000 }).map((ms): Eff => ({ t: 'tooOld', ms })) },
  // The window's edges: 1 ms inside it and exactly at it are accepted (only before now - window is
  // outside it, docs/decider.md), 1 ms past it is effective_at_outside_window.
  {
    weight: 1,
    arbitrary: fc.constantFrom<Eff>({ t: 'past', ms: BACKDATE_WINDOW_MS - 1 }, { t: 'past', ms: BACKDATE_WINDOW_MS }, { t: 'tooOld', ms: 1 }),
  },
);
const timeoutArb = fc.option(fc.integer({ min: 1, max: 20_000 }), { nil: undefined, freq: 2 });

const transferStepArb: fc.Arbitrary<TransferStep> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant('simple' as const),
      from: fc.nat(),
      to: fc.nat(),
      wrongCurrency: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
      amount: amountArb,
      hold: fc.boolean(),
      timeoutMs: timeoutArb,
      eff: effArb,
      meta: fc.boolean(),
      ref: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('multi' as const),
      currency: fc.nat({ max: CURRENCIES.length - 1 }),
      picks: fc.array(fc.nat(), { minLength: 3, maxLength: 4 }),
      amounts: fc.array(amountArb, { minLength: 4, maxLength: 4 }),
      mixed: fc.boolean(),
      unbalanced: fc.integer({ min: 0, max: 7 }).map((n) => n === 0),
      crossUnbalanced: fc.option(fc.oneof(fc.constant(1n), fc.bigInt(1n, 2_000n)), { nil: undefined, freq: 6 }),
      hold: fc.boolean(),
      timeoutMs: timeoutArb,
      eff: effArb,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('post' as const),
      pick: fc.nat(),
      preferOpen: fc.integer({ min: 0, max: 4 }).map((n) => n > 0),
      mode: fc.constantFrom('omit' as const, 'full' as const, 'partial' as const, 'partial' as const, 'over' as const),
      fraction: fc.nat(),
      wrongCurrency: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
      eff: effArb,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('void' as const), pick: fc.nat(), preferOpen: fc.integer({ min: 0, max: 4 }).map((n) => n > 0), eff: effArb }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('reverse' as const), pick: fc.nat(), eff: effArb, ref: fc.boolean() }) },
);

const commandStepArb: fc.Arbitrary<CommandStep> = fc.oneof(
  { weight: 10, arbitrary: transferStepArb },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('open' as const),
      slot: fc.nat({ max: 9 }),
      currency: fc.nat({ max: CURRENCIES.length - 1 }),
      type: fc.nat({ max: ACCOUNT_TYPES.length - 1 }),
      flags: fc.nat({ max: 3 }),
      meta: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('status' as const), op: fc.constantFrom('freeze' as const, 'unfreeze' as const, 'close' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('expire' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('linked' as const), members: fc.array(transferStepArb, { minLength: 1, maxLength: 3 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('retry' as const),
      pick: fc.nat(),
      mutation: fc.constantFrom<Mutation>('none', 'none', 'none', 'amount', 'metadata', 'reference', 'kind', 'timeout', 'effective', 'currency'),
    }),
  },
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 12, arbitrary: commandStepArb },
  {
    weight: 2,
    arbitrary: fc.oneof(
      { weight: 5, arbitrary: fc.integer({ min: 0, max: 12_000 }) },
      { weight: 1, arbitrary: fc.integer({ min: -8_000, max: -1 }) },
    ).map((deltaMs): Step => ({ t: 'clock', deltaMs })),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('badAmount' as const), pick: fc.nat(), jpy: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant<Step>({ t: 'restart' }) },
  { weight: 2, arbitrary: fc.array(commandStepArb, { minLength: 2, maxLength: 5 }).map((steps): Step => ({ t: 'concurrent', steps })) },
);

const pick = <T>(items: readonly T[], n: number): T | undefined => (items.length === 0 ? undefined : items[n % items.length]);

/** A simple transfer (or hold) command. */
function simpleCmd(id: string, from: string, to: string, amount: bigint, currency: string, extra: Partial<TransferCmd> = {}): TransferCmd {
  return {
    kind: 'transfer',
    id,
    simple: true,
    hold: false,
    timeoutMs: undefined,
    postings: [
      { account: from, side: 'debit', amount, currency },
      { account: to, side: 'credit', amount, currency },
    ],
    effectiveAtMs: undefined,
    reference: undefined,
    metadata: {},
    ...extra,
  };
}

/**
 * The fixed opening of every run, per currency: a bank, two no-overdraft customers it funds, and
 * a credit line (credits may not exceed debits) drawn once.
 */
function setupCommands(): Cmd[] {
  return CURRENCIES.flatMap(({ code }): Cmd[] => [
    { kind: 'open', id: `${code}-bank`, currency: code, type: 'asset', noOverdraft: false, noOvercredit: false, metadata: {} },
    { kind: 'open', id: `${code}-alice`, currency: code, type: 'liability', noOverdraft: true, noOvercredit: false, metadata: {} },
    { kind: 'open', id: `${code}-bob`, currency: code, type: 'liability', noOverdraft: true, noOvercredit: false, metadata: { tier: 'gold' } },
    { kind: 'open', id: `${code}-line`, currency: code, type: 'asset', noOverdraft: false, noOvercredit: true, metadata: {} },
    simpleCmd(`fund-${code}-alice`, `${code}-bank`, `${code}-alice`, 20_000n, code),
    simpleCmd(`fund-${code}-bob`, `${code}-bank`, `${code}-bob`, 5_000n, code),
    simpleCmd(`draw-${code}-line`, `${code}-line`, `${code}-bank`, 3_000n, code),
    simpleCmd(`hold-${code}`, `${code}-alice`, `${code}-bob`, 1_000n, code, { hold: true }),
    simpleCmd(`hold-${code}-timed`, `${code}-bank`, `${code}-alice`, 500n, code, { hold: true, timeoutMs: 10_000 }),
  ]);
}

/** Runs steps against a ledger and the model, checking every outcome and every invariant. */
class Runner {
  readonly store = new InMemoryEventStore();
  readonly #options: WriterTuning;

  constructor(options: WriterTuning = {}) {
    this.#options = options;
  }

  readonly model = new Model();
  readonly history: Cmd[] = [];
  clockMs = START_MS;
  #nextId = 0;
  ledger!: Ledger;
  source!: LedgerSource;

  async open(): Promise<void> {
    this.ledger = await Ledger.open({
      store: this.store,
      tenantId: TENANT,
      ledgerId: LEDGER,
      clock: () => this.clockMs,
      backdateWindowMs: BACKDATE_WINDOW_MS,
      // Expiry is driven by explicit expirePending commands here, so the model stays in step.
      expiryCheckIntervalMs: 60_000,
      ...this.#options,
    });
    this.source = { store: this.store, codec: this.ledger.writer.codec, tenantId: TENANT, ledgerId: LEDGER };
  }

  freshId(): string {
    this.#nextId += 1;
    return `t-${this.#nextId}`;
  }

  effective(eff: Eff, model: Model): number | undefined {
    const now = model.nowFor(this.clockMs);
    switch (eff.t) {
      case 'none':
        return undefined;
      case 'past':
        return now - eff.ms;
      case 'future':
        return now + eff.ms;
      case 'tooOld':
        return now - BACKDATE_WINDOW_MS - eff.ms;
    }
  }

  resolveMember(step: TransferStep, model: Model): MemberCmd {
    const accounts = [...model.accounts.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    switch (step.t) {
      case 'simple': {
        const fromAccount = pick(accounts, step.from);
        const from = step.from % 17 === 0 || fromAccount === undefined ? GHOST_ACCOUNT : fromAccount.id;
        const sameCurrency = accounts.filter((a) => a.id !== from && a.currency === fromAccount?.currency);
        const pool = step.to % 7 === 0 || sameCurrency.length === 0 ? [...accounts.map((a) => a.id), GHOST_ACCOUNT] : sameCurrency.map((a) => a.id);
        const to = pick(pool, step.to) ?? GHOST_ACCOUNT;
        const base = fromAccount?.currency ?? 'EUR';
        const currency = step.wrongCurrency ? (CURRENCIES.find((c) => c.code !== base)?.code ?? base) : base;
        return {
          kind: 'transfer',
          id: this.freshId(),
          simple: true,
          hold: step.hold,
          timeoutMs: step.hold ? step.timeoutMs : undefined,
          postings: [
            { account: from, side: 'debit', amount: step.amount, currency },
            { account: to, side: 'credit', amount: step.amount, currency },
          ],
          effectiveAtMs: this.effective(step.eff, model),
          reference: step.ref ? 'invoice-7' : undefined,
          metadata: step.meta ? { note: 'n1' } : {},
        };
      }
      case 'multi': {
        const postings: MPosting[] = [];
        const used = new Set<string>();
        const legs = (currency: string, picks: readonly number[], amounts: readonly bigint[]): void => {
          const pool = accounts.filter((a) => a.currency === currency && !used.has(a.id)).map((a) => a.id);
          const chosen = picks.map((n) => {
            const id = pool.length === 0 ? `${GHOST_ACCOUNT}-${used.size}` : (pool.splice(n % pool.length, 1)[0] as string);
            used.add(id);
            return id;
          });
          // One or two debits against the rest as credits, balanced by construction.
          const debits = chosen.length >= 4 ? 2 : 1;
          const debitAmounts = amounts.slice(0, debits);
          let remaining = debitAmounts.reduce((a, b) => a + b, 0n);
          chosen.forEach((account, i) => {
            if (i < debits) {
              postings.push({ account, side: 'debit', amount: debitAmounts[i] as bigint, currency });
              return;
            }
            const last = i === chosen.length - 1;
            const share = last || remaining < 2n ? remaining : 1n + ((amounts[i] as bigint) % (remaining - 1n));
            const amount = share > 0n ? share : 1n;
            remaining -= amount;
            postings.push({ account, side: 'credit', amount, currency });
          });
        };
        const currency = (CURRENCIES[step.currency] as { code: string }).code;
        legs(currency, step.picks, step.amounts);
        if (step.mixed || step.crossUnbalanced !== undefined) {
          const other = (CURRENCIES[(step.currency + 1) % CURRENCIES.length] as { code: string }).code;
          legs(other, step.picks.slice(0, 2), step.amounts.slice(2));
        }
        if (step.unbalanced) {
          const last = postings[postings.length - 1] as MPosting;
          postings[postings.length - 1] = { ...last, amount: last.amount + 1n };
        }
        if (step.crossUnbalanced !== undefined) {
          // +k on the first currency's first debit and +k on the other currency's last credit: the
          // first currency nets +k, the other -k, so the postings balance only summed across currencies.
          const k = step.crossUnbalanced;
          const first = postings[0] as MPosting;
          const last = postings[postings.length - 1] as MPosting;
          postings[0] = { ...first, amount: first.amount + k };
          postings[postings.length - 1] = { ...last, amount: last.amount + k };
        }
        return {
          kind: 'transfer',
          id: this.freshId(),
          simple: false,
          hold: step.hold,
          timeoutMs: step.hold ? step.timeoutMs : undefined,
          postings,
          effectiveAtMs: this.effective(step.eff, model),
          reference: undefined,
          metadata: {},
        };
      }
      case 'post':
      case 'void': {
        const holds = [...model.transfers.values()].filter((t) => t.kind === 'hold' && (!step.preferOpen || t.state === 'pending')).map((t) => t.id);
        const pendingId = step.pick % 13 === 0 ? GHOST_TRANSFER : (pick(holds, step.pick) ?? pick([...model.transfers.keys()], step.pick) ?? GHOST_TRANSFER);
        const effectiveAtMs = this.effective(step.eff, model);
        if (step.t === 'void') return { kind: 'void', id: this.freshId(), pendingId, effectiveAtMs, metadata: {} };
        const named = model.transfers.get(pendingId);
        const held = named?.postings[0]?.amount ?? 100n;
        const mode = step.wrongCurrency && step.mode === 'omit' ? 'partial' : step.mode;
        const amount = mode === 'omit' ? undefined : mode === 'full' ? held : mode === 'over' ? held + 1n : 1n + (BigInt(step.fraction) % held);
        const heldCurrency = named?.postings[0]?.currency ?? 'EUR';
        const currency = step.wrongCurrency ? ((CURRENCIES.find((c) => c.code !== heldCurrency) as { code: string }).code) : heldCurrency;
        return { kind: 'post', id: this.freshId(), pendingId, amount, currency, effectiveAtMs, metadata: {} };
      }
      case 'reverse': {
        const reversalOf = step.pick % 11 === 0 ? GHOST_TRANSFER : (pick([...model.transfers.keys()], step.pick) ?? GHOST_TRANSFER);
        return { kind: 'reverse', id: this.freshId(), reversalOf, effectiveAtMs: this.effective(step.eff, model), reference: step.ref ? 'undo' : undefined, metadata: {} };
      }
    }
  }

  resolve(step: CommandStep): Cmd {
    const model = this.model;
    switch (step.t) {
      case 'open': {
        const type = ACCOUNT_TYPES[step.type] as AccountType;
        return {
          kind: 'open',
          id: `acc-${step.slot}`,
          currency: (CURRENCIES[step.currency] as { code: string }).code,
          type,
          noOverdraft: step.flags === 1 || step.flags === 3,
          noOvercredit: step.flags === 2 || step.flags === 3,
          metadata: step.meta ? { owner: 'o' } : {},
        };
      }
      case 'status': {
        const all = [...model.accounts.values()].sort(byId);
        // Half the time aim where the operation can succeed: unfreeze a frozen account, close an empty one.
        const fitting = all.filter((a) =>
          step.op === 'unfreeze' ? a.status === 'frozen' : step.op === 'close' ? a.dPosted === a.cPosted && a.dPending === 0n && a.cPending === 0n : a.status === 'open',
        );
        const pool = step.pick % 2 === 0 && fitting.length > 0 ? fitting : all;
        return { kind: step.op, id: step.pick % 19 === 0 ? GHOST_ACCOUNT : (pick(pool, step.pick >> 1)?.id ?? GHOST_ACCOUNT) };
      }
      case 'expire': {
        const open = model.openHolds().map((h) => h.id);
        const any = [...model.transfers.keys()];
        return { kind: 'expire', pendingId: pick(open, step.pick) ?? pick(any, step.pick) ?? GHOST_TRANSFER };
      }
      case 'linked': {
        // Members are resolved against a scratch model so a later member can resolve an earlier one's hold.
        const scratch = model.clone();
        const now = model.nowFor(this.clockMs);
        const members = step.members.map((member) => {
          const cmd = this.resolveMember(member, scratch);
          scratch.member(cmd, now);
          return cmd;
        });
        return { kind: 'linked', members };
      }
      case 'retry': {
        // Recent commands, so that retries meet holds and transfers rather than the setup.
        const recent = this.history.slice(-8);
        const previous = pick(recent, step.pick);
        if (previous === undefined) return { kind: 'freeze', id: GHOST_ACCOUNT };
        return mutate(previous, step.mutation, model.nowFor(this.clockMs));
      }
      default:
        return this.resolveMember(step, model);
    }
  }

  async run(step: Step, index: number): Promise<void> {
    switch (step.t) {
      case 'clock':
        this.clockMs += step.deltaMs;
        break;
      case 'restart':
        // A new writer over the same store: from the latest snapshot (if any) and the tail.
        await this.ledger.close();
        await this.open();
        break;
      case 'badAmount': {
        // Amounts with more decimals than the currency allows are refused, never rounded.
        const currency = step.jpy ? 'JPY' : 'EUR';
        const accounts = [...this.model.accounts.values()].filter((a) => a.currency === currency);
        const from = pick(accounts, step.pick)?.id ?? GHOST_ACCOUNT;
        const amount = step.jpy ? '1.5' : '1.005';
        const versionBefore = this.ledger.version;
        await expect(
          (async () => this.ledger.transfer({ transferId: this.freshId(), debitAccountId: from, creditAccountId: `${currency}-bank`, amount, currency }))(),
        ).rejects.toBeInstanceOf(InvalidAmountError);
        expect(this.ledger.version).toBe(versionBefore);
        break;
      }
      case 'concurrent': {
        // Submitted together, decided in submission order within one batch: the model runs in that order too.
        const pending: Promise<CommandResult>[] = [];
        const expected: Outcome[] = [];
        const cmds: Cmd[] = [];
        for (const sub of step.steps) {
          const cmd = this.resolve(sub);
          expected.push(this.model.exec(cmd, this.model.nowFor(this.clockMs)));
          this.history.push(cmd);
          cmds.push(cmd);
          pending.push(submit(this.ledger, cmd));
        }
        const results = await Promise.all(pending);
        results.forEach((result, i) => checkOutcome(result, expected[i] as Outcome, `step ${index}.${i} ${show(cmds[i])}`));
        break;
      }
      default:
        await this.command(this.resolve(step), `step ${index}`);
    }
  }

  async command(cmd: Cmd, label: string): Promise<CommandResult> {
    const expected = this.model.exec(cmd, this.model.nowFor(this.clockMs));
    this.history.push(cmd);
    const result = await submit(this.ledger, cmd);
    checkOutcome(result, expected, `${label} ${show(cmd)}`);
    return result;
  }

  /** Every invariant the ledger promises, checked against the writer, the model and a replay. */
  async checkInvariants(label: string): Promise<void> {
    const accounts = this.ledger.writer.accounts();
    expect(this.ledger.version, `${label}: version`).toBe(this.model.version);

    // The writer's balances are the model's balances.
    expect(accounts.map(view).sort(byId), `${label}: balances`).toEqual([...this.model.accounts.values()].map(modelView).sort(byId));

    // Conservation: per currency, debits equal credits, posted and pending separately.
    const totals = new Map<string, { dP: bigint; cP: bigint; dPe: bigint; cPe: bigint }>();
    for (const a of accounts) {
      const t = totals.get(a.currency) ?? { dP: 0n, cP: 0n, dPe: 0n, cPe: 0n };
      t.dP += a.debitsPosted;
      t.cP += a.creditsPosted;
      t.dPe += a.debitsPending;
      t.cPe += a.creditsPending;
      totals.set(a.currency, t);
    }
    for (const [currency, t] of totals) {
      expect(t.dP, `${label}: posted ${currency} balances`).toBe(t.cP);
      expect(t.dPe, `${label}: pending ${currency} balances`).toBe(t.cPe);
    }

    // No constrained account is past its limit.
    for (const a of accounts) {
      if (a.flags.debitsMustNotExceedCredits) expect(a.debitsPosted + a.debitsPending <= a.creditsPosted, `${label}: ${a.id} overdrawn`).toBe(true);
      if (a.flags.creditsMustNotExceedDebits) expect(a.creditsPosted + a.creditsPending <= a.debitsPosted, `${label}: ${a.id} over limit`).toBe(true);
    }

    // Pending balances are exactly what the open holds reserve.
    const reserved = new Map<string, { d: bigint; c: bigint }>();
    for (const hold of this.model.openHolds()) {
      expect(this.ledger.writer.pendingHold(hold.id)?.id, `${label}: hold ${hold.id} open`).toBe(hold.id);
      for (const p of hold.postings) {
        const r = reserved.get(p.account) ?? { d: 0n, c: 0n };
        if (p.side === 'debit') r.d += p.amount;
        else r.c += p.amount;
        reserved.set(p.account, r);
      }
    }
    for (const a of accounts) {
      const r = reserved.get(a.id) ?? { d: 0n, c: 0n };
      expect([a.debitsPending, a.creditsPending], `${label}: ${a.id} pending`).toEqual([r.d, r.c]);
    }
    for (const t of this.model.transfers.values()) {
      if (t.kind === 'hold' && t.state !== 'pending') expect(this.ledger.writer.pendingHold(t.id), `${label}: hold ${t.id} resolved`).toBeUndefined();
    }

    // Replaying the log gives the writer's state.
    const replayed = await replayLedger(this.source);
    expect(replayed.version, `${label}: replay version`).toBe(this.ledger.version);
    expect(accountsOf(replayed).map(fullView).sort(byId), `${label}: replay`).toEqual(accounts.map(fullView).sort(byId));
    // And counts it as taking as many bytes (what ledger_full is decided on).
    expect(replayed.stateBytes, `${label}: replay's stateBytes`).toBe(this.ledger.writer.stateBytes);
  }
}

function mutate(cmd: Cmd, mutation: Mutation, now: number): Cmd {
  if (mutation === 'none') return cmd;
  switch (cmd.kind) {
    case 'open':
      return mutation === 'metadata' ? { ...cmd, metadata: { owner: 'someone-else' } } : { ...cmd, type: cmd.type === 'asset' ? 'liability' : 'asset' };
    case 'freeze':
    case 'unfreeze':
    case 'close':
    case 'expire':
      return cmd;
    case 'linked': {
      const [first, ...rest] = cmd.members;
      return first === undefined ? cmd : { kind: 'linked', members: [mutate(first, mutation, now) as MemberCmd, ...rest] };
    }
    case 'transfer':
      switch (mutation) {
        case 'amount':
          return { ...cmd, postings: cmd.postings.map((p) => ({ ...p, amount: p.amount + 1n })) };
        case 'kind':
          return { ...cmd, hold: !cmd.hold, timeoutMs: cmd.hold ? undefined : cmd.timeoutMs };
        case 'timeout':
          return { ...cmd, timeoutMs: cmd.timeoutMs === undefined ? 5_000 : cmd.timeoutMs + 1 };
        case 'reference':
          return { ...cmd, reference: cmd.reference === undefined ? 'other-ref' : undefined };
        case 'effective':
          return { ...cmd, effectiveAtMs: now - 1 };
        default:
          return { ...cmd, metadata: { note: 'changed' } };
      }
    case 'post':
      switch (mutation) {
        case 'amount':
          return { ...cmd, amount: 1n };
        case 'currency':
          // A partial post in another currency than it was made in (a full post names none).
          return { ...cmd, amount: cmd.amount ?? 1n, currency: cmd.currency === 'JPY' ? 'EUR' : 'JPY' };
        case 'kind':
          return { kind: 'void', id: cmd.id, pendingId: cmd.pendingId, effectiveAtMs: cmd.effectiveAtMs, metadata: cmd.metadata };
        case 'effective':
          return { ...cmd, effectiveAtMs: now - 2 };
        default:
          return { ...cmd, metadata: { note: 'changed' } };
      }
    case 'void':
      switch (mutation) {
        case 'kind':
          return { kind: 'post', id: cmd.id, pendingId: cmd.pendingId, amount: undefined, currency: 'EUR', effectiveAtMs: cmd.effectiveAtMs, metadata: cmd.metadata };
        case 'effective':
          return { ...cmd, effectiveAtMs: now - 3 };
        default:
          return { ...cmd, metadata: { note: 'changed' } };
      }
    case 'reverse':
      switch (mutation) {
        case 'reference':
          return { ...cmd, reference: cmd.reference === undefined ? 'other-ref' : undefined };
        case 'kind':
          return { ...cmd, reversalOf: GHOST_TRANSFER };
        case 'effective':
          return { ...cmd, effectiveAtMs: now - 4 };
        default:
          return { ...cmd, metadata: { note: 'changed' } };
      }
  }
}

function checkOutcome(actual: CommandResult, expected: Outcome, label: string): void {
  if (actual.ok !== expected.ok || (!actual.ok && !expected.ok && actual.code !== expected.code)) {
    throw new Error(`${label}: expected ${show(expected)}, got ${show(actual)}`);
  }
  if (actual.ok && expected.ok) {
    expect(actual.duplicate, `${label}: duplicate`).toBe(expected.duplicate);
    expect(actual.ledgerVersion, `${label}: ledgerVersion`).toBe(expected.version);
    expect(actual.recordedAt, `${label}: recordedAt`).toBe(iso(expected.recordedAtMs));
  }
  if (expected.members !== undefined) {
    expect(actual.members?.length, `${label}: members`).toBe(expected.members.length);
    expected.members.forEach((member, i) => checkOutcome(actual.members?.[i] as CommandResult, member, `${label} member ${i}`));
  }
}

function show(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}

const byId = (a: { id: string }, b: { id: string }): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function view(a: AccountState): Record<string, unknown> & { id: string } {
  return {
    id: a.id,
    currency: a.currency,
    type: a.type,
    status: a.status,
    noOverdraft: a.flags.debitsMustNotExceedCredits,
    noOvercredit: a.flags.creditsMustNotExceedDebits,
    balances: [a.debitsPosted, a.creditsPosted, a.debitsPending, a.creditsPending],
    opened: [a.openedAtVersion, a.openedAtMs],
    metadata: a.metadata,
  };
}

function modelView(a: MAccount): Record<string, unknown> & { id: string } {
  return {
    id: a.id,
    currency: a.currency,
    type: a.type,
    status: a.status,
    noOverdraft: a.noOverdraft,
    noOvercredit: a.noOvercredit,
    balances: [a.dPosted, a.cPosted, a.dPending, a.cPending],
    opened: [a.openedAtVersion, a.openedAtMs],
    metadata: a.metadata,
  };
}

function fullView(a: AccountState): AccountState {
  return { ...a, flags: { ...a.flags }, metadata: { ...a.metadata } };
}

function accountsOf(state: ReplayedState): AccountState[] {
  return [...state.accounts.values()];
}

async function storedEvents(store: EventStore): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  for await (const event of readLedger({ store, tenantId: TENANT, ledgerId: LEDGER })) events.push(event);
  return events;
}

// ---- properties ---------------------------------------------------------------------------------

describe('ledger against a reference model', () => {
  const tunings: [string, WriterTuning][] = [
    ['with every transfer cached', {}],
    ['with 2 transfers cached and a snapshot every 3 events', { transfersCachedMax: 2, snapshotEveryEvents: 3 }],
  ];
  it.each(tunings)(
    '%s: every command, good or bad, alone or batched, across restarts, gets the result the model predicts; balances conserve per currency, limits hold, pending equals open holds, replay equals the writer after every step, retries answer with the original version, and the chain verifies',
    async (_, tuning) => {
      await fc.assert(
        fc.asyncProperty(fc.array(stepArb, { minLength: 5, maxLength: 60, size: 'medium' }), async (steps) => {
          const runner = new Runner(tuning);
          await runner.open();
          try {
            for (const [i, cmd] of setupCommands().entries()) await runner.command(cmd, `setup ${i}`);
            await runner.checkInvariants('setup');
            for (const [i, step] of steps.entries()) {
              await runner.run(step, i);
              await runner.checkInvariants(`step ${i} ${step.t}`);
            }
            const verified = await runner.ledger.verifyChain();
            expect(verified).toMatchObject({ ok: true, eventCount: runner.model.version, lastVersion: runner.model.version });

            // Deterministic replay: two replays of the same log are identical, as of now and as of any version.
            const [first, second] = await Promise.all([replayLedger(runner.source), replayLedger(runner.source)]);
            expect(accountsOf(second).map(fullView)).toEqual(accountsOf(first).map(fullView));
            const midway = Math.floor(runner.model.version / 2);
            const [a, b] = await Promise.all([replayLedger(runner.source, { ledgerVersion: midway }), replayLedger(runner.source, { ledgerVersion: midway })]);
            expect(a.version).toBe(midway);
            expect(accountsOf(b).map(fullView)).toEqual(accountsOf(a).map(fullView));
          } finally {
            await runner.ledger.close();
          }
        }),
        // Shrinking a long async run can take minutes; report the best counterexample found by then.
        { numRuns: 30, interruptAfterTimeLimit: 25_000, markInterruptAsFailure: true },
      );
    },
  );

  it('a retried command answers with the original ledgerVersion and recordedAt and duplicate: true, even after the clock moved on', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(transferStepArb, { minLength: 3, maxLength: 12 }), fc.integer({ min: 1, max: 100_000 }), async (steps, laterMs) => {
        const runner = new Runner();
        await runner.open();
        try {
          for (const cmd of setupCommands()) await runner.command(cmd, 'setup');
          // Fund everyone so that most transfers are accepted.
          for (const { code } of CURRENCIES) {
            await runner.command({ kind: 'transfer', id: `fund-${code}-a`, simple: true, hold: false, timeoutMs: undefined, postings: [{ account: `${code}-bank`, side: 'debit', amount: 1_000_000n, currency: code }, { account: `${code}-alice`, side: 'credit', amount: 1_000_000n, currency: code }], effectiveAtMs: undefined, reference: undefined, metadata: {} }, 'fund');
          }
          const accepted: { cmd: Cmd; result: CommandResult }[] = [];
          for (const step of steps) {
            const cmd = runner.resolve(step);
            runner.model.exec(cmd, runner.model.nowFor(runner.clockMs));
            const result = await submit(runner.ledger, cmd);
            if (result.ok) accepted.push({ cmd, result });
            runner.clockMs += 7;
          }
          runner.clockMs += laterMs;
          const versionBefore = runner.ledger.version;
          for (const { cmd, result } of accepted) {
            const retried = await submit(runner.ledger, cmd);
            expect(retried).toMatchObject({ ok: true, duplicate: true, ledgerVersion: (result as { ledgerVersion: number }).ledgerVersion, recordedAt: (result as { recordedAt: string }).recordedAt });
          }
          expect(runner.ledger.version).toBe(versionBefore);
        } finally {
          await runner.ledger.close();
        }
      }),
      { numRuns: 25 },
    );
  });
});

describe('tamper evidence', () => {
  let events: StoredEvent[] = [];

  beforeAll(async () => {
    // A log with every event type, built through the ledger.
    const runner = new Runner();
    await runner.open();
    const script: Cmd[] = [
      ...setupCommands(),
      { kind: 'transfer', id: 'fund', simple: true, hold: false, timeoutMs: undefined, postings: [{ account: 'EUR-bank', side: 'debit', amount: 10_000n, currency: 'EUR' }, { account: 'EUR-alice', side: 'credit', amount: 10_000n, currency: 'EUR' }], effectiveAtMs: undefined, reference: 'r', metadata: { k: 'v' } },
      { kind: 'transfer', id: 'multi', simple: false, hold: false, timeoutMs: undefined, postings: [{ account: 'JPY-line', side: 'debit', amount: 900n, currency: 'JPY' }, { account: 'JPY-alice', side: 'credit', amount: 400n, currency: 'JPY' }, { account: 'JPY-bob', side: 'credit', amount: 500n, currency: 'JPY' }], effectiveAtMs: START_MS + 10_000, reference: undefined, metadata: {} },
      { kind: 'transfer', id: 'h1', simple: true, hold: true, timeoutMs: 1_000, postings: [{ account: 'EUR-alice', side: 'debit', amount: 300n, currency: 'EUR' }, { account: 'EUR-bob', side: 'credit', amount: 300n, currency: 'EUR' }], effectiveAtMs: undefined, reference: undefined, metadata: {} },
      { kind: 'transfer', id: 'h2', simple: true, hold: true, timeoutMs: undefined, postings: [{ account: 'EUR-alice', side: 'debit', amount: 200n, currency: 'EUR' }, { account: 'EUR-bob', side: 'credit', amount: 200n, currency: 'EUR' }], effectiveAtMs: undefined, reference: undefined, metadata: {} },
      { kind: 'transfer', id: 'h3', simple: true, hold: true, timeoutMs: undefined, postings: [{ account: 'EUR-alice', side: 'debit', amount: 100n, currency: 'EUR' }, { account: 'EUR-bob', side: 'credit', amount: 100n, currency: 'EUR' }], effectiveAtMs: undefined, reference: undefined, metadata: {} },
      { kind: 'post', id: 'p2', pendingId: 'h2', amount: 150n, currency: 'EUR', effectiveAtMs: undefined, metadata: {} },
      { kind: 'void', id: 'v3', pendingId: 'h3', effectiveAtMs: undefined, metadata: { why: 'cancel' } },
      { kind: 'reverse', id: 'r1', reversalOf: 'fund', effectiveAtMs: undefined, reference: 'oops', metadata: {} },
      { kind: 'open', id: 'spare', currency: 'KWD', type: 'equity', noOverdraft: false, noOvercredit: false, metadata: { purpose: 'closing' } },
      { kind: 'freeze', id: 'spare' },
      { kind: 'unfreeze', id: 'spare' },
      { kind: 'close', id: 'spare' },
    ];
    for (const cmd of script) {
      runner.clockMs += 500;
      expect(await runner.command(cmd, 'script'), show(cmd)).toMatchObject({ ok: true, duplicate: false });
    }
    runner.clockMs += 5_000;
    expect(await runner.command({ kind: 'expire', pendingId: 'h1' }, 'script')).toMatchObject({ ok: true });
    await runner.ledger.close();
    events = await storedEvents(runner.store);
    expect(new Set(events.map((e) => e.type)).size).toBe(9);
    expect(await verifyChain(events)).toMatchObject({ ok: true, eventCount: events.length });
  });

  it('changing any one character of any stored event is detected by verifyChain at exactly that event, and replay refuses the log', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.nat(), fc.integer({ min: 32, max: 126 }), async (eventPick, charPick, code) => {
        const index = eventPick % events.length;
        const original = events[index] as StoredEvent;
        const json = JSON.stringify(original);
        const at = charPick % json.length;
        const replacement = String.fromCharCode(code);
        fc.pre(json[at] !== replacement);
        const tamperedJson = json.slice(0, at) + replacement + json.slice(at + 1);
        let tampered: StoredEvent;
        try {
          tampered = JSON.parse(tamperedJson) as StoredEvent;
        } catch {
          fc.pre(false);
          return;
        }
        fc.pre(JSON.stringify(tampered) !== json);
        const log = events.map((event, i) => (i === index ? tampered : event));

        const direct = await verifyChain(log);
        expect(direct.ok).toBe(false);
        expect(direct.eventCount).toBe(index);
        if (!direct.ok && tampered.ledgerVersion === original.ledgerVersion) expect(direct.brokenAt.ledgerVersion).toBeLessThanOrEqual(original.ledgerVersion);

        // The same through a store, as Ledger.verifyChain reads it.
        const store = tamperedStore(log);
        const viaStore = await verifyChain(readLedger({ store, tenantId: TENANT, ledgerId: LEDGER }, { verify: false, pageSize: 4 }));
        expect(viaStore).toEqual(direct);
        const codec = new EventCodec({ currencies: new CurrencyRegistry() });
        await expect(replayLedger({ store, codec, tenantId: TENANT, ledgerId: LEDGER })).rejects.toMatchObject({
          name: ChainBrokenError.name,
          ledgerVersion: index + 1,
        });
      }),
      { numRuns: 300 },
    );
  });
});

describe('tamper evidence through a store', () => {
  it('a changed ledgerVersion or a removed event is reported by verifyChain as a version_gap at that event, not thrown', async () => {
    const runner = new Runner();
    await runner.open();
    for (const cmd of setupCommands().slice(0, 7)) await runner.command(cmd, 'setup');
    await runner.ledger.close();
    const events = await storedEvents(runner.store);
    const check = (log: StoredEvent[]) => verifyChain(readLedger({ store: tamperedStore(log), tenantId: TENANT, ledgerId: LEDGER }, { verify: false }));

    const renumbered = events.map((event, i) => (i === 3 ? { ...event, ledgerVersion: 40 } : event));
    expect(await check(renumbered)).toMatchObject({ ok: false, eventCount: 3, brokenAt: { ledgerVersion: 40, reason: 'version_gap', expected: '4' } });

    const removed = events.filter((_, i) => i !== 3);
    expect(await check(removed)).toMatchObject({ ok: false, eventCount: 3, brokenAt: { ledgerVersion: 5, reason: 'version_gap', expected: '4' } });

    expect(await check(events)).toMatchObject({ ok: true, eventCount: events.length });
  });
});

/** A read-only store over a given list of events (the in-memory store freezes what it holds). */
function tamperedStore(log: readonly StoredEvent[]): EventStore {
  const unsupported = (): never => {
    throw new Error('read-only store');
  };
  return {
    append: unsupported,
    readAll: unsupported,
    saveSnapshot: unsupported,
    async findByIndexKeys() {
      return new Map();
    },
    async loadSnapshot() {
      return null;
    },
    async readStream(request) {
      const from = Math.max(request.fromVersion ?? 1, 1);
      return log.slice(from - 1, from - 1 + request.limit);
    },
  };
}
