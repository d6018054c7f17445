/**
 * The commands of random sequences (support/domain-fuzz.ts), submitted in order to a LedgerWriter
 * over an InMemoryEventStore at the clock times the pure decider saw them, are answered exactly
 * as the decider answered them (the same code, the same version, a duplicate of the same one),
 * with the writer reopened from its store now and then, and with a default transfer cache or none
 * and frequent snapshots. The exception is a command the writer's admission refuses before
 * deciding: a partial post without its currency throws InvalidInputError at `currency` (the
 * decider, handed it as a retry, answered exists_with_different_currency). At the end the
 * writer's accounts equal the decider's and those replayLedger rebuilds from the store.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  CurrencyRegistry,
  InMemoryEventStore,
  InvalidInputError,
  LedgerWriter,
  replayLedger,
  type CommandResult,
  type LedgerCommand,
  type LedgerWriterOptions,
} from '@ledgerkit/ledger-core';
import { BACKDATE_WINDOW_MS, accountsOf, runSteps, ser, stepsArb } from './support/domain-fuzz.js';

// As in domain-fuzz.test.ts: running out of time fails the property (40 runs take about 1.5 s on an idle 2-core machine).
const PROPERTY_TIME_LIMIT_MS = 30_000;
const PROPERTY_TEST_TIMEOUT_MS = PROPERTY_TIME_LIMIT_MS + 30_000;

const currencies = new CurrencyRegistry([{ code: 'TOKEN', scale: 18 }]);

const TUNINGS: [string, Partial<LedgerWriterOptions>][] = [
  ['default transfer cache', {}],
  ['no transfer cached, a snapshot every 3 events', { transfersCachedMax: 0, snapshotEveryEvents: 3 }],
];

/** A post that names an amount without its currency, or a currency without an amount: refused at admission. */
const refusedAtAdmission = (command: LedgerCommand): boolean => command.kind === 'postPending' && (command.amount === undefined) !== (command.currency === undefined);

describe('LedgerWriter answers as the pure decider', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it.each(TUNINGS)(
    '%s: the same answer to every command, and the same accounts as the decider and as a replay',
    async (_, tuning) => {
      // The writer's expiry timer never fires: expiries come only as the sequence's own commands.
      vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
      await fc.assert(
        fc.asyncProperty(stepsArb(40), fc.nat(5), async (steps, reopenEvery) => {
          const run = runSteps(steps);
          const store = new InMemoryEventStore();
          let now = 0;
          const open = (): Promise<LedgerWriter> =>
            LedgerWriter.open({ store, tenantId: 't', ledgerId: 'l', currencies, clock: () => now, backdateWindowMs: BACKDATE_WINDOW_MS, expiryCheckIntervalMs: 60_000, ...tuning });
          let writer = await open();
          const problems: string[] = [...run.problems];
          try {
            for (const [i, { command, decision, nowMs, lastVersion }] of run.outcomes.entries()) {
              now = nowMs;
              const want = decision.ok ? (decision.duplicateOf !== undefined ? `duplicate@${decision.duplicateOf.ledgerVersion}` : `ok@${lastVersion}`) : decision.code;
              let result: CommandResult;
              try {
                result = await writer.submit(command);
              } catch (error) {
                const atCurrency = error instanceof InvalidInputError && ser(error.issues.map((issue) => issue.path)) === ser([['currency']]);
                if (!(refusedAtAdmission(command) && atCurrency && !decision.ok)) {
                  problems.push(`#${i} ${ser(command)}: decider ${want}, writer threw ${String(error)}`);
                  break;
                }
                continue;
              }
              const got = result.ok ? `${result.duplicate ? 'duplicate' : 'ok'}@${result.ledgerVersion}` : result.code;
              if (refusedAtAdmission(command)) problems.push(`#${i} ${ser(command)}: admitted, answered ${got}`);
              else if (got !== want) problems.push(`#${i} ${ser(command)}: decider ${want}, writer ${got}`);
              if (reopenEvery > 0 && i % (reopenEvery + 7) === 0) {
                await writer.close();
                writer = await open();
              }
            }
            const written = ser(writer.accounts().sort((a, b) => (a.id < b.id ? -1 : 1)));
            const replayed = await replayLedger({ store, codec: writer.codec, tenantId: 't', ledgerId: 'l' });
            const rebuilt = ser([...replayed.accounts.values()].sort((a, b) => (a.id < b.id ? -1 : 1)));
            if (rebuilt !== written) problems.push(`replay differs from the writer: ${rebuilt} vs ${written}`);
            const decided = ser(accountsOf(run.state));
            if (problems.length === 0 && decided !== written) problems.push(`the writer's accounts differ from the decider's: ${written} vs ${decided}`);
          } finally {
            await writer.close();
          }
          expect(problems).toEqual([]);
        }),
        { numRuns: 40, interruptAfterTimeLimit: PROPERTY_TIME_LIMIT_MS, markInterruptAsFailure: true },
      );
    },
    PROPERTY_TEST_TIMEOUT_MS,
  );
});
