/**
 * The writer under load on PostgreSQL, next to its peers on the same server in the same run:
 *
 * - batches of 1,000 transfers (`Promise.all` of 1,000 `submit`s), sustained for a long window;
 * - 64 callers each sending one transfer at a time, the writer's group commit doing the batching,
 *   on uniformly random accounts and with every transfer touching one settlement account;
 * - a fixed arrival rate, with latency counted from each transfer's due time.
 *
 * Peers get the same callers: the raw ceiling (the same encoded rows inserted with no checks,
 * through the same kind of queue for the callers) and Emmett's PostgreSQL event store (one
 * `appendToStream` per batch, or per transfer, on one stream with an expected version).
 */
import { LedgerWriter, type CommandResult, type LedgerCommand, type StoredEvent, type TransferCommand } from '@ledgerkit/ledger-core';
import type { PostgresEventStore } from '@ledgerkit/store-postgres';
import type pg from 'pg';
import { ChainEncoder } from './chain-encoder.js';
import type { EmmettPeer } from './emmett-peer.js';
import { buildFixtureLedger, fixtureAccountIds, fixtureCommands, hotAccountFixtureCommands, hotAccountTransferStream, transferStream } from './ledger-fixture.js';
import { batchLoop, closedLoop, fixedRate, FixedRateSchedule, type LoadRound, type LoadScenario } from './load-harness.js';
import type { Target } from './measurement.js';
import { BENCH_TENANT_ID, insertRawRows } from './raw-insert.js';
import { roundLabel, type ErrorReporter } from './scenario-util.js';

export const WRITER_BATCH = 'writer-batch-1000-sustained';
export const RAW_BATCH = 'raw-insert-batch-1000';
export const EMMETT_BATCH = 'emmett-append-batch-1000';
export const WRITER_CALLERS = 'writer-64-callers';
export const WRITER_HOT = 'writer-hot-account';
export const RAW_CALLERS = 'raw-insert-64-callers';
export const EMMETT_CALLERS = 'emmett-append-64-callers';
export const WRITER_FIXED_RATE = 'writer-fixed-rate';

/** Transfers per batch in the batch scenarios; also the writer's `batchSizeMax` (its default). */
export const LOAD_BATCH_SIZE = 1_000;
/** Encoded rows the raw and Emmett peers cycle through: enough that no batch repeats a row. */
const RING_ROWS = 8_192;

/** What the load scenarios share. */
export interface WriterLoadOptions {
  readonly store: PostgresEventStore;
  /** The application role's pool (the raw ceiling inserts through it, as the store does). */
  readonly app: pg.Pool;
  /** Emmett, or `undefined` when it could not be opened (its scenarios are then left out). */
  readonly emmett: EmmettPeer | undefined;
  /** Accounts in each fixture ledger; even. */
  readonly accounts: number;
  /** Concurrent callers of the caller scenarios. */
  readonly callers: number;
  /** Arrival rate of the fixed-rate scenario, transfers/s. */
  readonly fixedRatePerSec: number;
  readonly seed: number;
  /** Encoded transfer rows the raw and Emmett peers cycle through (see {@link encodedRing}). */
  readonly ring: readonly StoredEvent[];
  readonly report: ErrorReporter;
}

/** The batch group: the writer's sustained window and, when Emmett is there, its peers. */
export function batchScenarios(options: WriterLoadOptions): { main: LoadScenario; peers: LoadScenario[] } {
  const { ring } = options;
  const peers: LoadScenario[] = [rawBatch(options, ring)];
  if (options.emmett !== undefined) peers.push(emmettBatch(options, options.emmett, ring));
  return { main: writerBatch(options), peers };
}

/** The caller group: uniform and hot-account writers, and the peers with the same callers. */
export function callerScenarios(options: WriterLoadOptions): LoadScenario[] {
  const { ring } = options;
  const scenarios = [rawCallers(options, ring)];
  if (options.emmett !== undefined) scenarios.push(emmettCallers(options, options.emmett, ring));
  scenarios.push(writerCallers(options, 'uniform'), writerCallers(options, 'hot'));
  return scenarios;
}

