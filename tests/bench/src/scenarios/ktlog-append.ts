// ktlog.append: how fast DeviceEvents published to JetStream become entries under a served, signed
// tree head, against the same rows inserted into a plain Postgres table in the same batches.
import { verifyTreeHead } from '@qpq/crypto';
import { migrateToLatest, openDatabase } from '@qpq/db';
import { hashesEqual, MerkleTree } from '@qpq/merkle';
import { DeviceEvent, DeviceEvent_Op } from '@qpq/proto';
import { sql, type Kysely } from 'kysely';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
// The service's own migrations make the baseline's table: the same columns and indexes as the log's.
import type { Measurement } from '../results.js';
import type { Scenario } from '../scenario.js';
import { headReaching, IDENTITY_KEY_BYTES, leafOf, newEntries, startKtlog } from './ktlog-support.js';
import { entryRow, ktlogMigrations, type KtlogTables, type NewEntry } from '@qpq/ktlog';

// At ≈10k appends/s on a 2-core machine: about 20 s (5 s with --quick) for the service.
const EVENTS = 200_000;
const QUICK_EVENTS = 50_000;
/** Publishes awaiting their JetStream ack at once: enough to keep the server busy, bounded memory. */
const PUBLISH_WINDOW = 512;
/** Rows per INSERT statement, as the service inserts them (log-append.ts INSERT_CHUNK). */
const INSERT_CHUNK = 1000;
const BASELINE_SCHEMA = 'plain_entries';

export const ktlogAppend: Scenario = {
  name: 'ktlog.append',
  description: 'DeviceEvents published to JetStream until the served head covers them; baseline: plain batched INSERTs',
  async run(ctx) {
    const events = ctx.quick ? QUICK_EVENTS : EVENTS;
    const ktlog = await startKtlog(ctx, 'bench_ktlog_append');
    try {
      const batch = ktlog.cfg.batchSize;
      const entries = newEntries(events);
      const leaves = entries.map(leafOf);

      ctx.progress(`postgres.insert_batched: ${events} rows in transactions of ${batch}`);
      const baseline = await insertBatched(ktlog.databaseUrl, entries, leaves, batch, ctx.signal);

      ctx.progress(`ktlog.append: publishing ${events} DeviceEvents to QPQ_DEVICES`);
      const servers = await ctx.servers();
      const js = (await servers.natsConnection()).jetstream();
      const encoded = entries.map((e) => DeviceEvent.encode(deviceEventOf(e)).finish());
      const start = performance.now();
      const reached = headReaching(ktlog.client, events, 30_000 + events * 2, ctx.signal);
      // Kept from rejecting unobserved while the publishes below are still going.
      reached.catch(() => undefined);
      await publishAll(encoded, (data) => js.publish('qpq.devices.add', data), ctx.signal);
      const publishSeconds = (performance.now() - start) / 1000;
      const head = await reached;
      const seconds = (performance.now() - start) / 1000;

      // A figure for a log that lost, repeated or garbled entries would be worthless: check it is the log.
      const reference = new MerkleTree();
      for (const leaf of leaves) reference.appendLeafHash(leaf);
      if (head.treeSize !== BigInt(events)) throw new Error(`head covers ${head.treeSize} entries, expected ${events}`);
      if (!verifyTreeHead(head)) throw new Error('the served tree head does not verify');
      if (!hashesEqual(head.rootHash, reference.root())) {
        throw new Error('the served root is not that of the events in the order published');
      }

      const params = { events, batch, payload_bytes: IDENTITY_KEY_BYTES };
      const results: Measurement[] = [
        {
          name: 'postgres.insert_batched',
          value: events / baseline.seconds,
          unit: 'rows/s',
          params: { rows: events, batch, synchronous_commit: baseline.synchronousCommit },
        },
        {
          name: 'ktlog.append',
          value: events / seconds,
          unit: 'appends/s',
          params: { ...params, publish_s: round(publishSeconds), total_s: round(seconds) },
          baseline: 'postgres.insert_batched',
        },
      ];
      return results;
    } finally {
      await ktlog.stop();
    }
  },
};

function deviceEventOf(e: NewEntry): DeviceEvent {
  const username = e.address.slice(0, e.address.indexOf('@'));
  return {
    eventId: e.eventId,
    op: DeviceEvent_Op.OP_ADD,
    accountId: randomUUID(),
    username,
    address: e.address,
    deviceId: e.deviceId,
    identityKey: e.identityKey,
    atMs: e.timestampMs,
  };
}

/** Publishes every message, up to PUBLISH_WINDOW awaiting their ack; resolves once all are acked. */
async function publishAll(
  messages: readonly Uint8Array[],
  publish: (data: Uint8Array) => Promise<unknown>,
  signal: AbortSignal,
): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  for (const data of messages) {
    signal.throwIfAborted();
    const pending: Promise<void> = publish(data).then(
      () => {
        inFlight.delete(pending);
      },
      (err: unknown) => {
        failure ??= err;
        inFlight.delete(pending);
      },
    );
    inFlight.add(pending);
    if (inFlight.size >= PUBLISH_WINDOW) await Promise.race(inFlight);
    if (failure) throw failure;
  }
  await Promise.all(inFlight);
  if (failure) throw failure;
}

/**
 * The baseline: the same rows into a table made by the service's own migration (same columns and
 * indexes), `batch` rows per transaction, one after another, with Postgres's default synchronous
 * commit as the service has. Returns the seconds it took and the server's synchronous_commit.
 */
async function insertBatched(
  url: string,
  entries: readonly NewEntry[],
  leaves: readonly Uint8Array[],
  batch: number,
  signal: AbortSignal,
): Promise<{ seconds: number; synchronousCommit: string }> {
  const db = await openDatabase<KtlogTables>({ url, schema: BASELINE_SCHEMA, poolSize: 1 });
  try {
    await migrateToLatest(db as Kysely<unknown>, BASELINE_SCHEMA, ktlogMigrations);
    const setting = await sql<{ synchronous_commit: string }>`show synchronous_commit`.execute(db);
    const rows = entries.map((e, i) => entryRow(e, i, leaves[i] as Uint8Array));
    const start = performance.now();
    for (let b = 0; b < rows.length; b += batch) {
      signal.throwIfAborted();
      const slice = rows.slice(b, b + batch);
      await db.transaction().execute(async (trx) => {
        for (let i = 0; i < slice.length; i += INSERT_CHUNK) {
          await trx
            .insertInto('entries')
            .values(slice.slice(i, i + INSERT_CHUNK))
            .execute();
        }
      });
    }
    const seconds = (performance.now() - start) / 1000;
    return { seconds, synchronousCommit: setting.rows[0]?.synchronous_commit ?? 'unknown' };
  } finally {
    await db.destroy();
  }
}

const round = (n: number) => Math.round(n * 1000) / 1000;
