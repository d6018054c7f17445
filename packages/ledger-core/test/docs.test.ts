import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REJECTION_CODES } from '@ledgerkit/ledger-core';

const page = readFileSync(new URL('../../../docs/rejection-codes.md', import.meta.url), 'utf8');
const documented = [...page.matchAll(/^\| `([a-z_]+)` \| (.+) \|$/gm)].map((match) => [match[1], match[2]]);

describe('rejection code catalogue', () => {
  it('the docs page lists exactly the codes of REJECTION_CODES, each with its meaning', () => {
    expect(documented).toEqual(Object.entries(REJECTION_CODES));
  });
});