/** The fixed-arrival-rate scenario. */
export function fixedRateScenario(options: WriterLoadOptions): LoadScenario {
  const schedule = new FixedRateSchedule();
  return {
    name: WRITER_FIXED_RATE,
    description: `${options.fixedRatePerSec.toLocaleString('en-US')} transfers/s arriving at fixed times (open loop) into one LedgerWriter; latency from each transfer's due time, so stalls are charged to every transfer they delay (coordinated omission corrected); the generator sleeps on a timer between sends (no busy wait) and each tick sends every transfer that has come due`,
    target: undefined,
    latencyOf: 'transfer, from its due time',
    sampleBy: 'interval',
    series: true,
    async prepare(round) {
      const opened = await openFixtureWriter(options, `fixed-${roundLabel(round)}`, 'uniform');
      return {
        // Only the recorded windows' sends go into the schedule figures (warm-up rounds are negative).
        drive: fixedRate(options.fixedRatePerSec, (seq) => submitOne(opened.writer, opened.next(seq)), (error) => options.report(WRITER_FIXED_RATE, error), round >= 0 ? schedule : undefined),
        finish: () => opened.writer.close(),
      };
    },
    // How the generator kept to its schedule: the rate it sent at (it must be the intended one) and how late sends went out.
    details: () => ({ intendedRatePerSec: options.fixedRatePerSec, ...schedule.details() }),
  };
}

function writerBatch(options: WriterLoadOptions): LoadScenario {
  const target: Target = {
    opsPerSec: 50_000,
    basis: 'overall',
    statement: 'batches of 1,000 transfers: at least 50,000 transfers per second sustained (whole window), synchronous_commit on',
  };
  return {
    name: WRITER_BATCH,
    description: `${LOAD_BATCH_SIZE.toLocaleString('en-US')} LedgerWriter.submit calls at once, awaited with Promise.all, batch after batch on one ledger for the whole window (decide + encode + hash; with default writer options, appendsInFlightMax 2, each idle queue of 1,000 is cut into two fenced appends of 500, the second decided while the first is appended)`,
    target,
    latencyOf: `batch of ${LOAD_BATCH_SIZE.toLocaleString('en-US')} transfers`,
    peers: { rawCeiling: RAW_BATCH, ...(options.emmett === undefined ? {} : { emmett: EMMETT_BATCH }) },
    sampleBy: 'interval',
    series: true,
    async prepare(round) {
      const opened = await openFixtureWriter(options, `sustained-${roundLabel(round)}`, 'uniform');
      return {
        drive: batchLoop(
          LOAD_BATCH_SIZE,
          async (first, count) => {
            const submitted = new Array<Promise<CommandResult>>(count);
            for (let i = 0; i < count; i += 1) submitted[i] = opened.writer.submit(opened.next(first + i));
            return countFailed(await Promise.all(submitted), (error) => options.report(WRITER_BATCH, error));
          },
          (error) => options.report(WRITER_BATCH, error),
        ),
        finish: () => opened.writer.close(),
      };
    },
  };
}

function rawBatch(options: WriterLoadOptions, ring: readonly StoredEvent[]): LoadScenario {
  return {
    name: RAW_BATCH,
    description: `one autocommitted INSERT … SELECT FROM unnest(…) of ${LOAD_BATCH_SIZE.toLocaleString('en-US')} encoded transfer rows into a plain table (no keys, indexes, constraints, triggers or RLS), batch after batch: the raw ceiling`,
    target: undefined,
    latencyOf: `batch of ${LOAD_BATCH_SIZE.toLocaleString('en-US')} transfers`,
    sampleBy: 'interval',
    series: false,
    prepare(round) {
      const ledgerId = `raw-batch-${roundLabel(round)}`;
      return Promise.resolve({
        drive: batchLoop(
          LOAD_BATCH_SIZE,
          async (first, count) => {
            await insertRawRows(options.app, ledgerId, ring, first, count, first + 1);
            return 0;
          },
          (error) => options.report(RAW_BATCH, error),
        ),
      });
    },
  };
}

