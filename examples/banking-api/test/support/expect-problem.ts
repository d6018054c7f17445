import { expect } from 'vitest';
import { problemSchema } from '../../src/schemas.js';
import type { Reply } from './harness.js';

/** Asserts an RFC 9457 problem answer: status, content type, stable `type` and `code`, schema. */
export function expectProblem(reply: Reply, status: number, code: string): void {
  expect({ status: reply.status, code: reply.body?.code, detail: reply.body?.detail }).toMatchObject({ status, code });
  expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(reply.body).toMatchObject({ type: `/problems/${code}`, status, code });
  expect(problemSchema.safeParse(reply.body).success).toBe(true);
  expect(reply.headers.get('cache-control')).toBe('no-store');
}
