import { qualifiedName, quoteName, type TableName } from './sql.js';
import { TENANT_SETTING } from './with-tenant.js';
import { RETENTION_SETTING } from './retention.js';

/** SQLSTATE of the error raised by an UPDATE, DELETE or TRUNCATE of an append-only table. */
export const APPEND_ONLY_SQLSTATE = 'LK003';

/** The predicate every tenant policy uses: NULL (so no row) when no tenant is set. */
export const TENANT_PREDICATE_SQL = `tenant_id = pg_catalog.current_setting('${TENANT_SETTING}', true)`;

/**
 * SQL that enables and forces row-level security on a table with a `tenant_id` column and adds
 * the policy `tenant_isolation`: every command sees, and may write, only rows of the tenant
 * set by {@link withTenant}. `FORCE` makes the owner subject to it too; with no tenant set a
 * query sees and changes nothing (fail closed). Run it as the table's owner.
 */
export function tenantIsolationSql(table: TableName): string {
  const name = qualifiedName(table);
  return [
    `ALTER TABLE ${name} ENABLE ROW LEVEL SECURITY;`,
    `ALTER TABLE ${name} FORCE ROW LEVEL SECURITY;`,
    `CREATE POLICY tenant_isolation ON ${name} AS PERMISSIVE FOR ALL USING (${TENANT_PREDICATE_SQL}) WITH CHECK (${TENANT_PREDICATE_SQL});`,
  ].join('\n');
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
  /** The arguments after `p_tenant_id text`, as SQL (`''` for none). */
  readonly args: string;
  /** The return type, as SQL (`SETOF my.table`, `TABLE (...)`, `void`, ...). */
  readonly returns: string;
  /** The statements run with the tenant set; `p_tenant_id` holds it. */
  readonly body: string;
  /** Settings in force while the function runs (its SET clauses), e.g. `{ enable_bitmapscan: 'off' }`. */
  readonly settings?: Readonly<Record<string, string>>;
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
 */
export function tenantScopedFunctionSql(fn: TenantScopedFunction): string {
  const name = `${quoteName(fn.schema, 'schema name')}.${quoteName(fn.name, 'function name')}`;
  const settings = Object.entries(fn.settings ?? {}).map(([setting, value]) => {
    if (!SETTING_NAME.test(setting) || !SETTING_VALUE.test(value)) throw new TypeError(`setting ${JSON.stringify(setting)} = ${JSON.stringify(value)} is not a plain name and value`);
    return ` SET ${setting} = ${value}`;
  });
  const args = fn.args.trim() === '' ? '' : `, ${fn.args}`;
  return `CREATE OR REPLACE FUNCTION ${name}(p_tenant_id text${args}) RETURNS ${fn.returns}
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp${settings.join('')} AS $tenant_fn$
DECLARE
  v_previous text := coalesce(current_setting('${TENANT_SETTING}', true), '');
BEGIN
  PERFORM set_config('${TENANT_SETTING}', p_tenant_id, true);
  ${fn.body}
  PERFORM set_config('${TENANT_SETTING}', v_previous, true);
END
$tenant_fn$;`;
}
