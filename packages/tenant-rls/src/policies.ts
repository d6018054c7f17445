import { dollarQuoted, qualifiedName, quoteName, type TableName } from './sql.js';
import { TENANT_SETTING } from './with-tenant.js';
import { RETENTION_SETTING } from './retention.js';

/** SQLSTATE of the error raised by an UPDATE, DELETE or TRUNCATE of an append-only table. */
export const APPEND_ONLY_SQLSTATE = 'LK003';

/**
 * The predicate every tenant policy uses: NULL (so no row) when no tenant is set. `NULLIF` makes
 * an empty setting count as none: `current_setting(..., true)` is NULL only on a connection that
 * never set the tenant; once a transaction-local `set_config` has ended, the session's value is
 * `''`, which would otherwise match (and let through) rows whose `tenant_id` is `''`. Still one
 * stable expression, so an index on `tenant_id` serves it.
 */
export const TENANT_PREDICATE_SQL = `tenant_id = NULLIF(pg_catalog.current_setting('${TENANT_SETTING}', true), '')`;

/**
 * The predicate tenant policies had before {@link TENANT_PREDICATE_SQL} (no `NULLIF`: an empty
 * setting matched rows whose `tenant_id` is `''`). Frozen, for the migrations applied with it,
 * which must do the same on every database; `tenantPolicyUpdateSql` replaces it.
 */
export const TENANT_PREDICATE_SQL_V1 = `tenant_id = pg_catalog.current_setting('${TENANT_SETTING}', true)`;

/** The name of the policy {@link tenantIsolationSql} creates. */
const POLICY_NAME = 'tenant_isolation';

/**
 * SQL that enables and forces row-level security on a table with a `tenant_id` column and adds
 * the policy `tenant_isolation`: every command sees, and may write, only rows of the tenant
 * set by {@link withTenant}. `FORCE` makes the owner subject to it too; with no tenant set a
 * query sees and changes nothing (fail closed). Run it as the table's owner.
 */
export function tenantIsolationSql(table: TableName): string {
  return isolationSql(table, TENANT_PREDICATE_SQL);
}

/**
 * {@link tenantIsolationSql} as releases before {@link TENANT_PREDICATE_SQL} made it, with
 * {@link TENANT_PREDICATE_SQL_V1}. Frozen: for migrations already applied with it, which must do
 * the same on every database; a later migration brings the policy up to date with
 * {@link tenantPolicyUpdateSql}. New tables use {@link tenantIsolationSql}.
 */
export function tenantIsolationSqlV1(table: TableName): string {
  return isolationSql(table, TENANT_PREDICATE_SQL_V1);
}

/** Row-level security, enabled and forced, with the policy `tenant_isolation` on `predicate`. */
function isolationSql(table: TableName, predicate: string): string {
  const name = qualifiedName(table);
  return [
    `ALTER TABLE ${name} ENABLE ROW LEVEL SECURITY;`,
    `ALTER TABLE ${name} FORCE ROW LEVEL SECURITY;`,
    `CREATE POLICY ${POLICY_NAME} ON ${name} AS PERMISSIVE FOR ALL USING (${predicate}) WITH CHECK (${predicate});`,
  ].join('\n');
}

/**
 * SQL that brings the policy `tenant_isolation` of a table made by {@link tenantIsolationSql}
 * (with any earlier release) to the current {@link TENANT_PREDICATE_SQL}: `ALTER POLICY`, for a
 * migration of a table created before. Catalog only (no rewrite, no scan), under a short
 * `ACCESS EXCLUSIVE` lock on the table. Run it as the table's owner.
 */
export function tenantPolicyUpdateSql(table: TableName): string {
  return `ALTER POLICY ${POLICY_NAME} ON ${qualifiedName(table)} USING (${TENANT_PREDICATE_SQL}) WITH CHECK (${TENANT_PREDICATE_SQL});`;
}

/**
 * SQL that creates (or replaces) the trigger function `<schema>.reject_append_only_change()`.
 * It rejects every UPDATE and TRUNCATE, and every DELETE except the retention path: the
 * current user is the table's owner (after `SET ROLE`) and has set {@link RETENTION_SETTING}
 * to `on` for the transaction (see `withRetention`). Superusers get no exception either.
 */
export function appendOnlyFunctionSql(schema: string): string {
  const fn = `${quoteName(schema, 'schema name')}.reject_append_only_change`;
  return `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $reject$
BEGIN
  IF TG_OP = 'DELETE'
     AND current_setting('${RETENTION_SETTING}', true) = 'on'
     AND (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID) = (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'ledgerkit: % on %.% is not allowed: the table is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = '${APPEND_ONLY_SQLSTATE}',
          HINT = 'retention deletes run as the table owner with ${RETENTION_SETTING} = on (withRetention)';
END
$reject$;`;
}

