import type { PoolClient } from 'pg';
import { dollarQuoted, quoteLiteral, quoteName } from './sql.js';

/** The two roles of a Ledgerkit database. */
export interface RoleNames {
  /**
   * Owns the schema, tables and functions; migrations run as it (`SET ROLE`). `NOLOGIN`: a
   * migrating user that is a member of it switches to it. Subject to row-level security like
   * everyone (`FORCE`), and to the append-only triggers.
   */
  readonly owner: string;
  /** What the application logs in as: `LOGIN`, no `BYPASSRLS`, owns nothing, granted only what it needs. */
  readonly app: string;
}

/** The role names used when none are given. */
export const DEFAULT_ROLES: RoleNames = { owner: 'ledgerkit_owner', app: 'ledgerkit_app' };

/** Options of {@link ensureRoles}. */
export interface EnsureRolesOptions {
  /** Role names; default {@link DEFAULT_ROLES}. */
  readonly roles?: RoleNames;
  /**
   * Password given to the application role when it is created; an existing role keeps its own.
   * Any string without a NUL character; it is sent as a quoted literal.
   */
  readonly appPassword?: string;
}

/**
 * Creates the owner and application roles if they do not exist, makes the connected user a
 * member of the owner (so it can `SET ROLE` to run migrations), and then checks both roles:
 * neither may be a superuser or bypass row-level security, and the application role must not
 * be a member of the owner ({@link RoleRefusedError} if not). Needs `CREATEROLE` (or a superuser). Safe to run concurrently.
 * Role names that are not strings matching `SQL_NAME_PATTERN`, and a password that is not a
 * string or holds a NUL character, are refused with a `TypeError` before anything is sent.
 */
export async function ensureRoles(client: PoolClient, options?: EnsureRolesOptions): Promise<void> {
  const roles = options?.roles ?? DEFAULT_ROLES;
  const owner = quoteName(roles.owner, 'owner role');
  const app = quoteName(roles.app, 'application role');
  if (roles.owner === roles.app) throw new TypeError('the owner and application roles must differ');
  const appPassword: unknown = options?.appPassword;
  if (appPassword !== undefined && typeof appPassword !== 'string') throw new TypeError('appPassword must be a string');
  const password = appPassword === undefined ? '' : ` PASSWORD ${quoteLiteral(appPassword)}`;
  const attributes = 'NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS';
  await ignoringDuplicate(client, `CREATE ROLE ${owner} NOLOGIN ${attributes}`);
  await ignoringDuplicate(client, `CREATE ROLE ${app} LOGIN ${attributes}${password}`);
  const { rows } = await client.query<{ rolsuper: boolean }>('SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user');
  // Two migrators granting the same membership at once: the loser's duplicate is fine too.
  if (rows[0]?.rolsuper !== true) await ignoringDuplicate(client, `GRANT ${owner} TO CURRENT_USER`);
  await checkRoles(client, roles);
}

/**
 * Role creation and membership grants race between processes and databases of one cluster: the
 * loser's duplicate is fine.
 * The statement goes into a dollar-quoted DO body, so the tag must not occur in it (a password
 * may hold any text, `$ensure$` included): the first of `$ensure$`, `$ensure_1$`, ... that does not.
 */
async function ignoringDuplicate(client: PoolClient, statement: string): Promise<void> {
  const body = `BEGIN ${statement}; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END`;
  await client.query(`DO ${dollarQuoted(body, 'ensure')}`);
}

/** Why a role was refused: see {@link RoleRefusedError}. */
export type RoleRefusalReason =
  /** The role does not exist (or the connected role is not in `pg_roles`). */
  | 'missing'
  /** A superuser or `BYPASSRLS`: row-level security would not apply to it. */
  | 'bypasses_rls'
  /** The application role is a member of the owner role. */
  | 'app_in_owner'
  /** The connected role owns the tables (or is a member of their owner), so it could turn the policies off. */
  | 'owns_tables'
  /** The connected role may write tables that only a fenced function should write. */
  | 'writes_fenced_tables'
  /** The schema is owned by another role than the owner role. */
  | 'schema_owner';

/**
 * A role (or the connected role) cannot be used as it is: it is missing, escapes row-level
 * security, owns what it should not, or may write what it should only write through a function.
 * Thrown by {@link checkRoles}, {@link ensureRoles}, `runMigrations` and the store's `open`, before
 * anything is written; `reason` says which check failed, and the message what to change.
 */
export class RoleRefusedError extends Error {
  /** Stable code, safe to switch on. */
  readonly code = 'role_refused';
  /** Which check failed. */
  readonly reason: RoleRefusalReason;
  /** The role refused, when it is known by name. */
  readonly role: string | undefined;

  constructor(reason: RoleRefusalReason, role: string | undefined, message: string) {
    super(message);
    this.name = 'RoleRefusedError';
    this.reason = reason;
    this.role = role;
  }
}

/**
 * Throws {@link RoleRefusedError} unless both roles exist, neither is a superuser or bypasses
 * RLS, and the app is not a member of the owner.
 */
export async function checkRoles(client: PoolClient, roles: RoleNames): Promise<void> {
  const { rows } = await client.query<{ rolname: string; rolsuper: boolean; rolbypassrls: boolean; app_in_owner: boolean }>(
    `SELECT r.rolname, r.rolsuper, r.rolbypassrls,
            r.rolname = $2 AND pg_catalog.pg_has_role(r.oid, (SELECT o.oid FROM pg_catalog.pg_roles o WHERE o.rolname = $1), 'MEMBER') AS app_in_owner
       FROM pg_catalog.pg_roles r WHERE r.rolname IN ($1, $2)`,
    [roles.owner, roles.app],
  );
  for (const name of [roles.owner, roles.app]) {
    const row = rows.find((candidate) => candidate.rolname === name);
    if (row === undefined) throw new RoleRefusedError('missing', name, `role ${name} does not exist`);
    if (row.rolsuper || row.rolbypassrls) {
      throw new RoleRefusedError('bypasses_rls', name, `role ${name} must be neither a superuser nor BYPASSRLS: row-level security would not apply to it`);
    }
    if (row.app_in_owner) throw new RoleRefusedError('app_in_owner', name, `application role ${name} must not be a member of the owner role ${roles.owner}`);
  }
}
