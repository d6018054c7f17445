/**
 * The in-memory decider loop, with no store, writer or I/O: how many simple transfers one
 * JavaScript thread can decide and evolve per second, from pre-validated commands and from
 * untrusted input, next to a raw ceiling that does only the balance arithmetic.
 */
import { CurrencyRegistry, decide, evolve, parseCommand, type Decision, type LedgerState, type Posting, type TransferCommand } from '@ledgerkit/ledger-core';
import type { PreparedRound, Scenario } from './harness.js';
import {
  buildFixtureLedger,
  FIXTURE_CONTEXT,
  FIXTURE_NOW_MS,
  fixtureAccountIds,
  FUNDING_MINOR,
  isDepositAccount,
  planTransfers,
  transferCommandOf,
  transferInputOf,
} from './ledger-fixture.js';

/** Name of the raw ceiling every result is compared to. */
export const RAW_CEILING = 'raw-ceiling-bigint-map';

/** The fixture the scenarios share. */
export interface CoreDecideEvolveOptions {
  /** Accounts in the ledger; half of them funded deposit accounts. Even. */
  readonly accounts: number;
  /** Seed of the transfer stream; round `r` uses `seed + r`. */
  readonly seed: number;
}

/** The raw ceiling, then the decider with pre-validated commands, then the decider behind input validation. */
export function coreDecideEvolveScenarios(options: CoreDecideEvolveOptions): Scenario[] {
  return [rawCeiling(options), decideEvolvePrevalidated(options), validateDecideEvolve(options)];
}

/**
 * The same balance arithmetic as a posted simple transfer, on two plain `Map`s of bigints, with
 * no rule, no event and no record: what the hardware and V8 allow before the ledger does anything.
 */
function rawCeiling(options: CoreDecideEvolveOptions): Scenario {
  return {
    name: RAW_CEILING,
    description: 'debits[debit] += amount; credits[credit] += amount on Map<string, bigint>, same commands, no checks or events',
    target: undefined,
    prepare(opsCount, round): PreparedRound {
      const accountIds = fixtureAccountIds(options.accounts);
      const debits = new Map<string, bigint>();
      const credits = new Map<string, bigint>();
      accountIds.forEach((accountId, index) => {
        debits.set(accountId, isDepositAccount(index) ? 0n : FUNDING_MINOR);
        credits.set(accountId, isDepositAccount(index) ? FUNDING_MINOR : 0n);
      });
      const commands = planTransfers(opsCount, accountIds, options.seed + round).map(transferCommandOf);
      return {
        run(from, to) {
          for (let i = from; i < to; i += 1) {
            const { postings } = commands[i] as TransferCommand;
            const debit = postings[0] as Posting;
            const credit = postings[1] as Posting;
            debits.set(debit.accountId, (debits.get(debit.accountId) as bigint) + debit.amount);
            credits.set(credit.accountId, (credits.get(credit.accountId) as bigint) + credit.amount);
          }
          return 0;
        },
      };
    },
  };
}

/** Scenario A: `decide` + `evolve` per transfer, from commands already in their internal form. */
function decideEvolvePrevalidated(options: CoreDecideEvolveOptions): Scenario {
  return {
    name: 'decide-evolve-prevalidated',
    description: 'decide(TransferCommand) + evolve(TransferPosted) on a ledger of funded accounts; commands pre-built with bigint amounts',
    target: {
      opsPerSec: 1_000_000,
      statement: 'at least 1,000,000 simple transfers per second on one core with pre-validated commands',
    },
    prepare(opsCount, round): PreparedRound {
      const { state, accountIds } = buildFixtureLedger(options.accounts);
      const commands = planTransfers(opsCount, accountIds, options.seed + round).map(transferCommandOf);
      return {
        run(from, to) {
          let errors = 0;
          for (let i = from; i < to; i += 1) errors += applyDecision(state, decide(commands[i] as TransferCommand, state, FIXTURE_CONTEXT));
          return errors;
        },
      };
    },
  };
}

/** Scenario B: `parseCommand.transfer` on untrusted input, then `decide` + `evolve`. */
function validateDecideEvolve(options: CoreDecideEvolveOptions): Scenario {
  const currencies = new CurrencyRegistry();
  return {
    name: 'validate-decide-evolve',
    description: "parseCommand.transfer({ transferId, debitAccountId, creditAccountId, amount: '12.34', currency }) + decide + evolve",
    target: {
      opsPerSec: 300_000,
      statement: 'at least 300,000 simple transfers per second on one core including validation of untrusted input',
    },
    prepare(opsCount, round): PreparedRound {
      const { state, accountIds } = buildFixtureLedger(options.accounts);
      // Plain objects with string amounts, as JSON.parse of a request body would give.
      const inputs: unknown[] = planTransfers(opsCount, accountIds, options.seed + round).map(transferInputOf);
      return {
        run(from, to) {
          let errors = 0;
          for (let i = from; i < to; i += 1) {
            let command: TransferCommand;
            try {
              command = parseCommand.transfer(inputs[i], currencies);
            } catch {
              errors += 1;
              continue;
            }
            errors += applyDecision(state, decide(command, state, FIXTURE_CONTEXT));
          }
          return errors;
        },
      };
    },
  };
}

/** Evolves the state with an accepted decision's events as the writer would; 1 if nothing was appended. */
function applyDecision(state: LedgerState, decision: Decision): number {
  // A rejection, or a duplicate (no events), means the fixture is wrong: count it, never hide it.
  if (!decision.ok || decision.events.length === 0) return 1;
  for (const draft of decision.events) {
    evolve(state, draft.event, { ledgerVersion: state.version + 1, recordedAtMs: FIXTURE_NOW_MS, effectiveAtMs: draft.effectiveAtMs });
  }
  return 0;
}
