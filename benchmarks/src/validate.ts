/**
 * Checks a results document as a consumer would read it back from disk: the shape of schema
 * version 3, finite non-negative figures in a sensible order, and verdicts that agree with the
 * figures. `pnpm bench:ci` fails when this finds anything; a missed target is not a problem here.
 */
import { REPORT_SCHEMA_VERSION } from './report.js';

/** Every problem found in `value` (a parsed results document), as a sentence; empty when it is valid. */
export function validateReport(value: unknown): string[] {
  const problems: string[] = [];
  const fail = (where: string, what: string): void => {
    problems.push(`${where}: ${what}`);
  };
  if (!isObject(value)) return ['the document is not a JSON object'];
  if (value['schemaVersion'] !== REPORT_SCHEMA_VERSION) fail('schemaVersion', `expected ${REPORT_SCHEMA_VERSION}, got ${String(value['schemaVersion'])}`);
  for (const key of ['startedAt', 'finishedAt'] as const) {
    if (typeof value[key] !== 'string' || Number.isNaN(Date.parse(value[key]))) fail(key, 'not an ISO time');
  }
  if (!['full', 'ci', 'custom'].includes(String(value['mode']))) fail('mode', `unknown mode ${String(value['mode'])}`);
  const machine = value['machine'];
  if (!isObject(machine)) fail('machine', 'missing');
  else {
    number(machine['cpus'], 'machine.cpus', fail, { positive: true });
    number(machine['loadAverage1mAtStart'], 'machine.loadAverage1mAtStart', fail);
    for (const key of ['model', 'node', 'platform']) if (typeof machine[key] !== 'string' || machine[key] === '') fail(`machine.${key}`, 'missing');
    const flags = machine['nodeFlags'];
    if (!Array.isArray(flags) || !flags.every((flag) => typeof flag === 'string')) fail('machine.nodeFlags', 'not a list of strings');
  }
  const versions = value['versions'];
  if (!isObject(versions)) fail('versions', 'missing');
  else for (const key of ['ledgerCore', 'storePostgres', 'pg', 'node']) if (typeof versions[key] !== 'string') fail(`versions.${key}`, 'missing');
  if (!isObject(value['settings'])) fail('settings', 'missing');

  const postgres = value['postgres'];
  if (postgres !== null) {
    if (!isObject(postgres) || !isObject(postgres['server']) || !isObject(postgres['emmett'])) fail('postgres', 'expected { server, emmett } or null');
    else if (postgres['server']['synchronousCommit'] !== 'on') fail('postgres.server.synchronousCommit', `expected on, got ${String(postgres['server']['synchronousCommit'])}`);
  }

  const groups = value['groups'];
  const groupIds = new Set<string>();
  if (!Array.isArray(groups) || groups.length === 0) fail('groups', 'expected a non-empty array');
  else {
    for (const [i, group] of groups.entries()) {
      if (!isObject(group) || typeof group['id'] !== 'string' || typeof group['title'] !== 'string' || typeof group['method'] !== 'string') fail(`groups[${i}]`, 'expected id, title and method');
      else groupIds.add(group['id']);
    }
  }

  const scenarios = value['scenarios'];
  if (!Array.isArray(scenarios) || scenarios.length === 0) return [...problems, 'scenarios: expected a non-empty array'];
  const names = new Set<string>();
  for (const [i, s] of scenarios.entries()) {
    if (!isObject(s) || typeof s['name'] !== 'string') {
      fail(`scenarios[${i}]`, 'expected an object with a name');
      continue;
    }
    const at = `scenario ${s['name']}`;
    if (names.has(s['name'])) fail(at, 'appears twice');
    names.add(s['name']);
    if (!groupIds.has(String(s['group']))) fail(at, `group ${String(s['group'])} is not listed in groups`);
    if (!['ours', 'raw-ceiling', 'peer'].includes(String(s['role']))) fail(at, `unknown role ${String(s['role'])}`);
    number(s['opsPerSecMedian'], `${at}.opsPerSecMedian`, fail, { positive: true });
    number(s['opsPerSecOverall'], `${at}.opsPerSecOverall`, fail, { positive: true });
    number(s['ops'], `${at}.ops`, fail, { positive: true, integer: true });
    number(s['errors'], `${at}.errors`, fail, { integer: true });
    number(s['samples'], `${at}.samples`, fail, { positive: true, integer: true });
    number(s['cpuPerWall'], `${at}.cpuPerWall`, fail);
    const rates = s['opsPerSec'];
    if (!isObject(rates)) fail(at, 'opsPerSec missing');
    else {
      // A window in which nothing completed (a stall of a second or more) is an observation, so the
      // low end of the distribution may be 0; the fastest window cannot be.
      for (const key of ['p50', 'p95', 'p99', 'min']) number(rates[key], `${at}.opsPerSec.${key}`, fail);
      number(rates['max'], `${at}.opsPerSec.max`, fail, { positive: true });
      if (Number(rates['min']) > Number(rates['max'])) fail(at, 'opsPerSec.min > max');
    }
    latency(s['latencyMs'], `${at}.latencyMs`, fail);
    if (s['batchLatencyMs'] !== null) latency(s['batchLatencyMs'], `${at}.batchLatencyMs`, fail);
    for (const key of ['ratioToRawCeiling', 'ratioToEmmett']) if (s[key] !== null) number(s[key], `${at}.${key}`, fail, { positive: true });
    const load = s['loadAverage1m'];
    if (!isObject(load)) fail(at, 'loadAverage1m missing');
    else for (const key of ['start', 'end']) number(load[key], `${at}.loadAverage1m.${key}`, fail);
    const target = s['target'];
    const meets = s['meetsTarget'];
    const misses = s['misses'];
    if (!Array.isArray(misses) || misses.some((m) => typeof m !== 'string')) fail(at, 'misses must be an array of strings');
    if (target === null) {
      if (meets !== null) fail(at, 'meetsTarget must be null without a target');
    } else if (!isObject(target) || typeof target['statement'] !== 'string') fail(at, 'target needs a statement');
    else if (typeof meets !== 'boolean') fail(at, 'meetsTarget must be a boolean with a target');
    else if (Array.isArray(misses) && meets !== (misses.length === 0)) fail(at, 'meetsTarget disagrees with misses');
    const series = s['series'];
    if (series !== null && !(Array.isArray(series) && series.every((p) => isObject(p) && Number.isFinite(p['atSec']) && Number.isFinite(p['opsPerSec']) && Number.isFinite(p['p99Ms'])))) {
      fail(at, 'series must be null or points of { atSec, opsPerSec, p99Ms }');
    }
    if (!isObject(s['details'])) fail(at, 'details missing');
  }
  for (const [i, s] of scenarios.entries()) {
    if (!isObject(s)) continue;
    for (const key of ['rawCeiling', 'emmettPeer']) {
      const peer = s[key];
      if (peer !== null && !names.has(String(peer))) fail(`scenarios[${i}].${key}`, `${String(peer)} is not a scenario of this run`);
    }
  }
  return problems;
}

function latency(value: unknown, where: string, fail: (where: string, what: string) => void): void {
  if (!isObject(value)) {
    fail(where, 'missing');
    return;
  }
  for (const key of ['p50', 'p95', 'p99', 'max']) number(value[key], `${where}.${key}`, fail, { positive: true });
  const [p50, p95, p99, max] = ['p50', 'p95', 'p99', 'max'].map((key) => Number(value[key]));
  if (!((p50 as number) <= (p95 as number) && (p95 as number) <= (p99 as number) && (p99 as number) <= (max as number))) fail(where, 'percentiles out of order');
}

function number(value: unknown, where: string, fail: (where: string, what: string) => void, options: { positive?: boolean; integer?: boolean } = {}): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(where, `expected a finite number, got ${JSON.stringify(value)}`);
  else if (value < 0 || (options.positive === true && value === 0)) fail(where, `expected ${options.positive === true ? '> 0' : '≥ 0'}, got ${value}`);
  else if (options.integer === true && !Number.isInteger(value)) fail(where, `expected an integer, got ${value}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
