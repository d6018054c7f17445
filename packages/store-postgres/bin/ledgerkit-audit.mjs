#!/usr/bin/env node
// The `ledgerkit-audit` command (see src/audit-cli.ts). This file exists before the package is
// built, so that package managers can link the command at install time; in a checkout, run
// `pnpm build` before using it.
import '../dist/ledgerkit-audit.js';
