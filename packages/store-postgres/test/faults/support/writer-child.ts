import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CONFIG_VARIABLE, type WriterLine, type WriterProcessConfig } from './writer-protocol.js';

const REPOSITORY_ROOT = fileURLToPath(new URL('../../../../../', import.meta.url));
const SCRIPT = fileURLToPath(new URL('../writer-process.ts', import.meta.url));
/** Kept for the message of a failed wait. */
const STDERR_TAIL_CHARS_MAX = 4_000;

/** How a writer process ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A running writer process and what it has reported so far. */
export interface WriterChild {
  /** Every line read so far, in order. */
  readonly lines: readonly WriterLine[];
  readonly exited: Promise<ChildExit>;
  /** Resolves with the first line (already read or still to come) that matches; rejects after `timeoutMs` or if the process ends first. */
  waitFor(match: (line: WriterLine) => boolean, timeoutMs: number): Promise<WriterLine>;
  /** Lets a process started with `awaitGo` begin submitting. */
  go(): void;
  /** SIGKILL, then waits until the process is gone and its last lines are read. */
  kill(): Promise<ChildExit>;
  /** The end of what the process wrote to stderr, for failure messages. */
  stderr(): string;
}

/**
 * Starts `writer-process.ts` as a separate Node process (TypeScript through tsx, with the
 * repository's tsconfig so the workspace packages resolve to their sources, as under vitest).
 * It is a single process: a SIGKILL stops the writer itself, not a wrapper.
 */
export function spawnWriter(name: string, config: WriterProcessConfig): WriterChild {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', SCRIPT], {
    cwd: REPOSITORY_ROOT,
    env: { ...process.env, [CONFIG_VARIABLE]: JSON.stringify(config), TSX_TSCONFIG_PATH: `${REPOSITORY_ROOT}tsconfig.json` },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: WriterLine[] = [];
  const waiters = new Set<() => void>();
  let partial = '';
  let stderrTail = '';
  let ended = false;
  const wake = (): void => {
    for (const waiter of [...waiters]) waiter();
  };
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    partial += chunk;
    let newline = partial.indexOf('\n');
    while (newline !== -1) {
      const text = partial.slice(0, newline);
      partial = partial.slice(newline + 1);
      // A process killed in the middle of a write leaves a line without its end: it was never reported.
      if (text.length > 0) lines.push(JSON.parse(text) as WriterLine);
      newline = partial.indexOf('\n');
    }
    wake();
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_CHARS_MAX);
  });
  // 'close' comes after stdout has ended, so every line the process wrote has been read.
  const exited = new Promise<ChildExit>((resolve) => {
    child.on('close', (code, signal) => {
      ended = true;
      wake();
      resolve({ code, signal });
    });
  });

  const waitFor = (match: (line: WriterLine) => boolean, timeoutMs: number): Promise<WriterLine> =>
    new Promise<WriterLine>((resolve, reject) => {
      let checked = 0;
      const check = (): void => {
        for (; checked < lines.length; checked += 1) {
          const line = lines[checked] as WriterLine;
          if (match(line)) return finish(() => resolve(line));
        }
        if (ended) finish(() => reject(new Error(`writer ${name} ended before the awaited line; stderr:\n${stderrTail}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`writer ${name}: no awaited line within ${timeoutMs} ms; stderr:\n${stderrTail}`))), timeoutMs);
      const finish = (settle: () => void): void => {
        clearTimeout(timer);
        waiters.delete(check);
        settle();
      };
      waiters.add(check);
      check();
    });

  return {
    lines,
    exited,
    waitFor,
    go: () => {
      child.stdin?.write('go\n');
    },
    kill: async () => {
      if (!ended) child.kill('SIGKILL');
      return exited;
    },
    stderr: () => stderrTail,
  };
}
