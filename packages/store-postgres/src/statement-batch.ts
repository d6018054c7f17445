/**
 * Several statements in one round trip and one transaction, on node-postgres' extended protocol:
 * Parse, Bind, Describe and Execute for each statement, then a single Sync, written together.
 * PostgreSQL runs everything before a Sync in one implicit transaction (committed at the Sync,
 * rolled back if any statement fails; the statements after a failed one are not run), so a batch
 * needs no BEGIN or COMMIT of its own. node-postgres' `Query` sends a Sync after every statement,
 * which makes each one a round trip and, outside BEGIN … COMMIT, a transaction of its own.
 *
 * Statements are unnamed (parsed each time, as node-postgres does for a query without a name).
 * No statement may depend on another's result: they are all on the wire before the first answers.
 */
import { WriterFailedError } from '@ledgerkit/ledger-core';
import pg from 'pg';
import type { Connection, FieldDef } from 'pg';

/** One statement of a batch. */
export interface BatchStatement {
  readonly text: string;
  readonly values: readonly unknown[];
}

/** What one statement of a batch returned. */
export interface BatchResult {
  /** Rows, parsed with the client's type parsers (its `types` option, else the global ones), as `client.query` parses them. */
  readonly rows: Record<string, unknown>[];
  /** Rows the statement affected or returned (its command tag), or `null` when the tag has none. */
  readonly rowCount: number | null;
}

/** Most statements in one batch. */
export const BATCH_STATEMENTS_MAX = 64;

/**
 * A statement batch (or a single autocommitted statement: the append of a store without an inline
 * projection) ran and **committed**, but a row of its answer could not be parsed on the client (a
 * type parser that throws, such as one a user installed): its results are lost, its effects are
 * not. For an append, its events were written though the call failed, so it must never be taken
 * for an append that wrote nothing. A {@link WriterFailedError} (code
 * `writer_failed`, retriable): the writer answers its commands "may have been applied", and a
 * retry with the same ids answers with the original outcome (`duplicate: true`). `cause` is the
 * parser's error.
 */
export class BatchCommittedUnreadableError extends WriterFailedError {
  /** Index, in the batch, of the statement whose row could not be parsed. */
  readonly statementIndex: number;
  constructor(statementIndex: number, cause: unknown) {
    super(`the statement batch committed, but a row of statement ${statementIndex}'s answer could not be parsed: ${cause instanceof Error ? cause.message : String(cause)}`, cause);
    this.statementIndex = statementIndex;
  }
}

/** node-postgres' `Result` (exported at runtime, not in its type declarations). */
interface PgResult {
  rows: Record<string, unknown>[];
  rowCount: number | null;
  addFields(fields: FieldDef[]): void;
  parseRow(values: unknown[]): Record<string, unknown>;
  addRow(row: Record<string, unknown>): void;
  addCommandComplete(message: unknown): void;
}
/** Where a `Result` finds the parser of a column's type: the client, as for its own queries. */
interface TypeParsers {
  getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown;
}
interface PgRuntime {
  readonly Result: new (rowMode: undefined, types: TypeParsers) => PgResult;
  readonly utils: { prepareValue(value: unknown): unknown };
}
const runtime = pg as unknown as PgRuntime;

/** The protocol calls of node-postgres' `Connection` a batch uses (typed loosely upstream). */
interface ProtocolConnection {
  readonly stream: { cork?: () => void; uncork?: () => void };
  parse(query: { text: string; name?: string }): void;
  bind(config: { values: readonly unknown[] }): void;
  describe(message: { type: 'P'; name: string }): void;
  execute(config: { portal: string; rows: number }): void;
  sync(): void;
  sendCopyFail(message: string): void;
}

/**
 * A node-postgres submittable (`client.query(batch)`) that sends its statements as one
 * transaction in one round trip; `done` settles with each statement's result, in order, or
 * with the first statement's error. Use {@link runBatch}.
 */
class StatementBatch {
  readonly #statements: readonly BatchStatement[];
  readonly #results: PgResult[];
  #current = 0;
  #settled = false;
  /** The first row that could not be parsed, kept until the server says how the batch ended. */
  #unreadable: { readonly statementIndex: number; readonly error: unknown } | undefined;
  #resolve: (results: BatchResult[]) => void = () => undefined;
  #reject: (error: unknown) => void = () => undefined;
  readonly done: Promise<BatchResult[]>;
  /** node-postgres calls it (and may wrap it, e.g. for `query_timeout`). */
  callback: (error: Error | null, results?: BatchResult[]) => void;

  constructor(statements: readonly BatchStatement[], types: TypeParsers) {
    this.#statements = statements;
    this.#results = statements.map(() => new runtime.Result(undefined, types));
    this.done = new Promise<BatchResult[]>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.callback = (error, results) => {
      if (error !== null) this.#reject(error);
      else this.#resolve(results ?? []);
    };
  }

