/** PostgreSQL names Ledgerkit creates or accepts: lower-case, unquoted-safe, at most 63 bytes. */
export const SQL_NAME_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

/** Throws unless `name` matches {@link SQL_NAME_PATTERN}; returns it double-quoted. */
export function quoteName(name: string, what: string): string {
  if (!SQL_NAME_PATTERN.test(name)) {
    throw new TypeError(`${what} ${JSON.stringify(name)} must match ${SQL_NAME_PATTERN.source}`);
  }
  return `"${name}"`;
}

/** `schema.table`, each part checked and quoted. */
export function qualifiedName(table: TableName): string {
  return `${quoteName(table.schema, 'schema name')}.${quoteName(table.table, 'table name')}`;
}

/** A table, by schema and name. */
export interface TableName {
  /** Schema name, matching {@link SQL_NAME_PATTERN}. */
  readonly schema: string;
  /** Table name, matching {@link SQL_NAME_PATTERN}. */
  readonly table: string;
}

/** A string literal; safe because `standard_conforming_strings` is on (the default since 9.1). */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new TypeError('a SQL literal cannot hold a NUL character');
  return `'${value.replaceAll("'", "''")}'`;
}
