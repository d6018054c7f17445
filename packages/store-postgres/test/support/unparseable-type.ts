import pg from 'pg';

/** What the parser of {@link MACADDR_UNPARSEABLE} throws. */
export const UNPARSEABLE_MESSAGE = 'this client cannot parse a macaddr';

/**
 * Type parsers for one pool or client (its `types` option; the global ones are left alone) that
 * parse every type as node-postgres does, except `macaddr` (OID 829), whose parser throws, as a
 * user-installed parser might. No statement of the store returns a `macaddr`: only a statement a
 * test adds does, so the failure lands exactly where the test puts it.
 */
export const MACADDR_UNPARSEABLE: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid !== 829) return pg.types.getTypeParser(oid, format);
    return () => {
      throw new Error(UNPARSEABLE_MESSAGE);
    };
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** A statement whose one row holds a `macaddr`: unreadable to a client with {@link MACADDR_UNPARSEABLE}. */
export const UNPARSEABLE_ROW_SQL = `SELECT '08:00:2b:01:02:03'::macaddr AS unparseable`;

/** What the parser of {@link int8UnparseableWhile} throws. */
export const INT8_UNPARSEABLE_MESSAGE = 'this client cannot parse a bigint now';

/**
 * Type parsers for one pool (its `types` option; the global ones are left alone) that parse every
 * type as node-postgres does, except `int8` (OID 20) while `now()` is true: then its parser
 * throws. The version an append answers is an `int8`, and so is every event's version a read
 * answers: switch it on only around the appends whose answer is to be unreadable.
 */
export function int8UnparseableWhile(now: () => boolean): pg.CustomTypesConfig {
  return {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
      const parse = pg.types.getTypeParser(oid, format);
      if (oid !== 20) return parse;
      return (value: string): unknown => {
        if (now()) throw new Error(INT8_UNPARSEABLE_MESSAGE);
        return parse(value);
      };
    }) as pg.CustomTypesConfig['getTypeParser'],
  };
}