  submit(connection: Connection): Error | null {
    // Every value is converted before anything is written: a value node-postgres cannot send
    // fails the batch with nothing on the wire (a half-written batch would commit its first part).
    let prepared: unknown[][];
    try {
      prepared = this.#statements.map((statement) => statement.values.map((value) => runtime.utils.prepareValue(value)));
    } catch (error) {
      // node-postgres hands it back through handleError.
      return error instanceof Error ? error : new Error(String(error));
    }
    const wire = connection as unknown as ProtocolConnection;
    wire.stream.cork?.();
    try {
      this.#statements.forEach((statement, i) => {
        wire.parse({ text: statement.text });
        wire.bind({ values: prepared[i] as unknown[] });
        wire.describe({ type: 'P', name: '' });
        wire.execute({ portal: '', rows: 0 });
      });
      wire.sync();
    } finally {
      wire.stream.uncork?.();
    }
    return null;
  }

  handleRowDescription(message: { fields: FieldDef[] }): void {
    this.#results[this.#current]?.addFields(message.fields);
  }

  handleDataRow(message: { fields: unknown[] }): void {
    const result = this.#results[this.#current];
    if (result === undefined || this.#settled || this.#unreadable !== undefined) return;
    try {
      result.addRow(result.parseRow(message.fields));
    } catch (error) {
      // A value the client cannot parse: the server runs the batch all the same, and whether it
      // commits is known only at its end (a later statement may still fail and roll it back).
      this.#unreadable = { statementIndex: this.#current, error };
    }
  }

  handleCommandComplete(message: unknown): void {
    this.#results[this.#current]?.addCommandComplete(message);
    this.#current += 1;
  }

  handleEmptyQuery(): void {
    this.#current += 1;
  }

  handlePortalSuspended(): void {
    // Never asked for (every Execute takes all rows).
  }

  handleCopyInResponse(connection: Connection): void {
    (connection as unknown as ProtocolConnection).sendCopyFail('COPY is not supported in a statement batch');
  }

  handleCopyData(): void {
    // A COPY TO in a batch: its data is not collected.
  }

  handleError(error: Error): void {
    this.#fail(error);
  }

  handleReadyForQuery(): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#current !== this.#statements.length) {
      this.callback(new Error(`statement batch: ${this.#current} of ${this.#statements.length} statements answered`));
      return;
    }
    // Every statement ran and no error came before the Sync's answer: the batch committed.
    if (this.#unreadable !== undefined) {
      this.callback(new BatchCommittedUnreadableError(this.#unreadable.statementIndex, this.#unreadable.error));
      return;
    }
    this.callback(null, this.#results.map((result) => ({ rows: result.rows, rowCount: result.rowCount })));
  }

  #fail(error: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    this.callback(error);
  }
}

/**
 * Runs `statements` on `client` as one transaction in one round trip (see the module comment)
 * and returns each one's result, in order, its rows parsed with the client's type parsers. It
 * rejects with:
 * - the first statement's error (or a value that could not be sent): none of them took effect;
 * - {@link BatchCommittedUnreadableError}, once the server has answered the whole batch, when
 *   every statement ran and the batch **committed** but a row of the answer could not be parsed:
 *   all of them took effect;
 * - a lost connection's error: whether the batch committed is unknown.
 *
 * The client must not be inside a transaction block of its own: there, the statements would join
 * it instead of committing at the end of the batch.
 */
export async function runBatch(client: pg.ClientBase, statements: readonly BatchStatement[]): Promise<BatchResult[]> {
  if (statements.length === 0) return [];
  if (statements.length > BATCH_STATEMENTS_MAX) throw new RangeError(`a statement batch holds at most ${BATCH_STATEMENTS_MAX} statements, got ${statements.length}`);
  const batch = new StatementBatch(statements, { getTypeParser: (oid, format) => client.getTypeParser(oid, format) });
  client.query(batch);
  return batch.done;
}

/**
 * Runs one statement on `client` as `client.query` runs it (the same messages, one round trip;
 * outside a transaction block it commits on its own) and returns its rows, parsed with the
 * client's type parsers. It rejects as `client.query` does, except where the server completed the
 * statement without an error but a value of its answer could not be parsed: then, as
 * {@link runBatch} does, with {@link BatchCommittedUnreadableError} (statement 0) instead of the
 * parser's error, for the statement took effect.
 */
export async function runStatement(client: pg.ClientBase, statement: BatchStatement): Promise<Record<string, unknown>[]> {
  let unreadable: { readonly error: unknown } | undefined;
  // The client's parsers, each made to note its error instead of throwing it: node-postgres would
  // reject with a parser's error whatever the server answered after the row (an error, a lost
  // connection). This way the query settles as the server's answer says, and resolves only when
  // the statement completed.
  const getTypeParser = (oid: number, format?: 'text' | 'binary') => {
    const parse = client.getTypeParser(oid, format);
    return (value: string): unknown => {
      try {
        return parse(value);
      } catch (error) {
        unreadable ??= { error };
        return undefined;
      }
    };
  };
  // A query's `types` also reach its Parse message as parameter types: an object has no `length`,
  // so none are sent, as without it (a test compares the bytes).
  const types = { getTypeParser: getTypeParser as pg.CustomTypesConfig['getTypeParser'] };
  // node-postgres does not change the values it is given.
  const { rows } = await client.query<Record<string, unknown>>({ text: statement.text, values: statement.values as unknown[], types });
  if (unreadable !== undefined) throw new BatchCommittedUnreadableError(0, unreadable.error);
  return rows;
}
