/**
 * Runs the benchmark suite, prints the tables, writes results/<timestamp>.json, latest.json,
 * latest.md and latest.svg, reads latest.json back and checks it.
 *
 *   tsx --expose-gc --max-semi-space-size=64 --tsconfig tsconfig.json src/run.ts [--ci] [--only NAME,…] [--no-pg] [--no-emmett]
 *     [--rounds N] [--ops N] [--pg-rounds N] [--pg-batches N] [--sustained-seconds N] [--history N]
 *     [--projection-history N]
 *     [--out DIR] [--no-write]
 *
 * The PostgreSQL scenarios use the server at DATABASE_URL when it is set, else an embedded one.
 * Exits 1 when the written JSON is not valid or any operation failed (the figures would measure
 * the wrong thing); a missed target is printed, not an exit status.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { youngGenerationFlag } from './environment.js';
import { gcBetweenRounds } from './harness.js';
import { formatTable, writeReport } from './report.js';
import { CI_SETTINGS, FULL_SETTINGS, runSuite, type SuiteSettings } from './suite.js';
import { validateReport } from './validate.js';

const { values } = parseArgs({
  // `pnpm bench -- --ci` forwards the `--` itself; it separates nothing here.
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    ci: { type: 'boolean', default: false },
    only: { type: 'string' },
    'no-pg': { type: 'boolean', default: false },
    'no-emmett': { type: 'boolean', default: false },
    rounds: { type: 'string' },
    ops: { type: 'string' },
    'pg-rounds': { type: 'string' },
    'pg-batches': { type: 'string' },
    'sustained-seconds': { type: 'string' },
    history: { type: 'string' },
    'projection-history': { type: 'string' },
    out: { type: 'string', default: fileURLToPath(new URL('../results', import.meta.url)) },
    'no-write': { type: 'boolean', default: false },
  },
  strict: true,
});

const base = values.ci ? CI_SETTINGS : FULL_SETTINGS;
const customised = [values.rounds, values.ops, values['pg-rounds'], values['pg-batches'], values['sustained-seconds'], values.history, values['projection-history']].some((value) => value !== undefined);
const optional = (flag: keyof typeof values): number | undefined => {
  const text = values[flag];
  return typeof text === 'string' ? positiveInteger(`--${flag}`, text) : undefined;
};
const settings: SuiteSettings = {
  ...base,
  mode: customised ? 'custom' : base.mode,
  only: values.only === undefined ? undefined : values.only.split(',').map((name) => name.trim()),
  emmett: !values['no-emmett'],
  core: base.core === undefined ? undefined : { ...base.core, rounds: optional('rounds') ?? base.core.rounds, opsPerRound: optional('ops') ?? base.core.opsPerRound },
  postgres:
    values['no-pg'] || base.postgres === undefined
      ? undefined
      : { ...base.postgres, rounds: optional('pg-rounds') ?? base.postgres.rounds, batchesPerRound: optional('pg-batches') ?? base.postgres.batchesPerRound },
  writer:
    values['no-pg'] || base.writer === undefined
      ? undefined
      : {
          ...base.writer,
          sustainedWindowMs: (optional('sustained-seconds') ?? base.writer.sustainedWindowMs / 1_000) * 1_000,
          startupHistoryEvents: optional('history') ?? base.writer.startupHistoryEvents,
        },
  projections:
    base.projections === undefined ? undefined : { ...base.projections, historyEvents: optional('projection-history') ?? base.projections.historyEvents },
};

if (!gcBetweenRounds) console.warn('note: run node with --expose-gc so every round starts from a collected heap');
if (youngGenerationFlag() === undefined) {
  console.warn('note: run node with --max-semi-space-size=64 as `pnpm bench` does; with the default 16 MB young generation the sustained writer loses about a third of its rate to the garbage collector');
}
console.log(`Ledgerkit benchmarks (${settings.mode})${settings.only === undefined ? '' : `, only ${settings.only.join(', ')}`}\n`);

const report = await runSuite(settings, {
  onRound: (name, round, opsPerSec) => {
    console.log(`  round ${String(round + 1).padStart(2)}  ${name.padEnd(30)} ${int(opsPerSec).padStart(14)} ops/s`);
  },
  onWindow: (name, round, opsPerSec, p99Ms) => {
    console.log(`  window ${String(round + 1).padStart(2)} ${name.padEnd(30)} ${int(opsPerSec).padStart(14)} ops/s   p99 so far ${p99Ms.toFixed(2)} ms`);
  },
  onMessage: (message) => console.log(message),
});

console.log(`\n${formatTable(report)}\n`);
let invalid: string[] = [];
if (!values['no-write']) {
  const written = writeReport(report, values.out);
  console.log(`wrote ${written.json}\n      ${written.latestJson}\n      ${written.latestMarkdown}\n      ${written.latestSvg}`);
  // Check the file as a consumer reads it, not the object in memory.
  try {
    invalid = validateReport(JSON.parse(readFileSync(written.latestJson, 'utf8')));
  } catch (error) {
    invalid = [`latest.json does not parse: ${error instanceof Error ? error.message : String(error)}`];
  }
} else {
  invalid = validateReport(JSON.parse(JSON.stringify(report)));
}
if (invalid.length > 0) {
  console.error(`the results JSON is not valid:\n${invalid.map((problem) => `  - ${problem}`).join('\n')}`);
  process.exitCode = 1;
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

function int(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}
