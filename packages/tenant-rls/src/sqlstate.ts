/**
 * Which PostgreSQL errors say "try again": the one answer the store and the projection runner
 * both give, so that an append and a projection's batch are retried for the same reasons.
 */

/**
 * SQLSTATE classes of an error the same statement may not meet next time: connection exception
 * (08), transaction rollback (40: a serialization failure, a deadlock), insufficient resources
 * (53), operator intervention (57: a cancelled statement, a server shutting down) and system
 * error (58: I/O).
 */
const TRANSIENT_SQLSTATE_CLASSES: ReadonlySet<string> = new Set(['08', '40', '53', '57', '58']);

/**
 * Codes of other classes that say the same: a lock not granted within `lock_timeout` or at once
 * under `NOWAIT` (55P03). The rest of class 55 (an object not in the state the statement needs,
 * an object in use) is the database's set-up, which a retry meets again.
 */
const TRANSIENT_SQLSTATES: ReadonlySet<string> = new Set(['55P03']);

const SQLSTATE_PATTERN = /^[0-9A-Z]{5}$/;

/**
 * Whether a SQLSTATE (the five characters of a server error's `code`) is of an error that a retry
 * of the same statement may not meet: classes 08 (connection exception), 40 (a serialization
 * failure, a deadlock), 53 (insufficient resources), 57 (a cancelled statement, a server shutting
 * down) and 58 (I/O), and 55P03 (a lock not granted in time). Constraint, data, permission and
 * set-up errors are not, the rest of class 55 included; neither is anything that is not a SQLSTATE
 * (a socket's `ECONNRESET`, say: callers judge those themselves).
 */
export function isTransientSqlstate(code: string): boolean {
  return SQLSTATE_PATTERN.test(code) && (TRANSIENT_SQLSTATE_CLASSES.has(code.slice(0, 2)) || TRANSIENT_SQLSTATES.has(code));
}
