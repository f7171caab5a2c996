import type { Kysely, RawBuilder } from 'kysely';
import { poolOf } from './pools.js';

/**
 * Runs a statement as a named prepared statement: Postgres parses and plans it once per connection
 * instead of on every call. For hot statements whose text never changes (their variable parts are
 * parameters, e.g. arrays); `name` must be unique to that text within the service.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any schema: the statement is raw SQL
export async function executePrepared<R>(db: Kysely<any>, name: string, query: RawBuilder<R>): Promise<R[]> {
  const pool = poolOf(db);
  if (!pool) throw new Error(`executePrepared needs a handle made by openDatabase (statement ${name})`);
  const { sql, parameters } = query.compile(db);
  const result = await pool.query({ name, text: sql, values: parameters as unknown[] });
  return result.rows as R[];
}
