/**
 * `src/main.ts` (`pnpm --filter banking-api start`) as a process of its own, signalled during
 * start-up. Its database connections go through a gate in this test (a TCP proxy that holds each
 * connection until it is opened), so that the signal reliably lands while start-up connects.
 */
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEV_ISSUER } from '../src/dev-tokens.js';
import { spawnEntry, type Exit } from './support/entry-process.js';
import { eventually, openTestDatabase, type TestDatabase } from './support/harness.js';
/** Starting node with tsx and compiling the sources: seconds, more on a loaded machine. */
const CONNECT_TIMEOUT_MS = 60_000;

let db: TestDatabase;
const children: ChildProcess[] = [];
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  db = await openTestDatabase();
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.allSettled(closers.splice(0).map((close) => close()));
});

afterAll(async () => {
  await db?.close();
});

/** A TCP proxy to `target`: it accepts connections at once but forwards nothing until `open()`. */
async function gate(target: URL): Promise<{ port: number; held(): number; open(): void }> {
  const held: Socket[] = [];
  const sockets = new Set<Socket>();
  let opened = false;
  const forward = (socket: Socket): void => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    sockets.add(upstream);
    for (const [from, to] of [[socket, upstream], [upstream, socket]] as const) {
      from.on('error', () => to.destroy());
      from.on('close', () => to.destroy());
      from.pipe(to);
    }
  };
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    if (opened) forward(socket);
    else held.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    port: (server.address() as { port: number }).port,
    held: () => held.length,
    open: () => {
      opened = true;
      for (const socket of held.splice(0)) forward(socket);
    },
  };
}

/** Starts `main.ts` with `env` (and a public key to verify tokens with); resolves its exit. */
function startMain(env: Record<string, string>): { exited: Promise<Exit>; output: () => string; kill: (signal: NodeJS.Signals) => void } {
  const publicKey = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const inherited: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(inherited)) if (name.startsWith('BANKING_API_') || name === 'MIGRATION_DATABASE_URL' || name === 'METRICS_PORT') delete inherited[name];
  const main = spawnEntry('main.ts', { ...inherited, BANKING_API_JWT_ISSUER: DEV_ISSUER, BANKING_API_JWT_PUBLIC_KEY: publicKey, PORT: '0', LOG_LEVEL: 'info', ...env });
  children.push(main.child);
  return { exited: main.exited, output: main.output, kill: (signal) => main.child.kill(signal) };
}

/** The application's connection string through the gate, with an application_name to find its sessions by. */
function gatedUrl(port: number, applicationName: string): string {
  const url = new URL(db.appUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  url.searchParams.set('application_name', applicationName);
  return url.toString();
}

async function sessionsOf(applicationName: string): Promise<number> {
  const { rows } = await db.admin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
  return rows[0]?.n ?? -1;
}

describe('main.ts signalled during start-up', () => {
  it('SIGTERM while start-up connects to the database: start-up stops after that step, closes what it opened and exits 0, never listening', { timeout: CONNECT_TIMEOUT_MS + 30_000 }, async () => {
    const proxy = await gate(new URL(db.appUrl));
    const applicationName = `main-test-${randomBytes(4).toString('hex')}`;
    const main = startMain({ DATABASE_URL: gatedUrl(proxy.port, applicationName) });
    await eventually(async () => expect(proxy.held()).toBeGreaterThan(0), CONNECT_TIMEOUT_MS);
    main.kill('SIGTERM');
    // The step under way (connecting, bounded by the connection timeout) is let finish.
    await new Promise((resolve) => setTimeout(resolve, 300));
    proxy.open();
    const exit = await main.exited;
    expect({ exit, output: main.output() }).toMatchObject({ exit: { code: 0, signal: null } });
    const lines = main
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(lines).toContain('start-up stopped by SIGTERM: closed what it had opened');
    expect(lines).not.toContain('banking API listening');
    await eventually(async () => expect(await sessionsOf(applicationName)).toBe(0));
  });

  it('a start-up step that has not ended within shutdownTimeoutMs of SIGTERM: exits 1 saying so, instead of waiting on', { timeout: CONNECT_TIMEOUT_MS + 30_000 }, async () => {
    const proxy = await gate(new URL(db.appUrl));
    const main = startMain({ DATABASE_URL: gatedUrl(proxy.port, 'main-test-stuck'), BANKING_API_SHUTDOWN_TIMEOUT_MS: '500' });
    await eventually(async () => expect(proxy.held()).toBeGreaterThan(0), CONNECT_TIMEOUT_MS);
    const signalledMs = Date.now();
    main.kill('SIGTERM');
    const exit = await main.exited;
    expect({ exit, output: main.output() }).toMatchObject({ exit: { code: 1, signal: null } });
    expect(main.output()).toContain('start-up did not stop within 500 ms of SIGTERM');
    // Well before the connection attempt's own timeout (5 s) would have ended the step.
    expect(Date.now() - signalledMs).toBeLessThan(4_000);
  });
});

describe('main.ts with a malformed PORT, METRICS_PORT or DB_POOL_SIZE', () => {
  it('refuses it at once, naming the variable, and exits 1 before anything is opened (PORT="" listened on a port the system picked)', { timeout: CONNECT_TIMEOUT_MS + 30_000 }, async () => {
    const cases = [
      [{ PORT: '' }, 'PORT must be an integer in 0..65535, got ""'],
      [{ PORT: '8080 ' }, 'PORT must be an integer in 0..65535, got "8080 "'],
      [{ METRICS_PORT: '65536' }, 'METRICS_PORT must be an integer in 0..65535, got "65536"'],
      [{ DB_POOL_SIZE: '0x10' }, 'DB_POOL_SIZE must be an integer in 2..200, got "0x10"'],
    ] as const;
    // A database that works: a value taken as a number would start the API on it.
    const mains = cases.map(([env]) => startMain({ DATABASE_URL: db.appUrl, ...env }));
    // Starting node with tsx takes seconds; an API that started instead never exits by itself.
    const exits = await Promise.all(mains.map((main) => Promise.race([main.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 30_000))])));
    for (const [index, [, message]] of cases.entries()) {
      const output = mains[index]?.output() ?? '';
      expect({ exit: exits[index], output }).toMatchObject({ exit: { code: 1, signal: null } });
      expect(output).toContain(`banking-api failed to start: ${message}\n`);
      // Refused before start-up began: nothing was opened.
      expect(output).not.toContain('banking API starting');
    }
  });
});
