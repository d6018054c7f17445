/**
 * What a projection keeps in memory between batches, per tenant, with one bound for all the
 * tenants together: `put` drops other tenants' entries, least recently used first, rather than
 * go over it. A runner serves up to 1,000 tenants, so a bound per tenant would bound nothing.
 *
 * An entry is out of the cache while its tenant's batch runs (`take` removes it), so that a
 * failed batch leaves nothing behind; only what is put back counts. Each call costs O(1) (one
 * Map lookup and insert) plus the entries it drops.
 */
export class TenantCaches<T> {
  readonly #max: number;
  /** In least recently put first order (a Map keeps insertion order). */
  readonly #entries = new Map<string, { readonly value: T; readonly size: number }>();
  #size = 0;

  /** @param max the most units (rows, heads) kept in all, over every tenant. */
  constructor(max: number) {
    this.#max = max;
  }

  /** Units held now, over every tenant. */
  get size(): number {
    return this.#size;
  }

  /** Removes and returns the tenant's entry, if any. */
  take(tenantId: string): T | undefined {
    const entry = this.#entries.get(tenantId);
    if (entry === undefined) return undefined;
    this.#entries.delete(tenantId);
    this.#size -= entry.size;
    return entry.value;
  }

  /**
   * Keeps `value` (of `size` units) as the tenant's entry, the most recently used: drops other
   * tenants' entries, least recently used first, until it fits. An entry larger than the whole
   * bound is not kept.
   */
  put(tenantId: string, value: T, size: number): void {
    this.take(tenantId);
    if (size > this.#max) return;
    while (this.#size + size > this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.take(oldest.value);
    }
    this.#entries.set(tenantId, { value, size });
    this.#size += size;
  }
}
