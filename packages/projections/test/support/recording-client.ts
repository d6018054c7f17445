import type { PoolClient } from 'pg';

/** `client` with every statement text it is sent pushed onto `statements`; everything else passes through. */
export function recordingClient(client: PoolClient, statements: string[]): PoolClient {
  return new Proxy(client, {
    get(target, property) {
      if (property === 'query') {
        return (...args: unknown[]) => {
          const first = args[0];
          statements.push(typeof first === 'string' ? first : String((first as { text?: unknown }).text));
          return (target.query as (...rest: unknown[]) => unknown).apply(target, args);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...rest: unknown[]) => unknown).bind(target) : value;
    },
  });
}
