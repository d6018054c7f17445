import { describe, expect, it } from 'vitest';
import { CAUSE_DEPTH_MAX, safeErrorFields } from '../src/logger.js';

/** A PostgreSQL error as `pg` makes it: its words name the row. */
function databaseError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code, severity: 'ERROR', detail: `Failing row contains (${message})`, schema: 'banking_api' });
}

describe('safeErrorFields', () => {
  it('keeps the class, a token code, the first SQLSTATE of the cause chain and the causes\' classes; never words', () => {
    class WrapperError extends Error {
      readonly code = 'writer_failed';
    }
    const marker = 'jane-doe-4711';
    const cause = databaseError(`Key (tenant_id, account_id)=(t, ${marker}) already exists`, '23505');
    const fields = safeErrorFields(new WrapperError(`could not append: ${marker}`, { cause }));
    expect(fields).toEqual({ type: 'WrapperError', code: 'writer_failed', sqlState: '23505', causes: ['Error'] });
    expect(JSON.stringify(fields)).not.toContain(marker);
  });

  it('a database error itself: its SQLSTATE is its code', () => {
    expect(safeErrorFields(databaseError('value "x" too long', '22001'))).toEqual({ type: 'Error', code: '22001', sqlState: '22001' });
  });

  it('a code that is not a plain token is left out; a thrown non-error is `unknown`', () => {
    expect(safeErrorFields(Object.assign(new TypeError('x'), { code: 'has space (alice)' }))).toEqual({ type: 'TypeError' });
    expect(safeErrorFields('alice')).toEqual({ type: 'unknown' });
    expect(safeErrorFields(null)).toEqual({ type: 'unknown' });
  });

  it('follows at most CAUSE_DEPTH_MAX causes, so a cycle ends', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect(safeErrorFields(a).causes).toHaveLength(CAUSE_DEPTH_MAX);
  });
});
