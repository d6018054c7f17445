import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { testWorkers } from './vitest.workers.js';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

// Tests run against the packages' TypeScript sources, so `pnpm test` needs no build step.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@ledgerkit\/ledger-core\/testing$/, replacement: here('./packages/ledger-core/src/testing/index.ts') },
      { find: /^@ledgerkit\/ledger-core$/, replacement: here('./packages/ledger-core/src/index.ts') },
      { find: /^@ledgerkit\/tenant-rls$/, replacement: here('./packages/tenant-rls/src/index.ts') },
      { find: /^@ledgerkit\/store-postgres$/, replacement: here('./packages/store-postgres/src/index.ts') },
      { find: /^@ledgerkit\/projections$/, replacement: here('./packages/projections/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts', 'benchmarks/test/**/*.test.ts'],
    globalSetup: ['./vitest.global-setup.ts'],
    setupFiles: ['./vitest.worker-setup.ts'],
    // One file at a time on a server given by DATABASE_URL, else one embedded server per worker:
    // see vitest.workers.ts.
    maxWorkers: testWorkers(),
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
