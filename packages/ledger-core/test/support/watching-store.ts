import type { EventStore, ReadStreamRequest } from '@ledgerkit/ledger-core';

/** A store that notes whether a stream read started at version 1 with more than one event (a replay). */
export function watching(store: EventStore): { readonly store: EventStore; readonly replayed: () => boolean } {
  let replayed = false;
  const proxy = new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (property === 'readStream') {
        return (request: ReadStreamRequest) => {
          if ((request.fromVersion ?? 1) <= 1 && request.limit !== 1) replayed = true;
          return target.readStream(request);
        };
      }
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: proxy, replayed: () => replayed };
}
