/**
 * Random sequences of holds, full and partial posts, voids, expiries, reversals, linked groups,
 * freezes and closes, clock ticks, retries and changed retries through the pure decide/evolve
 * (see support/domain-fuzz.ts). After every step debits equal credits per currency (posted and
 * pending), balances stay in range, limits hold, closed accounts are empty and pending equals the
 * open holds; each command answers as the docs rule where the rule is simple to tell, with a
 * documented code, without `decide` changing the state; money moves only on open accounts; a
 * retry answers with its original outcome and a changed retry exists_with_different_*; the
 * events replay to the same state. The runs' outcomes are counted, and the rare ones the
 * properties are about must each have been reached: otherwise the property could not fail on them.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MUTATION_NAMES, outcomeKey, runSteps, stepsArb } from './support/domain-fuzz.js';

// A property that runs out of time fails rather than passing on the runs it managed (300 runs
// take about 2 s on an idle 2-core machine); the test's timeout is above the limit, so that the
// property's own report (its counterexample and seed) is what fails.
const PROPERTY_TIME_LIMIT_MS = 30_000;
const PROPERTY_TEST_TIMEOUT_MS = PROPERTY_TIME_LIMIT_MS + 30_000;

/** Outcomes of fresh commands that the property's runs must reach, between them, at least once. */
const MUST_REACH = [
  'postPending: ok',
  'postPending (partial): ok',
  'postPending: pending_expired',
  'voidPending: pending_expired',
  'expirePending: ok',
  'reverseTransfer: ok',
  'reverseTransfer: transfer_already_reversed',
  'linked: ok',
  'closeAccount: ok',
  'transfer: account_frozen',
  'transfer: insufficient_funds',
];

describe('decide and evolve under random command sequences', () => {
  it(
    'keep every invariant after every step, answer fresh commands as the docs rule, retries with the original outcome, changed retries exists_with_different_*, and replay to the same state',
    () => {
      const reached = new Map<string, number>();
      fc.assert(
        fc.property(stepsArb(60), (steps) => {
          const run = runSteps(steps);
          for (const outcome of run.outcomes) {
            if (outcome.source === 'setup') continue;
            const key = outcomeKey(outcome);
            reached.set(key, (reached.get(key) ?? 0) + 1);
          }
          expect(run.problems).toEqual([]);
        }),
        { numRuns: 300, interruptAfterTimeLimit: PROPERTY_TIME_LIMIT_MS, markInterruptAsFailure: true },
      );
      const keys = [...reached.keys()];
      expect(MUST_REACH.filter((key) => !reached.has(key)), 'outcomes never reached').toEqual([]);
      // Every kind of changed retry was tried (each answered exists_with_different_*, or the property failed).
      expect(MUTATION_NAMES.filter((name) => !keys.some((key) => key.startsWith(`${name}: `))), 'changed retries never tried').toEqual([]);
    },
    PROPERTY_TEST_TIMEOUT_MS,
  );
});
