import { createHash } from 'node:crypto';
import { CurrencyRegistry, EventCodec, readLedger, type CommandResult, type EventStore, type Ledger } from '@ledgerkit/ledger-core';

/**
 * The fault tests' workload: accounts in two currencies of different scales, and transfers that
 * are a pure function of their id, so a process that retries an id (after a crash, or another
 * process's id) sends exactly the same content without being told it.
 */

/** Currencies of the workload, with their scales. */
export const CURRENCIES = [
  { code: 'EUR', scale: 2 },
  { code: 'JPY', scale: 0 },
] as const;
export type CurrencyCode = (typeof CURRENCIES)[number]['code'];

/** Customer accounts per currency: liabilities that may never be overdrawn, shared by every writer. */
export const CUSTOMERS_PER_CURRENCY = 6;
/** Each customer's opening balance, in minor units. */
export const OPENING_BALANCE_MINOR = 10_000n;

export const bankAccount = (currency: CurrencyCode): string => `bank-${currency}`;
export const shopAccount = (currency: CurrencyCode): string => `shop-${currency}`;
export const customerAccount = (currency: CurrencyCode, index: number): string => `cust-${currency}-${index}`;
export const isCustomer = (accountId: string): boolean => accountId.startsWith('cust-');

/** The input of one simple transfer, as `Ledger.transfer` takes it. */
export interface TransferInput {
  readonly transferId: string;
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly amount: string;
  readonly currency: CurrencyCode;
}

/** What one id stands for: a transfer, or a linked group whose members are `<id>.1`, `<id>.2`. */
export type TransferSpec =
  | { readonly kind: 'single'; readonly id: string; readonly input: TransferInput }
  | { readonly kind: 'linked'; readonly id: string; readonly members: readonly TransferInput[] };

