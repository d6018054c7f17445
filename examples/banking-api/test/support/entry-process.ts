/**
 * A source entry of the example (`src/main.ts`, `src/demo.ts`) run as its pnpm script runs it:
 * node with tsx, from the repository root, its output collected.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

/** How a process ended. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A running entry. */
export interface EntryProcess {
  readonly child: ChildProcess;
  /** Everything it printed so far, stdout and stderr as they came. */
  output(): string;
  /** Settles when it exits. */
  readonly exited: Promise<Exit>;
}

/**
 * Starts `examples/banking-api/src/<entry>` with `env` (the tsconfig set for tsx), stdin closed.
 * With `detached`, in a process group of its own, as a terminal's foreground job is: signal the
 * group with `process.kill(-child.pid, ...)`.
 */
export function spawnEntry(entry: string, env: NodeJS.ProcessEnv, options: { readonly detached?: boolean } = {}): EntryProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'examples', 'banking-api', 'src', entry)], {
    cwd: ROOT,
    env: { ...env, TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.json') },
    detached: options.detached ?? false,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, output: () => output, exited };
}
