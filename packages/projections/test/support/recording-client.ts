import type { PoolClient } from 'pg';
import type { ClientPool } from '@ledgerkit/tenant-rls';

type Query = (...args: unknown[]) => unknown;

/** `client` with its `query` replaced by `query(original, args)`; everything else passes through. */
function withQuery(client: PoolClient, query: (original: Query, args: unknown[]) => unknown): PoolClient {
  return new Proxy(client, {
    get(target, property) {
      if (property === 'query') return (...args: unknown[]) => query((...rest: unknown[]) => (target.query as Query).apply(target, rest), args);
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...rest: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** `client` with every statement text it is sent pushed onto `statements`; everything else passes through. */
export function recordingClient(client: PoolClient, statements: string[]): PoolClient {
  return withQuery(client, (original, args) => {
    const first = args[0];
    statements.push(typeof first === 'string' ? first : String((first as { text?: unknown }).text));
    return original(...args);
  });
}

/** What {@link rowCountingPool} has seen: statements sent and rows received over its connections. */
export interface RowCount {
  statements: number;
  rows: number;
}

/**
 * A pool whose connections add every statement they are sent, and every row they receive back,
 * to `count`: for a test that bounds what a call carries into Node.
 */
export function rowCountingPool(pool: ClientPool, count: RowCount): ClientPool {
  return {
    connect: async () =>
      withQuery(await pool.connect(), async (original, args) => {
        count.statements += 1;
        const result = (await original(...args)) as { rows?: unknown[] } | undefined;
        count.rows += result?.rows?.length ?? 0;
        return result;
      }),
  };
}
