import { expect } from 'vitest';
import { InvalidInputError } from '@ledgerkit/ledger-core';

/** The paths of the issues of the InvalidInputError `run` throws; fails the test for anything else. */
export function issuePathsOf(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return (error as InvalidInputError).issues.map((issue) => issue.path);
  }
  throw new Error('expected an InvalidInputError, but nothing was thrown');
}
