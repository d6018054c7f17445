import { UpcasterRegistry, type JsonObject } from '@ledgerkit/ledger-core';

/**
 * A module for `ledgerkit-audit --upcasters`: a registry of a user's own steps, as the named
 * export `upcasters`.
 */
export const upcasters = new UpcasterRegistry().register('AccountFrozen', 1, (data: JsonObject) => ({ ...data, reason: data['reason'] ?? 'unspecified' }));