function emmettBatch(options: WriterLoadOptions, emmett: EmmettPeer, ring: readonly StoredEvent[]): LoadScenario {
  return {
    name: EMMETT_BATCH,
    description: `Emmett appendToStream of ${LOAD_BATCH_SIZE.toLocaleString('en-US')} TransferPosted events (same payloads) per call on one stream with expectedStreamVersion, call after call`,
    target: undefined,
    latencyOf: `batch of ${LOAD_BATCH_SIZE.toLocaleString('en-US')} transfers`,
    sampleBy: 'interval',
    series: false,
    prepare(round) {
      const stream = `transfers-batch-${roundLabel(round)}`;
      return Promise.resolve({
        drive: batchLoop(
          LOAD_BATCH_SIZE,
          async (first, count) => {
            await emmett.append(stream, ring, first, count, BigInt(first));
            return 0;
          },
          (error) => options.report(EMMETT_BATCH, error),
        ),
      });
    },
  };
}

function writerCallers(options: WriterLoadOptions, accounts: 'uniform' | 'hot'): LoadScenario {
  const name = accounts === 'hot' ? WRITER_HOT : WRITER_CALLERS;
  const target: Target =
    accounts === 'hot'
      ? {
          ratioTo: { scenario: WRITER_CALLERS, min: 0.8 },
          statement: 'hot account (every transfer touches one settlement account): at least 80 % of the uniform 64-caller rate in the same run',
        }
      : {
          opsPerSec: 15_000,
          latencyP99MsMax: 20,
          statement: '64 concurrent callers each sending one transfer at a time: at least 15,000 transfers per second with p99 latency ≤ 20 ms',
        };
  return {
    name,
    description:
      accounts === 'hot'
        ? `${options.callers} callers, each awaiting one LedgerWriter.submit before the next; every transfer moves money into or out of one shared settlement account (checked: debits must not exceed credits)`
        : `${options.callers} callers, each awaiting one LedgerWriter.submit before the next, between uniformly random accounts; the writer's group commit batches whatever is queued`,
    target,
    latencyOf: 'transfer',
    peers: accounts === 'hot' ? {} : { rawCeiling: RAW_CALLERS, ...(options.emmett === undefined ? {} : { emmett: EMMETT_CALLERS }) },
    sampleBy: 'window',
    series: false,
    async prepare(round): Promise<LoadRound> {
      const opened = await openFixtureWriter(options, `${accounts === 'hot' ? 'hot' : 'callers'}-${roundLabel(round)}`, accounts);
      return {
        drive: closedLoop(options.callers, (seq) => submitOne(opened.writer, opened.next(seq)), (error) => options.report(name, error)),
        finish: () => opened.writer.close(),
      };
    },
  };
}

function rawCallers(options: WriterLoadOptions, ring: readonly StoredEvent[]): LoadScenario {
  return {
    name: RAW_CALLERS,
    description: `${options.callers} callers, each awaiting one row before the next; the rows queue and go out as one autocommitted INSERT … unnest(…) per batch (≤ ${LOAD_BATCH_SIZE.toLocaleString('en-US')}, one statement in flight at a time; the writer keeps up to 2 appends in flight by default, a difference measured as within noise) into a plain table: the raw ceiling`,
    target: undefined,
    latencyOf: 'transfer',
    sampleBy: 'window',
    series: false,
    prepare(round) {
      const committer = new RawGroupCommitter(options.app, `raw-callers-${roundLabel(round)}`, ring);
      return Promise.resolve({
        drive: closedLoop(
          options.callers,
          async (seq) => {
            await committer.insert(seq);
            return true;
          },
          (error) => options.report(RAW_CALLERS, error),
        ),
      });
    },
  };
}

function emmettCallers(options: WriterLoadOptions, emmett: EmmettPeer, ring: readonly StoredEvent[]): LoadScenario {
  return {
    name: EMMETT_CALLERS,
    description: `${options.callers} callers, each awaiting one Emmett appendToStream of one TransferPosted event before the next, on one stream with expectedStreamVersion; appends to the stream are queued in process (FIFO), since concurrent appends at one expected version would all but one fail`,
    target: undefined,
    latencyOf: 'transfer',
    sampleBy: 'window',
    series: false,
    prepare(round) {
      const stream = `transfers-callers-${roundLabel(round)}`;
      let version = 0n;
      let tail: Promise<unknown> = Promise.resolve();
      return Promise.resolve({
        drive: closedLoop(
          options.callers,
          (seq) => {
            // One append at a time, each expecting the version the previous one left: the best a
            // single-stream Emmett application can do without wasted conflicts.
            const appended = tail.then(async () => {
              await emmett.append(stream, ring, seq, 1, version);
              version += 1n;
              return true;
            });
            tail = appended.catch(() => undefined);
            return appended;
          },
          (error) => options.report(EMMETT_CALLERS, error),
        ),
      });
    },
  };
}

