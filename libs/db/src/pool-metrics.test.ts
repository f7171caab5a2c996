/**
 * The pool gauges and the periodic sample against a real Postgres, read from a real /metrics (the
 * runtime's Telemetry and its Prometheus exporter, as a service serves them).
 */
import { Telemetry } from '@qpq/runtime';
import { metricValue, type PostgresHandle, startPostgres, waitFor } from '@qpq/testnet';
import { sql, type Kysely } from 'kysely';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { openDatabase } from './database.js';
import { PeriodicSample } from './periodic-sample.js';
import { registerPoolMetrics } from './pool-metrics.js';

const POOL_SIZE = 3;

let postgres: PostgresHandle;
let db: Kysely<unknown>;
let telemetry: Telemetry;
let server: Server;
let address: string;

/** The value of the series of `name` carrying `labels` on the test's /metrics. */
const metric = (name: string, labels: Record<string, string> = {}) => metricValue(address, name, labels);

before(
  async () => {
    postgres = await startPostgres();
    db = await openDatabase<unknown>({
      url: await postgres.createDatabase('db_metrics_test'),
      schema: 'metrics_test',
      poolSize: POOL_SIZE,
    });
    telemetry = Telemetry.start('db-test');
    server = createServer((req, res) => telemetry.serveMetrics(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  },
  { timeout: 120_000 },
);

after(
  async () => {
    server?.close();
    await telemetry?.shutdown();
    await db?.destroy();
    await postgres?.stop();
  },
  { timeout: 60_000 },
);

describe('pool gauges', { timeout: 60_000 }, () => {
  test('report idle, busy, waiting and maximum connections as queries hold the pool', async () => {
    assert.equal(registerPoolMetrics(telemetry.meter, db), true);
    assert.equal(await metric('qpq_db_pool_max_connections'), POOL_SIZE);
    await sql`select 1`.execute(db);
    assert.equal(await metric('qpq_db_pool_connections', { state: 'busy' }), 0, 'nothing running');
    assert.ok((await metric('qpq_db_pool_connections', { state: 'idle' }))! >= 1, 'the connection used stays idle');
    assert.equal(await metric('qpq_db_pool_waiting_clients'), 0);

    // Every connection busy sleeping, and two more queries queued behind them.
    const sleeping = Array.from({ length: POOL_SIZE + 2 }, () => sql`select pg_sleep(1.5)`.execute(db));
    await waitFor(
      'the pool full',
      async () => (await metric('qpq_db_pool_connections', { state: 'busy' })) === POOL_SIZE,
    );
    assert.equal(await metric('qpq_db_pool_connections', { state: 'idle' }), 0);
    assert.equal(await metric('qpq_db_pool_waiting_clients'), 2, 'the queries past the pool size wait');
    await Promise.all(sleeping);
    assert.equal(await metric('qpq_db_pool_waiting_clients'), 0);
    assert.equal(await metric('qpq_db_pool_connections', { state: 'busy' }), 0);
    assert.equal(await metric('qpq_db_pool_connections', { state: 'idle' }), POOL_SIZE);
  });

  test('a handle openDatabase did not open registers nothing', () => {
    assert.equal(registerPoolMetrics(telemetry.meter, {} as Kysely<unknown>), false);
  });
});

describe('PeriodicSample', { timeout: 30_000 }, () => {
  const logged: { level: string; msg: string }[] = [];
  const logger = {
    info: (_: object, msg: string) => void logged.push({ level: 'info', msg }),
    warn: (_: object, msg: string) => void logged.push({ level: 'warn', msg }),
  };

  test('reads at start and every interval, keeps the last value through failures, and stops', async () => {
    let reads = 0;
    let failing = false;
    const sample = new PeriodicSample(
      async () => {
        reads++;
        if (failing) throw new Error('database away');
        const { rows } = await sql<{ n: number }>`select ${reads}::int as n`.execute(db);
        return rows[0]!.n;
      },
      { what: 'test value', intervalMs: 20, logger },
    );
    assert.equal(sample.latest, undefined, 'nothing before the first read');
    sample.start();
    await waitFor('a few reads', () => reads >= 3);
    assert.ok(sample.latest! >= 2, 'the value follows the reads');

    failing = true;
    const before = reads;
    await waitFor('failed reads', () => reads >= before + 3);
    const kept = sample.latest;
    assert.ok(kept !== undefined && kept < before + 1, 'the last good value is kept');
    assert.deepEqual(
      logged.map((l) => l.level),
      ['warn'],
      'one warning for the streak of failures',
    );
    failing = false;
    await waitFor('reads working again', () => sample.latest! > kept!);
    assert.deepEqual(
      logged.map((l) => l.level),
      ['warn', 'info'],
    );

    await sample.stop();
    const stoppedAt = reads;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(reads, stoppedAt, 'no read after stop()');
  });
});
