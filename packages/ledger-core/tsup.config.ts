import { defineConfig } from 'tsup';

const common = { dts: true, sourcemap: true, target: 'node20', external: ['vitest'] } as const;

export default defineConfig([
  { ...common, entry: { index: 'src/index.ts' }, format: ['esm', 'cjs'] },
  // The testing entry registers vitest suites, and vitest is ESM-only: no CommonJS build.
  { ...common, entry: { 'testing/index': 'src/testing/index.ts' }, format: ['esm'] },
]);