/**
 * Group commit for the raw ceiling: rows queue, and whenever no insert is running the queue (up
 * to a batch) goes out as one statement, without deciding, encoding or RLS. It keeps one insert in
 * flight, where the writer keeps up to two appends in flight by default (`appendsInFlightMax` 2):
 * not quite the writer's policy. An interleaved comparison of this peer with one and with two
 * inserts in flight found no difference beyond noise, so the peer stays as it is.
 */
class RawGroupCommitter {
  readonly #pool: pg.Pool;
  readonly #ledgerId: string;
  readonly #ring: readonly StoredEvent[];
  #queue: { seq: number; resolve: () => void; reject: (error: unknown) => void }[] = [];
  #running = false;
  #version = 0;

  constructor(pool: pg.Pool, ledgerId: string, ring: readonly StoredEvent[]) {
    this.#pool = pool;
    this.#ledgerId = ledgerId;
    this.#ring = ring;
  }

  insert(seq: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ seq, resolve, reject });
      if (!this.#running) {
        this.#running = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, LOAD_BATCH_SIZE);
      const first = batch[0] as (typeof batch)[number];
      try {
        await insertRawRows(this.#pool, this.#ledgerId, this.#ring, first.seq, batch.length, this.#version + 1);
        this.#version += batch.length;
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
    this.#running = false;
  }
}

/** A writer on a fresh ledger with the fixture accounts opened and funded (untimed), and its transfer stream. */
async function openFixtureWriter(
  options: WriterLoadOptions,
  ledgerId: string,
  accounts: 'uniform' | 'hot',
): Promise<{ writer: LedgerWriter; next: (seq: number) => TransferCommand }> {
  const writer = await LedgerWriter.open({ store: options.store, tenantId: BENCH_TENANT_ID, ledgerId });
  try {
    const commands: LedgerCommand[] = accounts === 'hot' ? hotAccountFixtureCommands(options.accounts) : fixtureCommands(options.accounts);
    const results = await Promise.all(commands.map((command) => writer.submit(command)));
    const refused = results.find((result) => !result.ok);
    if (refused !== undefined) throw new Error(`writer fixture command refused: ${JSON.stringify(refused)}`);
  } catch (error) {
    await writer.close();
    throw error;
  }
  const accountIds = fixtureAccountIds(options.accounts);
  const next = accounts === 'hot' ? hotAccountTransferStream(accountIds, options.seed, 't-') : transferStream(accountIds, options.seed, 't-');
  return { writer, next };
}

async function submitOne(writer: LedgerWriter, command: TransferCommand): Promise<boolean> {
  const result = await writer.submit(command);
  if (!result.ok || result.duplicate) throw new Error(`transfer ${command.transferId} not applied: ${JSON.stringify(result)}`);
  return true;
}

function countFailed(results: readonly CommandResult[], report: (error: unknown) => void): number {
  let failed = 0;
  for (const result of results) if (!result.ok || result.duplicate) failed += 1;
  if (failed > 0) report(new Error(`${failed} of ${results.length} transfers not applied, e.g. ${JSON.stringify(results.find((r) => !r.ok || r.duplicate))}`));
  return failed;
}

/**
 * Encoded `TransferPosted` rows of the fixture's transfer stream, for the peers to cycle through:
 * enough that no batch repeats a row. Built once, untimed.
 */
export function encodedRing(accounts: number, seed: number): StoredEvent[] {
  const { state, accountIds } = buildFixtureLedger(accounts);
  const encoder = new ChainEncoder({ ledgerId: 'ring', state, streamVersion: 0 });
  const next = transferStream(accountIds, seed, 'ring-');
  const events: StoredEvent[] = [];
  for (let seq = 0; events.length < RING_ROWS; seq += 1) encoder.encode(next(seq), events);
  return events;
}
