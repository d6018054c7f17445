import { AppendRefusedError, StoreUnavailableError, WriterFailedError } from '@ledgerkit/ledger-core';
import { describe, expect, it } from 'vitest';
import { problemFromError } from '../src/error-mapping.js';

describe('problemFromError: a writer that could not append', () => {
  it('answers 503 with Retry-After when a retry may pass (a lost store, a failed batch of unknown outcome)', () => {
    for (const error of [new StoreUnavailableError('gone', new Error('ECONNRESET')), new WriterFailedError('may have been applied', new Error('lost reply'))]) {
      const problem = problemFromError(error);
      expect(problem).toMatchObject({ status: 503, retryAfterSeconds: 1 });
    }
  });

  it('answers 500 without Retry-After when the store refused the append for a reason a retry meets again', () => {
    const refusal = new AppendRefusedError('read models at another schema version', new Error('schema'), false);
    const problem = problemFromError(new WriterFailedError('were not applied', refusal, 'writer_failed', false));
    expect(problem).toMatchObject({ status: 500, retryAfterSeconds: undefined });
    // Its message (which names the server's configuration) is not sent to the client.
    expect(problem.message).not.toContain('schema');
  });
});

describe('problemFromError: a database error', () => {
  it('answers 503 with Retry-After for a statement the server cancelled (SQLSTATE 57014, its statement_timeout), and 500 for another', () => {
    const cancelled = Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014', severity: 'ERROR' });
    expect(problemFromError(cancelled)).toMatchObject({ status: 503, retryAfterSeconds: 1 });
    expect(problemFromError(cancelled).message).not.toContain('canceling statement');
    const other = Object.assign(new Error('division by zero'), { code: '22012', severity: 'ERROR' });
    expect(problemFromError(other)).toMatchObject({ status: 500 });
  });
});
