/**
 * Checks a results document as a consumer would read it back from disk: the shape of schema
 * version 3 (with the descriptive fields, versions and settings README.md shows), finite
 * non-negative figures in a sensible order, no failed operation, ratios that are the quotient of
 * the medians they name (each peer a scenario of the same group in the role its field names), an
 * overall rate that is the operations ÷ the timed seconds reported, a server section whenever a
 * PostgreSQL group ran, with synchronous_commit, fsync and full_page_writes on (a report without
 * these fields is refused, not assumed durable), peers that ran durably, and verdicts that agree
 * with the figures (each target recomputed from its parts, and not judged on a smaller history
 * than it names).
 * `pnpm bench:ci` fails when this finds anything; a missed target is not a problem here.
 */
import { REPORT_SCHEMA_VERSION } from './report.js';
import { SUITE_GROUPS } from './suite.js';

/** The groups whose scenarios run on PostgreSQL (`needsPostgres` in the suite's registry). */
const POSTGRES_GROUP_IDS: ReadonlySet<string> = new Set(SUITE_GROUPS.filter((group) => group.needsPostgres).map((group) => group.id));

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
  number(value['durationMs'], 'durationMs', fail, { positive: true });
  if (value['singleThreaded'] !== true) fail('singleThreaded', `expected true, got ${JSON.stringify(value['singleThreaded'])}`);
  const versions = value['versions'];
  if (!isObject(versions)) fail('versions', 'missing');
  else {
    for (const key of ['ledgerCore', 'zod', 'hdrHistogramJs', 'storePostgres', 'pg', 'embeddedPostgres', 'node', 'v8']) {
      if (typeof versions[key] !== 'string' || versions[key] === '') fail(`versions.${key}`, 'missing');
    }
    for (const key of ['emmettPostgresql', 'gitCommit']) if (versions[key] !== null && typeof versions[key] !== 'string') fail(`versions.${key}`, 'expected a string or null');
    if (versions['gitDirty'] !== null && typeof versions['gitDirty'] !== 'boolean') fail('versions.gitDirty', 'expected a boolean or null');
  }
  const settings = value['settings'];
  if (!isObject(settings)) fail('settings', 'missing');
  else {
    number(settings['seed'], 'settings.seed', fail, { integer: true });
    if (typeof settings['gcBetweenRounds'] !== 'boolean') fail('settings.gcBetweenRounds', 'expected a boolean');
  }

  const postgres = value['postgres'];
  let emmett: Record<string, unknown> | undefined;
  if (postgres === null) {
    // A PostgreSQL figure without the server section would skip every durability check below.
    const listed = [...(Array.isArray(value['groups']) ? value['groups'] : []).map((g) => (isObject(g) ? g['id'] : undefined)), ...(Array.isArray(value['scenarios']) ? value['scenarios'] : []).map((s) => (isObject(s) ? s['group'] : undefined))];
    const onPostgres = [...new Set(listed.filter((id): id is string => typeof id === 'string' && POSTGRES_GROUP_IDS.has(id)))];
    if (onPostgres.length > 0) fail('postgres', `null, but scenarios of ${onPostgres.join(', ')} ran on PostgreSQL: the server and its durability settings must be reported`);
  } else {
    if (!isObject(postgres) || !isObject(postgres['server']) || !isObject(postgres['emmett'])) fail('postgres', 'expected { server, emmett } or null');
    else {
      // Durable commits: each of these off makes a commit cheaper than a durable one, and every figure flatter.
      for (const [key, setting] of [
        ['synchronousCommit', 'synchronous_commit'],
        ['fsync', 'fsync'],
        ['fullPageWrites', 'full_page_writes'],
      ] as const) {
        const found = postgres['server'][key];
        if (found === undefined) fail(`postgres.server.${key}`, `missing: the report does not say whether ${setting} was on (a report written before ${setting} was recorded cannot be validated as durable)`);
        else if (found !== 'on') fail(`postgres.server.${key}`, `expected on (${setting}), got ${String(found)}`);
      }
      emmett = postgres['emmett'];
      if (typeof emmett['available'] !== 'boolean') fail('postgres.emmett.available', 'expected a boolean');
      else if (emmett['available']) {
        // A peer that commits without waiting for the WAL flush would flatter itself against our durable commits.
        if (emmett['synchronousCommit'] !== 'on') fail('postgres.emmett.synchronousCommit', `the Emmett peer ran with synchronous_commit ${String(emmett['synchronousCommit'])}, expected on`);
        if (typeof emmett['version'] !== 'string') fail('postgres.emmett.version', 'missing');
      } else if (typeof emmett['reason'] !== 'string' || emmett['reason'] === '') fail('postgres.emmett.reason', 'missing: say why the Emmett peer did not run');
    }
  }

  const groups = value['groups'];
  const groupIds = new Set<string>();
  if (!Array.isArray(groups) || groups.length === 0) fail('groups', 'expected a non-empty array');
  else {
    for (const [i, group] of groups.entries()) {
      if (!isObject(group) || typeof group['id'] !== 'string' || typeof group['title'] !== 'string' || typeof group['method'] !== 'string') fail(`groups[${i}]`, 'expected id, title and method');
      else {
        groupIds.add(group['id']);
        if (group['title'] === '' || group['method'] === '') fail(`group ${group['id']}`, 'title and method must not be empty');
        if (group['rawCeiling'] !== null && typeof group['rawCeiling'] !== 'string') fail(`group ${group['id']}.rawCeiling`, 'expected a scenario name or null');
        if (!isObject(group['settings'])) fail(`group ${group['id']}.settings`, 'missing');
      }
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
    for (const key of ['description', 'opsUnit', 'sampleOf', 'latencyOf']) {
      if (typeof s[key] !== 'string' || (s[key] as string).trim() === '') fail(`${at}.${key}`, 'missing: every scenario says what it measures');
    }
    number(s['ops'], `${at}.ops`, fail, { positive: true, integer: true });
    number(s['errors'], `${at}.errors`, fail, { integer: true });
    // Failed operations mean the fixture no longer fits the rules: the figures measure the wrong thing.
    if (typeof s['errors'] === 'number' && s['errors'] > 0) fail(`${at}.errors`, `${s['errors']} operations failed; expected 0, the figures are not valid`);
    // The sustained target is judged on opsPerSecOverall: it must be the operations ÷ the timed seconds reported.
    const timedSeconds = isObject(s['details']) ? s['details']['timedSeconds'] : undefined;
    if (timedSeconds !== undefined) {
      if (typeof timedSeconds !== 'number' || !Number.isFinite(timedSeconds) || timedSeconds <= 0) fail(`${at}.details.timedSeconds`, `expected a number > 0, got ${JSON.stringify(timedSeconds)}`);
      else if (typeof s['ops'] === 'number' && typeof s['opsPerSecOverall'] === 'number') {
        const overall = overallRange(s['ops'], timedSeconds);
        const reported = s['opsPerSecOverall'];
        if (reported < overall.low || reported > overall.high) {
          fail(`${at}.opsPerSecOverall`, `${reported} is not ops ÷ timedSeconds (${s['ops']} ÷ ${timedSeconds} = ${overall.value.toFixed(2)}, within rounding ${overall.low.toFixed(2)}–${overall.high.toFixed(2)})`);
        }
      }
    }
    number(s['samples'], `${at}.samples`, fail, { positive: true, integer: true });
    number(s['latencySamples'], `${at}.latencySamples`, fail, { integer: true });
    number(s['cpuPerWall'], `${at}.cpuPerWall`, fail);
    const rates = s['opsPerSec'];
    if (!isObject(rates)) fail(at, 'opsPerSec missing');
    else {
      // A window in which nothing completed (a stall of a second or more) is an observation, so the
      // low end of the distribution may be 0; the fastest window cannot be.
      for (const key of ['p50', 'p95', 'p99', 'min']) number(rates[key], `${at}.opsPerSec.${key}`, fail);
      number(rates['max'], `${at}.opsPerSec.max`, fail, { positive: true });
      // The slow tail: max ≥ p50 ≥ p95 ≥ p99 ≥ min (pN is the rate N % of samples reached or beat).
      const [max, p50, p95, p99, min] = ['max', 'p50', 'p95', 'p99', 'min'].map((key) => Number(rates[key])) as [number, number, number, number, number];
      if (min > max) fail(at, 'opsPerSec.min > max');
      else if (!(max >= p50 && p50 >= p95 && p95 >= p99 && p99 >= min)) fail(`${at}.opsPerSec`, `percentiles out of order: expected max ≥ p50 ≥ p95 ≥ p99 ≥ min, got ${max}, ${p50}, ${p95}, ${p99}, ${min}`);
      const median = Number(s['opsPerSecMedian']);
      if (Number.isFinite(median) && (median < min || median > max)) fail(`${at}.opsPerSecMedian`, `${median} is outside the samples' range ${min}–${max}`);
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
    const notJudged = s['notJudged'];
    if (!Array.isArray(misses) || misses.some((m) => typeof m !== 'string')) fail(at, 'misses must be an array of strings');
    // `notJudged` came within schema 3: a document written before it has none, which reads as null.
    if (notJudged !== undefined && notJudged !== null && typeof notJudged !== 'string') fail(`${at}.notJudged`, 'expected a string or null');
    if (target === null) {
      if (meets !== null) fail(at, 'meetsTarget must be null without a target');
    } else if (!isObject(target) || typeof target['statement'] !== 'string' || target['statement'] === '') fail(at, 'target needs a statement');
    else {
      const history = isObject(s['details']) ? s['details']['historyEvents'] : undefined;
      const stated = target['historyEvents'];
      const smaller = stated !== undefined && !(typeof history === 'number' && typeof stated === 'number' && history >= stated);
      if (stated !== undefined && typeof stated !== 'number') fail(`${at}.target.historyEvents`, 'expected a number');
      if (smaller) {
        if (meets !== null) fail(`${at}.meetsTarget`, `the target is stated at ${String(stated)} events of history but the scenario ran on ${String(history)}: expected null (not judged), got ${String(meets)}`);
        if (typeof notJudged !== 'string' || notJudged === '') fail(`${at}.notJudged`, 'missing: a target not judged needs the reason');
        if (Array.isArray(misses) && misses.length > 0) fail(`${at}.misses`, 'a target not judged has no misses');
      } else if (typeof meets !== 'boolean') fail(at, `meetsTarget must be a boolean with a target judged on its history, got ${String(meets)}`);
      else {
        if (notJudged !== undefined && notJudged !== null) fail(`${at}.notJudged`, 'must be null for a judged target');
        if (Array.isArray(misses)) {
          if (meets !== (misses.length === 0)) fail(at, 'meetsTarget disagrees with misses');
          verdictAgrees(at, target, s, scenarioMap(scenarios), misses.length, fail);
        }
      }
    }
    const series = s['series'];
    if (series !== null && !(Array.isArray(series) && series.every((p) => isObject(p) && Number.isFinite(p['atSec']) && Number.isFinite(p['opsPerSec']) && Number.isFinite(p['p99Ms'])))) {
      fail(at, 'series must be null or points of { atSec, opsPerSec, p99Ms }');
    }
    if (!isObject(s['details'])) fail(at, 'details missing');
  }
  const byName = scenarioMap(scenarios);
  for (const [i, s] of scenarios.entries()) {
    if (!isObject(s)) continue;
    const at = `scenario ${String(s['name'])}`;
    for (const [key, ratioKey] of [
      ['rawCeiling', 'ratioToRawCeiling'],
      ['emmettPeer', 'ratioToEmmett'],
    ] as const) {
      const peer = s[key];
      const ratio = s[ratioKey];
      if (peer !== null && !names.has(String(peer))) {
        fail(`scenarios[${i}].${key}`, `${String(peer)} is not a scenario of this run`);
        continue;
      }
      if (peer === null) {
        if (ratio !== null) fail(`${at}.${ratioKey}`, `expected null without a ${key}, got ${String(ratio)}`);
        continue;
      }
      // A ratio means what the role says only against a scenario of the same group in the right role.
      const named = byName.get(String(peer));
      const role = key === 'rawCeiling' ? 'raw-ceiling' : 'peer';
      if (named !== undefined) {
        if (named['group'] !== s['group']) fail(`${at}.${key}`, `${String(peer)} is in group ${String(named['group'])}, not this scenario's group ${String(s['group'])}`);
        if (named['role'] !== role) fail(`${at}.${key}`, `${String(peer)} has role ${String(named['role'])}, expected ${role}`);
      }
      const quotient = medianQuotient(s, named);
      if (typeof ratio !== 'number') fail(`${at}.${ratioKey}`, `expected a number: ${String(peer)} ran`);
      else if (quotient !== undefined && (ratio < quotient.low - RATIO_ROUNDING || ratio > quotient.high + RATIO_ROUNDING)) {
        fail(`${at}.${ratioKey}`, `${ratio} is not this median ÷ ${String(peer)}'s (${quotient.value.toFixed(4)})`);
      }
    }
    if (s['emmettPeer'] !== null && s['emmettPeer'] !== undefined && emmett?.['available'] !== true) {
      fail(`${at}.emmettPeer`, 'names an Emmett peer, but postgres.emmett says Emmett did not run');
    }
  }
  return problems;
}

/**
 * ops ÷ timedSeconds, and the range `opsPerSecOverall` may take once both were rounded as
 * reported: timedSeconds to 2 or 3 decimals (so ± 0.005 s at most), the rate to whole ops/s from
 * 100 up and hundredths below.
 */
function overallRange(ops: number, timedSeconds: number): { value: number; low: number; high: number } {
  const secondsSlack = 0.005;
  const rateSlack = (rate: number): number => (rate >= 100 ? 0.5 : 0.005);
  const fastest = timedSeconds - secondsSlack > 0 ? ops / (timedSeconds - secondsSlack) : Number.POSITIVE_INFINITY;
  const slowest = ops / (timedSeconds + secondsSlack);
  return { value: ops / timedSeconds, low: slowest - rateSlack(slowest), high: fastest + rateSlack(fastest) };
}

/** A ratio is rounded to 4 decimals. */
const RATIO_ROUNDING = 0.000_05;

function scenarioMap(scenarios: readonly unknown[]): Map<string, Record<string, unknown>> {
  const map = new Map<string, Record<string, unknown>>();
  for (const s of scenarios) if (isObject(s) && typeof s['name'] === 'string') map.set(s['name'], s);
  return map;
}

/**
 * `mine`'s median ÷ `theirs`, and the range it may have had before the medians were rounded as
 * reported (whole ops/s from 100 up, hundredths below); `undefined` when a median is missing.
 */
function medianQuotient(mine: Record<string, unknown>, theirs: Record<string, unknown> | undefined): { value: number; low: number; high: number } | undefined {
  const a = mine['opsPerSecMedian'];
  const b = theirs?.['opsPerSecMedian'];
  if (typeof a !== 'number' || typeof b !== 'number' || !(b > 0)) return undefined;
  const slack = (median: number): number => (median >= 100 ? 0.5 : 0.005);
  const low = Math.max(0, a - slack(a)) / (b + slack(b));
  const high = b - slack(b) > 0 ? (a + slack(a)) / (b - slack(b)) : Number.POSITIVE_INFINITY;
  return { value: a / b, low, high };
}

/**
 * Recomputes which parts of `target` the scenario's figures miss, and fails when the number of
 * misses reported cannot be right. A part whose figure sits within rounding of its threshold may
 * count either way; failed operations are always a miss.
 */
function verdictAgrees(
  at: string,
  target: Record<string, unknown>,
  s: Record<string, unknown>,
  byName: ReadonlyMap<string, Record<string, unknown>>,
  reported: number,
  fail: (where: string, what: string) => void,
): void {
  const missed: string[] = [];
  const maybe: string[] = [];
  const latency = isObject(s['latencyMs']) ? s['latencyMs'] : {};
  const part = (name: string, outcome: 'met' | 'missed' | 'either'): void => {
    if (outcome === 'missed') missed.push(name);
    else if (outcome === 'either') maybe.push(name);
  };
  if (typeof s['errors'] === 'number' && s['errors'] > 0) part('failed operations', 'missed');
  if (typeof target['opsPerSec'] === 'number') {
    const basis = target['basis'] === 'overall' ? 'overall' : 'median';
    const rate = Number(basis === 'overall' ? s['opsPerSecOverall'] : s['opsPerSecMedian']);
    part(`${basis} ops/s ≥ ${target['opsPerSec']}`, rate < target['opsPerSec'] ? 'missed' : 'met');
  }
  if (typeof target['ratioToRawCeiling'] === 'number') {
    const ratio = s['ratioToRawCeiling'];
    part(`× raw ceiling ≥ ${target['ratioToRawCeiling']}`, typeof ratio !== 'number' || ratio < target['ratioToRawCeiling'] ? 'missed' : 'met');
  }
  const ratioTo = target['ratioTo'];
  if (isObject(ratioTo) && typeof ratioTo['scenario'] === 'string' && typeof ratioTo['min'] === 'number') {
    const name = `× ${ratioTo['scenario']} ≥ ${ratioTo['min']}`;
    const min = ratioTo['min'];
    if (ratioTo['scenario'] === s['rawCeiling'] && typeof s['ratioToRawCeiling'] === 'number') part(name, s['ratioToRawCeiling'] < min ? 'missed' : 'met');
    else {
      const quotient = medianQuotient(s, byName.get(ratioTo['scenario']));
      if (quotient === undefined) part(name, 'missed');
      else part(name, quotient.high + RATIO_ROUNDING < min ? 'missed' : quotient.low - RATIO_ROUNDING >= min ? 'met' : 'either');
    }
  }
  if (typeof target['latencyP99MsMax'] === 'number') part(`p99 ≤ ${target['latencyP99MsMax']} ms`, Number(latency['p99']) > target['latencyP99MsMax'] ? 'missed' : 'met');
  if (typeof target['latencyP50MsMax'] === 'number') part(`median ≤ ${target['latencyP50MsMax']} ms`, Number(latency['p50']) > target['latencyP50MsMax'] ? 'missed' : 'met');
  const latencyRatio = target['latencyP99RatioTo'];
  if (isObject(latencyRatio) && typeof latencyRatio['scenario'] === 'string' && typeof latencyRatio['max'] === 'number') {
    const name = `p99 ≤ ${latencyRatio['max']} × ${latencyRatio['scenario']}'s`;
    const other = byName.get(latencyRatio['scenario']);
    const theirs = isObject(other?.['latencyMs']) ? Number(other['latencyMs']['p99']) : Number.NaN;
    if (!(theirs > 0)) part(name, 'missed');
    else {
      const value = Number(latency['p99']) / theirs;
      const max = latencyRatio['max'];
      part(name, value > max + RATIO_ROUNDING ? 'missed' : value <= max - RATIO_ROUNDING ? 'met' : 'either');
    }
  }
  if (reported < missed.length || reported > missed.length + maybe.length) {
    const expected = missed.length === 0 ? 'none' : missed.join('; ');
    fail(
      `${at}.meetsTarget`,
      `disagrees with the figures: recomputed from the target, the missed parts are ${expected}${maybe.length > 0 ? ` (within rounding: ${maybe.join('; ')})` : ''}, but ${reported} ${reported === 1 ? 'miss is' : 'misses are'} reported (meetsTarget ${String(s['meetsTarget'])})`,
    );
  }
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