/**
 * SQL that makes a table append-only with the function of {@link appendOnlyFunctionSql} (which
 * must exist in `functionSchema`): a row trigger before UPDATE or DELETE and a statement
 * trigger before TRUNCATE, which row triggers would not see.
 */
export function appendOnlySql(table: TableName, functionSchema: string = table.schema): string {
  const name = qualifiedName(table);
  const fn = `${quoteName(functionSchema, 'schema name')}.reject_append_only_change()`;
  return [
    `CREATE TRIGGER append_only_rows BEFORE UPDATE OR DELETE ON ${name} FOR EACH ROW EXECUTE FUNCTION ${fn};`,
    `CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON ${name} FOR EACH STATEMENT EXECUTE FUNCTION ${fn};`,
  ].join('\n');
}

/** A function made by {@link tenantScopedFunctionSql}. */
export interface TenantScopedFunction {
  /** Schema and name of the function, each matching `SQL_NAME_PATTERN`. */
  readonly schema: string;
  readonly name: string;
  /**
   * The arguments after `p_tenant_id text`, as SQL (`''` for none): input arguments only (no
   * `OUT`, `INOUT` or `VARIADIC`; return columns go in `returns: 'TABLE (...)'`), with no
   * comments, dollar quotes or backslashes, so that they can be counted.
   */
  readonly args: string;
  /** The return type, as SQL (`SETOF my.table`, `TABLE (...)`, `void`, `bigint`, ...); not `SETOF record`. */
  readonly returns: string;
  /**
   * The statements run with the tenant set; `p_tenant_id` holds it. They may `RETURN` at any
   * point (a scalar function must). `v_previous` holds the setting they start with.
   */
  readonly body: string;
  /** Settings in force while the function runs (its SET clauses), e.g. `{ enable_bitmapscan: 'off' }`. */
  readonly settings?: Readonly<Record<string, string>>;
  /**
   * Refuse a call whose `p_tenant_id` is not the tenant the caller's transaction has set already
   * (a non-empty setting), with SQLSTATE `42501` and the message `<name>: tenant <id> is not the
   * tenant set for this transaction`, as the store's `append_events` does. Default false: the
   * function runs as `p_tenant_id` and puts the caller's tenant back (what functions made by
   * earlier releases do, and applied migrations must keep making).
   */
  readonly refuseOtherTenant?: boolean;
}

/** Names and values a SET clause of {@link tenantScopedFunctionSql} accepts. */
const SETTING_NAME = /^[a-z_][a-z0-9_.]{0,62}$/;
const SETTING_VALUE = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * SQL that creates (or replaces) a PL/pgSQL function `schema.name(p_tenant_id text, ...)` that
 * sets the tenant for its transaction (as {@link withTenant} does), runs `body` as the caller
 * (SECURITY INVOKER, so the tenant policies apply), and then puts the caller's setting back. So
 * one autocommitted statement reads or writes as one tenant, in one round trip, and a call
 * inside a longer transaction leaves it as it was. Grant EXECUTE separately.
 *
 * The setting is put back however the body ends. A body that runs to its end (a set-returning
 * one that only uses `RETURN QUERY` and `RETURN NEXT`, or a `void` one with no `RETURN`) is
 * followed by the restore directly. A body that may leave early (any other `RETURN`, which a
 * scalar function must have) runs one call down: the function sets the tenant, calls itself with
 * the same arguments, keeps what that returns (the value, or the rows), puts the caller's setting
 * back and returns it; the inner call finds the tenant set and runs the body. If the body raises,
 * PostgreSQL undoes the setting with the failed statement (or the savepoint rolled back to), as
 * it undoes every `SET LOCAL`.
 *
 * With `refuseOtherTenant`, a call inside a transaction already set to another tenant is refused
 * (SQLSTATE `42501`) rather than run as `p_tenant_id`: code that set one tenant cannot read or
 * write another's rows through the function by passing its id.
 *
 * Throws a `TypeError` for a name, setting, argument list or return type it cannot use safely.
 */
