#!/usr/bin/env node
// The `ledgerkit-audit` command: see audit-cli.ts.
import { runAudit } from '../audit-cli.js';

void runAudit(process.argv.slice(2), process.env, {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
}).then((code) => {
  process.exitCode = code;
});
