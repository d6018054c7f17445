/** Longest tenant id. */
export const TENANT_ID_LENGTH_MAX = 128;

/**
 * What a tenant id may look like: 1-128 characters of `A-Z a-z 0-9 . _ : -`, starting with a
 * letter or digit; the same rule as every id in `@ledgerkit/ledger-core`. No quote, space,
 * backslash or semicolon can pass, so a tenant id never changes the meaning of SQL.
 */
export const TENANT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** A tenant id that does not match {@link TENANT_ID_PATTERN}. Nothing was sent to the database. */
export class InvalidTenantIdError extends Error {
  /** Stable code, safe to switch on. */
  readonly code = 'invalid_tenant_id';

  constructor(tenantId: unknown) {
    const shown = typeof tenantId === 'string' ? JSON.stringify(tenantId.slice(0, 40)) : typeof tenantId;
    super(`invalid tenant id ${shown}: must be 1-${TENANT_ID_LENGTH_MAX} characters of A-Z a-z 0-9 . _ : - starting with a letter or digit`);
    this.name = 'InvalidTenantIdError';
  }
}

/** Whether `value` is a well-formed tenant id. */
export function isTenantId(value: unknown): value is string {
  return typeof value === 'string' && TENANT_ID_PATTERN.test(value);
}

/** Returns `value` if it is a well-formed tenant id; throws {@link InvalidTenantIdError} otherwise. */
export function assertTenantId(value: unknown): string {
  if (!isTenantId(value)) throw new InvalidTenantIdError(value);
  return value;
}
