#!/usr/bin/env node
// The `ledgerkit-audit` command: see audit-cli.ts.
import { runAudit } from '../audit-cli.js';

/** How long, in milliseconds, the process may stay up after the audit has ended before it exits anyway. */
const EXIT_AFTER_MS = 1_000;

// A reader that stops early (`| head`) closes the pipe: what is left of the report goes nowhere,
// and the exit code still says the verdict, instead of an unhandled EPIPE and its stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
});

void runAudit(process.argv.slice(2), process.env, {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
}).then((code) => {
  process.exitCode = code;
  // The audit is over. An --upcasters module may still hold the process open (a timer or a
  // socket of its own, or its loading, given up on at --upcasters-timeout-ms): exit anyway once
  // the output has had time to drain. Unreferenced, so a process with nothing left ends at once.
  setTimeout(() => process.exit(code), EXIT_AFTER_MS).unref();
});