/** A small deterministic generator seeded from a string. */
export function randomFrom(seed: string): () => number {
  const digest = createHash('sha256').update(seed).digest();
  let state = digest.readUInt32LE(0) || 1;
  return () => {
    // xorshift32: enough spread for picking accounts and amounts.
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
}

function formatMinor(minor: number, scale: number): string {
  if (scale === 0) return String(minor);
  const text = String(minor).padStart(scale + 1, '0');
  return `${text.slice(0, -scale)}.${text.slice(-scale)}`;
}

/**
 * The transfer an id stands for. Mix: a quarter are deposits from the bank to a customer, about
 * a third pay the shop from a customer (money leaves the customers for good), the rest move
 * money between customers; one in eight ids is a linked group of two members, the second
 * spending what the first brings in. Amounts are 1 to 25 major units, so customers run dry and
 * many spends are refused: the writers really compete for the same money.
 */
export function specFor(id: string): TransferSpec {
  const random = randomFrom(id);
  const pick = (count: number): number => Math.floor(random() * count);
  const currency = CURRENCIES[pick(CURRENCIES.length)] ?? CURRENCIES[0];
  const amount = (): string => formatMinor((1 + pick(25)) * 10 ** currency.scale + (currency.scale > 0 ? pick(100) : 0), currency.scale);
  const customer = (): string => customerAccount(currency.code, pick(CUSTOMERS_PER_CURRENCY));
  const otherCustomer = (than: string): string => {
    const index = Number(than.slice(than.lastIndexOf('-') + 1));
    return customerAccount(currency.code, (index + 1 + pick(CUSTOMERS_PER_CURRENCY - 1)) % CUSTOMERS_PER_CURRENCY);
  };
  const input = (transferId: string, debitAccountId: string, creditAccountId: string): TransferInput => ({
    transferId,
    debitAccountId,
    creditAccountId,
    amount: amount(),
    currency: currency.code,
  });
  if (pick(8) === 0) {
    const from = customer();
    const middle = otherCustomer(from);
    return { kind: 'linked', id, members: [input(`${id}.1`, from, middle), input(`${id}.2`, middle, shopAccount(currency.code))] };
  }
  const roll = random();
  if (roll < 0.25) return { kind: 'single', id, input: input(id, bankAccount(currency.code), customer()) };
  const from = customer();
  if (roll < 0.6) return { kind: 'single', id, input: input(id, from, shopAccount(currency.code)) };
  return { kind: 'single', id, input: input(id, from, otherCustomer(from)) };
}

/** The transfer ids an id's events carry: the id itself, or its linked members'. */
export function transferIdsOf(spec: TransferSpec): string[] {
  return spec.kind === 'single' ? [spec.id] : spec.members.map((member) => member.transferId);
}

/** Submits what an id stands for through the public facade. */
export function submitSpec(ledger: Ledger, spec: TransferSpec): Promise<CommandResult> {
  if (spec.kind === 'single') return ledger.transfer(spec.input);
  return ledger.linked(spec.members.map((input) => ({ kind: 'transfer' as const, input })));
}

/** Opens the bank, shop and customer accounts of every currency and gives each customer its opening balance. */
export async function setUpAccounts(ledger: Ledger): Promise<void> {
  const expectOk = (result: CommandResult, what: string): void => {
    if (!result.ok) throw new Error(`set-up: ${what} was rejected: ${result.code}`);
  };
  for (const { code, scale } of CURRENCIES) {
    expectOk(await ledger.openAccount({ accountId: bankAccount(code), currency: code, type: 'asset' }), bankAccount(code));
    expectOk(await ledger.openAccount({ accountId: shopAccount(code), currency: code, type: 'liability' }), shopAccount(code));
    for (let index = 0; index < CUSTOMERS_PER_CURRENCY; index += 1) {
      const accountId = customerAccount(code, index);
      expectOk(await ledger.openAccount({ accountId, currency: code, type: 'liability', flags: { debitsMustNotExceedCredits: true } }), accountId);
      const funding = { transferId: `open-${accountId}`, debitAccountId: bankAccount(code), creditAccountId: accountId, currency: code };
      expectOk(await ledger.transfer({ ...funding, amount: formatMinor(Number(OPENING_BALANCE_MINOR), scale) }), funding.transferId);
    }
  }
}

/** What the log holds, read back independently of any writer. */
export interface LogAudit {
  readonly eventCount: number;
  /** Version of each transfer id's event. */
  readonly versionOf: ReadonlyMap<string, number>;
  /** Transfer ids that occur in more than one event. */
  readonly repeatedIds: readonly string[];
  /** Every moment a no-overdraft account's debits passed its credits: a double spend. */
  readonly overdrafts: readonly string[];
  /** Currencies whose debits and credits over all accounts differ. */
  readonly unbalancedCurrencies: readonly string[];
  /** Posted balance (credits − debits) of each account, in minor units. */
  readonly balances: ReadonlyMap<string, bigint>;
}

/**
 * Reads a ledger's whole stream, checking versions and the hash chain on the way (a broken link
 * throws `ChainBrokenError`), and recomputes every balance from the postings.
 */
export async function auditLog(store: EventStore, tenantId: string, ledgerId: string): Promise<LogAudit> {
  const codec = new EventCodec({ currencies: new CurrencyRegistry() });
  const versionOf = new Map<string, number>();
  const repeatedIds: string[] = [];
  const overdrafts: string[] = [];
  const debits = new Map<string, bigint>();
  const credits = new Map<string, bigint>();
  const totals = new Map<string, { debits: bigint; credits: bigint }>();
  let eventCount = 0;
  for await (const stored of readLedger({ store, tenantId, ledgerId })) {
    eventCount += 1;
    const { event } = codec.decode(stored);
    if (event.type !== 'TransferPosted') continue;
    if (versionOf.has(event.transferId)) repeatedIds.push(event.transferId);
    versionOf.set(event.transferId, stored.ledgerVersion);
    for (const posting of event.postings) {
      const table = posting.side === 'debit' ? debits : credits;
      table.set(posting.accountId, (table.get(posting.accountId) ?? 0n) + posting.amount);
      const total = totals.get(posting.currency) ?? { debits: 0n, credits: 0n };
      if (posting.side === 'debit') total.debits += posting.amount;
      else total.credits += posting.amount;
      totals.set(posting.currency, total);
    }
    for (const posting of event.postings) {
      if (isCustomer(posting.accountId) && (debits.get(posting.accountId) ?? 0n) > (credits.get(posting.accountId) ?? 0n)) {
        overdrafts.push(`${posting.accountId} at version ${stored.ledgerVersion}`);
      }
    }
  }
  const balances = new Map<string, bigint>();
  for (const accountId of new Set([...debits.keys(), ...credits.keys()])) balances.set(accountId, (credits.get(accountId) ?? 0n) - (debits.get(accountId) ?? 0n));
  const unbalancedCurrencies = [...totals].filter(([, total]) => total.debits !== total.credits).map(([currency]) => currency);
  return { eventCount, versionOf, repeatedIds, overdrafts, unbalancedCurrencies, balances };
}
