/**
 * CPU time of processes from /proc (Linux): how the two cores were shared between the API
 * server, PostgreSQL and the load generator during a scenario. Elsewhere it reports nothing.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) of one process, or 0 when it cannot be read. */
function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after the command: state(0) ppid(1) ... utime(11) stime(12).
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** The parent pid of a process, or -1. */
function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return -1;
  }
}

/** A process and all its children (PostgreSQL backends are children of the postmaster). */
export function processTree(root: number): number[] {
  let pids: number[] = [];
  try {
    pids = readdirSync('/proc')
      .filter((name) => /^\d+$/.test(name))
      .map(Number);
  } catch {
    return [root];
  }
  return [root, ...pids.filter((pid) => parentOf(pid) === root)];
}

/** CPU seconds used by groups of processes between `start()` and `stop()`. */
export class CpuMeter {
  readonly #groups: Record<string, () => number[]>;
  #before: Record<string, Map<number, number>> = {};
  #startedAt = 0;

  constructor(groups: Record<string, () => number[]>) {
    this.#groups = groups;
  }

  start(): void {
    this.#startedAt = performance.now();
    this.#before = this.#sample();
  }

  /** Cores used by each group over the interval (1.0 = one core fully busy). */
  stop(): Record<string, number> {
    const seconds = (performance.now() - this.#startedAt) / 1_000;
    const after = this.#sample();
    return Object.fromEntries(
      Object.keys(this.#groups).map((name) => {
        const before = this.#before[name] ?? new Map<number, number>();
        let used = 0;
        // A process started during the interval counts whole; one that ended during it is missed.
        for (const [pid, cpu] of after[name] ?? new Map<number, number>()) used += cpu - (before.get(pid) ?? 0);
        return [name, round(used / seconds)];
      }),
    );
  }

  #sample(): Record<string, Map<number, number>> {
    return Object.fromEntries(Object.entries(this.#groups).map(([name, pids]) => [name, new Map(pids().map((pid) => [pid, cpuSecondsOf(pid)]))]));
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** Rounds and hashes per round of {@link cpuSpeedIndex}: about 0.3 s in all on this machine. */
const SPEED_ROUNDS = 5;
const SPEED_HASHES_PER_ROUND = 50_000;

/**
 * How fast one core of this machine is right now: SHA-256 digests of 64 bytes per second, the
 * median of 5 rounds, measured before the load starts. On a shared VM the same code runs at
 * different speeds on different days; this figure lets two reports be compared.
 */
export function cpuSpeedIndex(): number {
  const input = Buffer.alloc(64, 7);
  const rates: number[] = [];
  for (let round = 0; round < SPEED_ROUNDS; round += 1) {
    const startedNs = process.hrtime.bigint();
    for (let i = 0; i < SPEED_HASHES_PER_ROUND; i += 1) createHash('sha256').update(input).digest();
    const seconds = Number(process.hrtime.bigint() - startedNs) / 1e9;
    rates.push(SPEED_HASHES_PER_ROUND / seconds);
  }
  rates.sort((a, b) => a - b);
  return Math.round(rates[Math.floor(SPEED_ROUNDS / 2)] as number);
}
