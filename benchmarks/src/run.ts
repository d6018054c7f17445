/**
 * Runs the benchmark suite, prints a table and writes results/<timestamp>.json, latest.json
 * and latest.md.
 *
 *   tsx --expose-gc --tsconfig tsconfig.json src/run.ts [--ci] [--rounds N] [--ops N] [--only NAME,…] [--out DIR] [--no-write]
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gcBetweenRounds } from './harness.js';
import { formatTable, writeReport } from './report.js';
import { CI_SETTINGS, FULL_SETTINGS, runSuite, type SuiteSettings } from './suite.js';

const { values } = parseArgs({
  // `pnpm bench -- --ci` forwards the `--` itself; it separates nothing here.
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    ci: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    ops: { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string', default: fileURLToPath(new URL('../results', import.meta.url)) },
    'no-write': { type: 'boolean', default: false },
  },
  strict: true,
});

const base = values.ci ? CI_SETTINGS : FULL_SETTINGS;
const customised = values.rounds !== undefined || values.ops !== undefined;
const settings: SuiteSettings = {
  ...base,
  mode: customised ? 'custom' : base.mode,
  rounds: values.rounds === undefined ? base.rounds : positiveInteger('--rounds', values.rounds),
  opsPerRound: values.ops === undefined ? base.opsPerRound : positiveInteger('--ops', values.ops),
  only: values.only === undefined ? undefined : values.only.split(',').map((name) => name.trim()),
};

if (!gcBetweenRounds) console.warn('note: run node with --expose-gc so every round starts from a collected heap');
console.log(`Ledgerkit benchmarks (${settings.mode}): ${settings.rounds} rounds × ${settings.opsPerRound.toLocaleString('en-US')} ops, single-threaded\n`);

const report = runSuite(settings, (name, round, opsPerSec) => {
  console.log(`  round ${String(round + 1).padStart(2)}  ${name.padEnd(28)} ${Math.round(opsPerSec).toLocaleString('en-US').padStart(14)} ops/s`);
});

console.log(`\n${formatTable(report)}\n`);
if (!values['no-write']) {
  const written = writeReport(report, values.out);
  console.log(`wrote ${written.json}\n      ${written.latestJson}\n      ${written.latestMarkdown}`);
}
const broken = report.scenarios.filter((scenario) => scenario.errors > 0);
if (broken.length > 0) {
  // Errors mean the fixture no longer fits the rules, so the figures measure the wrong thing.
  console.error(`errors in ${broken.map((scenario) => scenario.name).join(', ')}: the figures are not valid`);
  process.exitCode = 1;
}

function positiveInteger(flag: string, text: string): number {
  const value = Number(text.replaceAll('_', ''));
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${flag} must be a positive integer, got ${text}`);
  return value;
}
