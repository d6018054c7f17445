import { UpcasterRegistry, type JsonObject } from '@ledgerkit/ledger-core';

/** What every read through {@link RefusingRegistry} throws. */
export const REFUSED_MESSAGE = "refused by the test's upcaster registry";

/** A registry that refuses every event it is asked to read: the audit fails if it reads with it. */
class RefusingRegistry extends UpcasterRegistry {
  override upcast(): JsonObject | undefined {
    throw new Error(REFUSED_MESSAGE);
  }
}

/** A module for `ledgerkit-audit --upcasters`, its registry as the default export. */
export default new RefusingRegistry();
