/**
 * The Emmett PostgreSQL event store (`@event-driven-io/emmett-postgresql`) as a peer: it appends
 * the same transfers — the same encoded `TransferPosted` payloads, with the same envelope fields as
 * metadata — to one stream with an expected stream version, as our writer appends to one fenced
 * ledger stream. Emmett's `appendToStream` is one transaction per call (`BEGIN`,
 * `SELECT emt_append_to_stream(…)`, `COMMIT`): it has no group commit, so the peer gets the same
 * callers and the batches are whatever each call carries.
 *
 * Its driver sets node-postgres' global type parsers (int8 → BigInt, json/jsonb → its own
 * parser) when its pool is created; the benchmark's own pools carry their own parsers (see
 * `postgres-database.ts`), so our store reads exactly what it reads in production.
 */
import { createRequire } from 'node:module';
import type { StoredEvent } from '@ledgerkit/ledger-core';
import pg from 'pg';

/** What the peer appends for one transfer. */
interface EmmettTransferEvent {
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly metadata: Record<string, unknown>;
}

/** An open Emmett store on the benchmark's database. */
export interface EmmettPeer {
  /** `@event-driven-io/emmett-postgresql`'s version. */
  readonly version: string;
  /** `synchronous_commit` as Emmett's connections see it. */
  readonly synchronousCommit: string;
  /**
   * Appends `count` transfers (payloads taken round-robin from `events`, from index `from`) to
   * `stream`, expecting it at `expectedVersion` (0 = the stream does not exist yet). Rejects when
   * the version does not match.
   */
  append(stream: string, events: readonly StoredEvent[], from: number, count: number, expectedVersion: bigint): Promise<void>;
  close(): Promise<void>;
}

/**
 * Loads Emmett, creates its schema on the database at `connectionString` (a role allowed to
 * create tables there) and checks that its commits are synchronous. Throws when the package cannot
 * be loaded or its schema cannot be created; the caller reports that and goes on without it.
 */
export async function openEmmettPeer(connectionString: string): Promise<EmmettPeer> {
  const emmett = await import('@event-driven-io/emmett-postgresql');
  const store = emmett.getPostgreSQLEventStore(connectionString, { schema: { autoMigration: 'None' } });
  try {
    await store.schema.migrate();
    const synchronousCommit = await readSynchronousCommit(connectionString);
    return {
      version: emmettVersion(),
      synchronousCommit,
      async append(stream, events, from, count, expectedVersion) {
        const batch = new Array<EmmettTransferEvent>(count);
        for (let i = 0; i < count; i += 1) batch[i] = toEmmettEvent(events[(from + i) % events.length] as StoredEvent);
        const result = await store.appendToStream(stream, batch, { expectedStreamVersion: expectedVersion });
        if (result.nextExpectedStreamVersion !== expectedVersion + BigInt(count)) {
          throw new Error(`Emmett appended to version ${String(result.nextExpectedStreamVersion)}, expected ${String(expectedVersion + BigInt(count))}`);
        }
      },
      close: () => store.close(),
    };
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
}

/** The payload our store writes in `data`, and the envelope it writes in its own columns as metadata. */
function toEmmettEvent(event: StoredEvent): EmmettTransferEvent {
  return {
    type: event.type,
    data: event.data,
    metadata: {
      eventId: event.eventId,
      recordedAt: event.recordedAt,
      effectiveAt: event.effectiveAt,
      previousHash: event.previousHash,
      hash: event.hash,
    },
  };
}

async function readSynchronousCommit(connectionString: string): Promise<string> {
  const client = new pg.Client({ connectionString });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ value: string }>(`SELECT current_setting('synchronous_commit') AS value`);
    return rows[0]?.value ?? 'unknown';
  } finally {
    await client.end().catch(() => undefined);
  }
}

function emmettVersion(): string {
  try {
    // Its exports do not include package.json; resolve the entry point and walk up from it.
    const entry = createRequire(import.meta.url).resolve('@event-driven-io/emmett-postgresql');
    const manifest = createRequire(entry)('../package.json') as { version?: unknown };
    return typeof manifest.version === 'string' ? manifest.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
