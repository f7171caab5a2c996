import type { Telemetry } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import { poolOf } from './pools.js';

type Meter = Telemetry['meter'];

/**
 * Reports the connection pool of `db` on `meter`, read when /metrics is scraped (the pool's own
 * counters, no query): `qpq_db_pool_connections{state="idle"|"busy"}`, `qpq_db_pool_waiting_clients`
 * (queries waiting for a connection: the pool is too small or connections are held too long) and
 * `qpq_db_pool_max_connections`. Answers false, registering nothing, for a handle openDatabase did not open.
 *
 * @example
 * const db = await openDatabase<AuthTables>({ url, schema: 'auth' });
 * registerPoolMetrics(host.telemetry.meter, db);
 */
export function registerPoolMetrics<T>(meter: Meter, db: Kysely<T>): boolean {
  const pool = poolOf(db);
  if (!pool) return false;
  meter
    .createObservableGauge('qpq_db_pool_connections', {
      description: 'Postgres connections of the pool, by state: idle, busy (running a query or in a transaction)',
    })
    .addCallback((result) => {
      const idle = pool.idleCount;
      result.observe(idle, { state: 'idle' });
      result.observe(Math.max(0, pool.totalCount - idle), { state: 'busy' });
    });
  meter
    .createObservableGauge('qpq_db_pool_waiting_clients', {
      description: 'Queries waiting for a pool connection (all of them busy)',
    })
    .addCallback((result) => result.observe(pool.waitingCount));
  meter
    .createObservableGauge('qpq_db_pool_max_connections', {
      description: 'Connections the pool may open at most',
    })
    .addCallback((result) => result.observe(pool.options.max));
  return true;
}
