/** PostgreSQL names Ledgerkit creates or accepts: lower-case, unquoted-safe, at most 63 bytes. */
export const SQL_NAME_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Throws a `TypeError` unless `name` is a string matching {@link SQL_NAME_PATTERN}; returns it
 * double-quoted. A value that is not a string (`undefined`, `null`, an array...) is refused,
 * never turned into a name by coercion (`undefined` would otherwise become the role `"undefined"`).
 */
export function quoteName(name: string, what: string): string {
  if (typeof name !== 'string' || !SQL_NAME_PATTERN.test(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name) : `(a value of type ${kindOf(name)})`;
    throw new TypeError(`${what} ${shown} must be a string matching ${SQL_NAME_PATTERN.source}`);
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

/**
 * A string literal; safe because `standard_conforming_strings` is on (the default since 9.1).
 * Throws a `TypeError` for a value that is not a string or that holds a NUL character.
 */
export function quoteLiteral(value: string): string {
  if (typeof value !== 'string') throw new TypeError(`a SQL literal must be a string, got a value of type ${kindOf(value)}`);
  if (value.includes('\0')) throw new TypeError('a SQL literal cannot hold a NUL character');
  return `'${value.replaceAll("'", "''")}'`;
}

/** `typeof`, with `null` and arrays named, for error messages. */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'array' : typeof value;
}

/**
 * `text` between dollar quotes whose tag (`$<base>$`, else `$<base>_1$`, `$<base>_2$`, ...)
 * occurs nowhere in it, nor across its end into the closing tag, so nothing in `text` can end
 * the quote early. `base` must match {@link SQL_NAME_PATTERN}.
 */
export function dollarQuoted(text: string, base: string): string {
  for (let n = 0; ; n += 1) {
    const tag = n === 0 ? `$${base}$` : `$${base}_${n}$`;
    if (`${text}${tag}`.indexOf(tag) === text.length) return `${tag}${text}${tag}`;
  }
}