export function tenantScopedFunctionSql(fn: TenantScopedFunction): string {
  const name = `${quoteName(fn.schema, 'schema name')}.${quoteName(fn.name, 'function name')}`;
  const settings = Object.entries(fn.settings ?? {}).map(([setting, value]) => {
    if (!SETTING_NAME.test(setting) || typeof value !== 'string' || !SETTING_VALUE.test(value)) {
      throw new TypeError(`setting ${JSON.stringify(setting)} = ${JSON.stringify(value)} is not a plain name and value`);
    }
    return ` SET ${setting} = ${value}`;
  });
  if (typeof fn.returns !== 'string' || typeof fn.body !== 'string') throw new TypeError('returns and body must be strings of SQL');
  const argCount = countArguments(fn.args);
  const returns = fn.returns.trim();
  if (/^setof\s+record$/i.test(returns)) throw new TypeError('returns: SETOF record cannot be passed on without a column list; use TABLE (...)');
  const args = argCount === 0 ? '' : `, ${fn.args}`;
  const kind = /^setof\s/i.test(returns) || /^table\s*\(/i.test(returns) ? 'set' : /^void$/i.test(returns) ? 'void' : 'value';
  // Only a RETURN that ends the function early needs the call one level down; RETURN QUERY and
  // RETURN NEXT add rows and go on (RETURNING, an INSERT's clause, is another word).
  const leavesEarly = kind === 'value' || /\bRETURN\b(?!\s+(QUERY|NEXT)\b)/i.test(fn.body);
  let entry = '';
  if (leavesEarly) {
    // The same function again, with every argument as it came ($1 is p_tenant_id).
    const again = `${name}(${Array.from({ length: argCount + 1 }, (_, index) => `$${index + 1}`).join(', ')})`;
    const scoped = {
      set: `RETURN QUERY SELECT * FROM ${again};\n    PERFORM set_config('${TENANT_SETTING}', v_previous, true);\n    RETURN;`,
      void: `PERFORM ${again};\n    PERFORM set_config('${TENANT_SETTING}', v_previous, true);\n    RETURN;`,
      value: `v_scoped_result := ${again};\n    PERFORM set_config('${TENANT_SETTING}', v_previous, true);\n    RETURN v_scoped_result;`,
    }[kind];
    entry = `
  IF v_previous IS DISTINCT FROM coalesce(p_tenant_id, '') THEN
    -- Set the tenant and run the body one call down, so that whatever it returns, and however
    -- early, comes back here and the caller's setting is put back before it is returned.
    PERFORM set_config('${TENANT_SETTING}', coalesce(p_tenant_id, ''), true);
    ${scoped}
  END IF;`;
  } else {
    entry = `
  PERFORM set_config('${TENANT_SETTING}', p_tenant_id, true);`;
  }
  const code = `
DECLARE
  v_previous text := coalesce(current_setting('${TENANT_SETTING}', true), '');${kind === 'value' && leavesEarly ? `\n  v_scoped_result ${returns};` : ''}
BEGIN${fn.refuseOtherTenant === true ? otherTenantRefusal(fn.name) : ''}${entry}
  ${fn.body}
  PERFORM set_config('${TENANT_SETTING}', v_previous, true);
END
`;
  return `CREATE OR REPLACE FUNCTION ${name}(p_tenant_id text${args}) RETURNS ${returns}
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp${settings.join('')} AS ${dollarQuoted(code, 'tenant_fn')};`;
}

/**
 * The check, first in a function of {@link tenantScopedFunctionSql} with `refuseOtherTenant`, that
 * refuses a tenant argument other than the tenant the caller's transaction has set. `name` is a
 * checked SQL name (no quote), so it may go into the message's literal as it is.
 */
function otherTenantRefusal(name: string): string {
  return `
  IF v_previous <> '' AND p_tenant_id IS DISTINCT FROM v_previous THEN
    RAISE EXCEPTION '${name}: tenant % is not the tenant set for this transaction', p_tenant_id USING ERRCODE = '42501';
  END IF;`;
}

/**
 * How many arguments an argument list declares: its commas outside parentheses, brackets and
 * quotes, plus one (0 for an empty list). Throws a `TypeError` for what it cannot count safely
 * (comments, dollar quotes, backslashes, an unbalanced bracket or quote) and for `OUT`, `INOUT`
 * and `VARIADIC` arguments, which a call does not pass on one for one.
 */
function countArguments(args: unknown): number {
  if (typeof args !== 'string') throw new TypeError('args must be a string of SQL');
  if (args.trim() === '') return 0;
  if (/--|\/\*|\$|\\/.test(args)) throw new TypeError(`args ${JSON.stringify(args)} must not hold comments, dollar quotes or backslashes`);
  const parts: string[] = [];
  let depth = 0;
  let quote: "'" | '"' | undefined;
  let start = 0;
  for (let i = 0; i < args.length; i += 1) {
    const c = args[i];
    if (quote !== undefined) {
      // A doubled quote inside a quoted text is one quote character; the pair is skipped.
      if (c === quote) {
        if (args[i + 1] === quote) i += 1;
        else quote = undefined;
      }
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === '(' || c === '[') {
      depth += 1;
    } else if (c === ')' || c === ']') {
      depth -= 1;
      if (depth < 0) break;
    } else if (c === ',' && depth === 0) {
      parts.push(args.slice(start, i));
      start = i + 1;
    }
  }
  if (quote !== undefined || depth !== 0) throw new TypeError(`args ${JSON.stringify(args)} has an unbalanced bracket or quote`);
  parts.push(args.slice(start));
  for (const part of parts) {
    if (part.trim() === '') throw new TypeError(`args ${JSON.stringify(args)} has an empty argument`);
    if (/^\s*(out|inout|variadic)\s/i.test(part)) throw new TypeError(`args: ${JSON.stringify(part.trim())}: only input arguments are accepted (no OUT, INOUT or VARIADIC)`);
  }
  return parts.length;
}
