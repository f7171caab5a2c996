import type pg from 'pg';

// The pg pool behind each handle openDatabase made: kysely keeps its dialect's pool to itself, and
// the pool gauges read it. Weak, so a destroyed handle's pool is not kept alive by this map.
const pools = new WeakMap<object, pg.Pool>();

export function rememberPool(db: object, pool: pg.Pool): void {
  pools.set(db, pool);
}

/** The pool openDatabase opened for the kysely handle `db`, if it did. */
export function poolOf(db: object): pg.Pool | undefined {
  return pools.get(db);
}
