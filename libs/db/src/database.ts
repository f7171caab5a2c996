import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { rememberPool } from './pools.js';

// int8 (bigint) columns come back as JS bigint: seqs and counters must never lose precision.
pg.types.setTypeParser(20, (v) => BigInt(v));

export interface DatabaseOptions {
  url: string;
  /** The one Postgres schema this service owns; created if missing and put first on the search path. */
  schema: string;
  poolSize?: number;
  /**
   * Longest a statement (or a wait for a lock) may take before Postgres cancels it; keep it near the
   * RPC deadline, so work whose caller gave up does not hold connections and locks.
   */
  statementTimeoutMs?: number;
}

/**
 * A kysely handle whose every connection works inside the service's own schema.
 * @example const db = await openDatabase<AuthTables>({ url, schema: 'auth' });
 */
export async function openDatabase<T>(opts: DatabaseOptions): Promise<Kysely<T>> {
  if (!/^[a-z_][a-z0-9_]*$/.test(opts.schema)) throw new Error(`invalid schema name: ${opts.schema}`);
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize ?? 8,
    options: [
      `-c search_path=${opts.schema}`,
      `-c statement_timeout=${opts.statementTimeoutMs ?? 10_000}`,
      `-c lock_timeout=${opts.statementTimeoutMs ?? 10_000}`,
    ].join(' '),
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client's error (e.g. Postgres restarting) must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  const db = new Kysely<T>({ dialect: new PostgresDialect({ pool }) });
  rememberPool(db, pool);
  await sql`create schema if not exists ${sql.id(opts.schema)}`.execute(db);
  return db;
}

/** True when the database answers a trivial query; /readyz uses it. */
export async function databaseReachable(db: Kysely<unknown>): Promise<boolean> {
  try {
    await sql`select 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}
