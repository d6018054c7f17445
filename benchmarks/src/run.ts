/**
 * Runs the benchmark suite, prints a table and writes results/<timestamp>.json, latest.json
 * and latest.md.
 *
 *   tsx --expose-gc --tsconfig tsconfig.json src/run.ts [--ci] [--rounds N] [--ops N] [--pg-rounds N] [--pg-batches N] [--no-pg]
 *     [--only NAME,…] [--out DIR] [--no-write]
 *
 * The PostgreSQL scenarios use the server at DATABASE_URL when it is set, else an embedded one.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gcBetweenRounds } from './harness.js';
import { PG_BATCH_SIZE, POSTGRES_SCENARIO_NAMES } from './postgres-append.js';
import { formatTable, writeReport } from './report.js';
import { CI_SETTINGS, FULL_SETTINGS, runSuite, type SuiteSettings } from './suite.js';

const { values } = parseArgs({
  // `pnpm bench -- --ci` forwards the `--` itself; it separates nothing here.
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    ci: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    ops: { type: 'string' },
    'pg-rounds': { type: 'string' },
    'pg-batches': { type: 'string' },
    'no-pg': { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string', default: fileURLToPath(new URL('../results', import.meta.url)) },
    'no-write': { type: 'boolean', default: false },
  },
  strict: true,
});

const base = values.ci ? CI_SETTINGS : FULL_SETTINGS;
const customised = [values.rounds, values.ops, values['pg-rounds'], values['pg-batches']].some((value) => value !== undefined);
const settings: SuiteSettings = {
  ...base,
  mode: customised ? 'custom' : base.mode,
  rounds: values.rounds === undefined ? base.rounds : positiveInteger('--rounds', values.rounds),
  opsPerRound: values.ops === undefined ? base.opsPerRound : positiveInteger('--ops', values.ops),
  only: values.only === undefined ? undefined : values.only.split(',').map((name) => name.trim()),
  postgres:
    values['no-pg'] || base.postgres === undefined
      ? undefined
      : {
          ...base.postgres,
          rounds: values['pg-rounds'] === undefined ? base.postgres.rounds : positiveInteger('--pg-rounds', values['pg-rounds']),
          batchesPerRound: values['pg-batches'] === undefined ? base.postgres.batchesPerRound : positiveInteger('--pg-batches', values['pg-batches']),
        },
};

if (!gcBetweenRounds) console.warn('note: run node with --expose-gc so every round starts from a collected heap');
const pgSelected = settings.only === undefined || settings.only.some((name) => POSTGRES_SCENARIO_NAMES.includes(name));
const pgPlan =
  settings.postgres === undefined || !pgSelected
    ? ''
    : `; PostgreSQL: ${settings.postgres.rounds} rounds × ${settings.postgres.batchesPerRound} appends of ${PG_BATCH_SIZE.toLocaleString('en-US')}`;
console.log(`Ledgerkit benchmarks (${settings.mode}): ${settings.rounds} rounds × ${settings.opsPerRound.toLocaleString('en-US')} ops${pgPlan}, single-threaded\n`);

const report = await runSuite(settings, {
  onRound: (name, round, opsPerSec) => {
    console.log(`  round ${String(round + 1).padStart(2)}  ${name.padEnd(28)} ${Math.round(opsPerSec).toLocaleString('en-US').padStart(14)} ops/s`);
  },
  onMessage: (message) => console.log(message),
});

console.log(`\n${formatTable(report)}\n`);
if (!values['no-write']) {
  const written = writeReport(report, values.out);
  console.log(`wrote ${written.json}\n      ${written.latestJson}\n      ${written.latestMarkdown}`);
}
const broken = report.scenarios.filter((scenario) => scenario.errors > 0);
const missed = report.scenarios.filter((scenario) => scenario.meetsTarget === false);
if (missed.length > 0) console.log(`below target: ${missed.map((scenario) => scenario.name).join(', ')} (check the load average and run again before concluding)`);
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
