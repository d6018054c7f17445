import { defineConfig } from 'tsup';

export default defineConfig({
  // The library, and the `ledgerkit-audit` command (package.json `bin`).
  entry: { index: 'src/index.ts', 'ledgerkit-audit': 'src/bin/ledgerkit-audit.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
