// delivery.enqueue: durable Enqueues per second through the delivery service's gRPC (started alone in
// its own process, called as the gateway calls it), beside a raw Postgres baseline with the same
// batching and durability: the same requests in flight, group-committed by the same libs/db
// GroupCommit with the service's batch limit and concurrency, one multi-row insert per transaction,
// committed with the server's synchronous_commit.
import { GroupCommit, openDatabase } from '@qpq/db';
import { DeliveryServiceService as Delivery } from '@qpq/proto';
import type { RpcClient } from '@qpq/runtime';
import { sql } from 'kysely';
import { randomInt, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Measurement } from '../results.js';
import type { Scenario } from '../scenario.js';
import { startServiceProcess } from '../service-process.js';
import { cpuSecondsOf } from './blob-cpu.js';
import { benchPayload } from './e2e-ledger.js';
import { PAYLOAD_MAX_BYTES, PAYLOAD_MIN_BYTES } from './e2e-load.js';
import { windowed } from './windowed.js';

const MESSAGES = 10_000;
const QUICK_MESSAGES = 2_000;
/** @qpq/db's default pool size, which the service runs with: the baseline gets as many connections. */
const POOL_SIZE = 8;
/** Requests in flight: enough to keep every pooled connection busy. */
const IN_FLIGHT = 32;
/** services/delivery's group commit: QPQ_ENQUEUE_BATCH's default, and transactions at once (enqueue-batches.ts). */
const BATCH_MAX = 64;
const BATCHES_AT_ONCE = 2;
/** Recipient devices the messages are spread over (each enqueue names one). */
const DEVICES = 20;
const BASELINE_SCHEMA = 'plain_enqueue';

interface PlainRow {
  id: string;
  device_id: string;
  payload: Buffer;
  accepted_at: Date;
}

interface PlainTables {
  messages: PlainRow;
}

export const deliveryEnqueue: Scenario = {
  name: 'delivery.enqueue',
  description: 'durable 1:1 Enqueues/s through the delivery service alone; baseline: one-row transactions',
  async run(ctx) {
    const messages = ctx.quick ? QUICK_MESSAGES : MESSAGES;
    const servers = await ctx.servers();
    const env = await servers.serviceEnv('delivery', 'bench_delivery');
    const databaseUrl = env.QPQ_DATABASE_URL as string;
    const started = await startServiceProcess({
      service: 'delivery',
      env,
      logFile: join(ctx.logDir, 'bench_delivery.log'),
    });
    const stop = ctx.own(() => started.stop());
    try {
      const devices = Array.from({ length: DEVICES }, () => randomUUID());
      const payloads = Array.from({ length: messages }, (_, i) =>
        benchPayload({ phase: 0, index: i }, randomInt(PAYLOAD_MIN_BYTES, PAYLOAD_MAX_BYTES + 1)),
      );

      ctx.progress(`postgres.insert_group_commit: ${messages} rows, ${IN_FLIGHT} in flight, group-committed`);
      const baseline = await insertGroupCommitted(databaseUrl, payloads, devices, ctx.signal);

      ctx.progress(`delivery.enqueue: ${messages} Enqueues, ${IN_FLIGHT} in flight`);
      const client = servers.client('gateway', started.grpcAddress);
      // One call first: the channel's TLS handshake is not an Enqueue.
      await enqueueOne(client, payloads[0]!, devices[0]!);
      const cpuBefore = { delivery: cpuSecondsOf(started.pid), postgres: cpuSecondsOf(servers.postgres.pid) };
      const start = performance.now();
      await windowed(messages - 1, IN_FLIGHT, ctx.signal, (i) =>
        enqueueOne(client, payloads[i + 1]!, devices[(i + 1) % DEVICES]!),
      );
      const seconds = (performance.now() - start) / 1000;
      // Where the time goes: the service's own CPU against the database's (which the baseline also pays).
      const cores =
        `delivery:${((cpuSecondsOf(started.pid) - cpuBefore.delivery) / seconds).toFixed(2)} ` +
        `postgres:${((cpuSecondsOf(servers.postgres.pid) - cpuBefore.postgres) / seconds).toFixed(2)}`;

      const payload_bytes = `${PAYLOAD_MIN_BYTES}-${PAYLOAD_MAX_BYTES}`;
      const results: Measurement[] = [
        {
          name: 'postgres.insert_group_commit',
          value: messages / baseline.seconds,
          unit: 'rows/s',
          params: {
            rows: messages,
            in_flight: IN_FLIGHT,
            batch_max: BATCH_MAX,
            transactions_at_once: BATCHES_AT_ONCE,
            mean_rows_per_tx: Number((messages / baseline.transactions).toFixed(1)),
            connections: POOL_SIZE,
            payload_bytes,
            synchronous_commit: baseline.synchronousCommit,
          },
        },
        {
          name: 'delivery.enqueue',
          value: (messages - 1) / seconds,
          unit: 'enqueues/s',
          params: {
            messages: messages - 1,
            recipients_per_message: 1,
            in_flight: IN_FLIGHT,
            pool: POOL_SIZE,
            payload_bytes,
            via: 'gRPC (mTLS) to the service in its own process',
            cpu_cores: cores,
          },
          baseline: 'postgres.insert_group_commit',
        },
      ];
      return results;
    } finally {
      await stop();
    }
  },
};

function enqueueOne(client: RpcClient, payload: Uint8Array, device: string): Promise<unknown> {
  return client.call(
    Delivery.enqueue,
    {
      messageId: randomUUID(),
      recipientDeviceIds: [device],
      payload,
      groupId: new Uint8Array(0),
      ttlSeconds: 0,
      welcome: undefined,
    },
    { identity: { accountId: randomUUID(), deviceId: randomUUID(), username: 'bench' } },
  );
}

/** The baseline: each payload a row, IN_FLIGHT at once, rows that wait stored together (one insert, one commit). */
async function insertGroupCommitted(
  url: string,
  payloads: readonly Uint8Array[],
  devices: readonly string[],
  signal: AbortSignal,
): Promise<{ seconds: number; transactions: number; synchronousCommit: string }> {
  const db = await openDatabase<PlainTables>({ url, schema: BASELINE_SCHEMA, poolSize: POOL_SIZE });
  try {
    await sql`create schema if not exists ${sql.id(BASELINE_SCHEMA)}`.execute(db);
    await sql`create table ${sql.id(BASELINE_SCHEMA, 'messages')} (
      id uuid primary key, device_id uuid not null, payload bytea not null, accepted_at timestamptz not null)`.execute(
      db,
    );
    const setting = await sql<{ synchronous_commit: string }>`show synchronous_commit`.execute(db);
    let transactions = 0;
    const rows = new GroupCommit<PlainRow, void>({
      maxBatch: BATCH_MAX,
      concurrency: BATCHES_AT_ONCE,
      store: async (batch) => {
        transactions++;
        await db.transaction().execute((tx) => tx.insertInto('messages').values(batch).execute());
        return batch.map(() => ({ status: 'fulfilled', value: undefined }));
      },
    });
    const start = performance.now();
    await windowed(payloads.length, IN_FLIGHT, signal, (i) =>
      rows.submit({
        id: randomUUID(),
        device_id: devices[i % devices.length]!,
        payload: Buffer.from(payloads[i]!),
        accepted_at: new Date(),
      }),
    );
    return {
      seconds: (performance.now() - start) / 1000,
      transactions,
      synchronousCommit: setting.rows[0]?.synchronous_commit ?? 'unknown',
    };
  } finally {
    await db.destroy();
  }
}
