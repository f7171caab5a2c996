/**
 * What the ktlog service reports on /metrics, against real Postgres and NATS JetStream: appended and
 * skipped DeviceEvents, append durations, and the newest head's size and time (also right after a
 * restart, before anything is appended or asked for).
 */
import { DeviceEvent, DeviceEvent_Op, KeyTransparencyServiceService as Rpc, type SignedTreeHead } from '@qpq/proto';
import { readEnv, type RpcClient } from '@qpq/runtime';
import { metricValue, ServiceTestBed, waitFor } from '@qpq/testnet';
import type { JetStreamClient } from 'nats';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { envToConfig, ktlogEnv, type KtlogConfig } from './config.js';
import { KtlogService } from './index.js';

let bed: ServiceTestBed;
let cfg: KtlogConfig;
let service: KtlogService | undefined;
let client: RpcClient;
let js: JetStreamClient;

const APPENDED = 'qpq_ktlog_appended_entries_total';
const SKIPPED = 'qpq_ktlog_skipped_events_total';
const FAILURES = 'qpq_ktlog_append_failures_total';
const DURATION = 'qpq_ktlog_append_batch_duration_seconds';
const TREE_SIZE = 'qpq_ktlog_tree_size_entries';
const HEAD_TIME = 'qpq_ktlog_newest_head_timestamp_seconds';
/** How often the service under test reads its consumer's info (15 s in production). */
const SAMPLE_INTERVAL_MS = 50;

function deviceEvent(username: string): DeviceEvent {
  return {
    eventId: randomUUID(),
    op: DeviceEvent_Op.OP_ADD,
    accountId: randomUUID(),
    username,
    address: `${username}@example.test`,
    deviceId: randomUUID(),
    identityKey: new Uint8Array(randomBytes(32)),
    atMs: BigInt(Date.now()),
  };
}

async function startService(): Promise<void> {
  const started = await bed.startService(() => KtlogService.create(cfg, { sampleIntervalMs: SAMPLE_INTERVAL_MS }));
  service = started.service;
  client = started.gateway;
  js = started.nc.jetstream();
}

/** The service's /metrics, as metric name (with `_bucket` etc.) → samples, in order. */
async function scrape(): Promise<Map<string, number[]>> {
  const res = await globalThis.fetch(`http://${service!.httpAddress}/metrics`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(res.status, 200);
  const samples = new Map<string, number[]>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (!m) continue;
    samples.set(m[1]!, [...(samples.get(m[1]!) ?? []), Number(m[2])]);
  }
  return samples;
}

const series = (name: string, labels: Record<string, string> = {}) => metricValue(service!.httpAddress, name, labels);

/** The one sample of a metric without labels of its own. */
function value(samples: Map<string, number[]>, name: string): number {
  const values = samples.get(name);
  assert.ok(values, `${name} is on /metrics`);
  assert.equal(values.length, 1, `${name} has one series`);
  return values[0]!;
}

function assertHeadGauges(samples: Map<string, number[]>, head: SignedTreeHead): void {
  assert.equal(value(samples, TREE_SIZE), Number(head.treeSize), 'tree size gauge = the served head');
  const headTime = value(samples, HEAD_TIME);
  assert.equal(headTime, Number(head.timestampMs) / 1000, 'head timestamp gauge = the served head, in seconds');
  const age = Date.now() / 1000 - headTime;
  assert.ok(age >= 0 && age < 60, `head signed within the last minute (age ${age} s)`);
}

before(
  async () => {
    bed = await ServiceTestBed.create({ service: 'ktlog' });
    cfg = envToConfig(readEnv(ktlogEnv, bed.env()));
    await startService();
  },
  { timeout: 120_000 },
);

after(
  async () => {
    await bed?.destroy(async () => {
      await service?.stop();
    });
  },
  { timeout: 60_000 },
);

describe('ktlog metrics', () => {
  it('exposes exactly the documented ktlog metrics, the empty log’s head from the start', async () => {
    const samples = await scrape();
    assert.deepEqual(
      [...samples.keys()].filter((n) => n.startsWith('qpq_ktlog_')).sort(),
      [APPENDED, FAILURES, SKIPPED, HEAD_TIME, TREE_SIZE].sort(),
      'no append yet: the counters (at 0) and the gauges, but no histogram sample',
    );
    assert.equal(value(samples, APPENDED), 0);
    assert.equal(value(samples, SKIPPED), 0);
    assert.equal(value(samples, FAILURES), 0);
    // Read from the database without a call: the gauges were set at start.
    assert.equal(value(samples, TREE_SIZE), 0);
    const age = Date.now() / 1000 - value(samples, HEAD_TIME);
    assert.ok(age >= 0 && age < 60, `empty tree's head signed at start (age ${age} s)`);
  });

  it('counts appended and skipped DeviceEvents and follows the newest head', async () => {
    const good = Array.from({ length: 5 }, (_, i) => deviceEvent(`user${i}`));
    // Two that cannot be entries, a repeat (appended once), and the last good one after all of them:
    // once the head covers it, every event before it has been handled.
    const sent: [string, Uint8Array][] = [
      ['qpq.devices.add', new Uint8Array([0xff, 0xff, 0xff])],
      ['qpq.devices.add', DeviceEvent.encode({ ...deviceEvent('mallory'), eventId: 'not-a-uuid' }).finish()],
      ...good.slice(0, 4).map((e): [string, Uint8Array] => ['qpq.devices.add', DeviceEvent.encode(e).finish()]),
      ['qpq.devices.add', DeviceEvent.encode(good[0]!).finish()],
      ['qpq.devices.add', DeviceEvent.encode(good[4]!).finish()],
    ];
    for (const [subject, data] of sent) await js.publish(subject, data);
    const head = await waitFor(
      'a head of 5 entries',
      async () => {
        const h = await client.call(Rpc.getTreeHead, {});
        return h.treeSize >= 5n ? h : undefined;
      },
      20_000,
      25,
    );
    assert.equal(head.treeSize, 5n);

    const samples = await scrape();
    assert.equal(value(samples, APPENDED), 5, 'five distinct events appended, the repeat not counted');
    assert.equal(value(samples, SKIPPED), 2, 'the undecodable event and the one without a UUID');
    assert.equal(value(samples, FAILURES), 0);
    assertHeadGauges(samples, head);
    const batches = value(samples, `${DURATION}_count`);
    assert.ok(batches >= 1, `append transactions timed (${batches})`);
    const seconds = value(samples, `${DURATION}_sum`);
    assert.ok(seconds > 0 && seconds < 10 * batches, `append durations in seconds (${seconds} s in all)`);
    const buckets = samples.get(`${DURATION}_bucket`) ?? [];
    assert.equal(buckets.at(-1), batches, 'the +Inf bucket holds every transaction');
  });

  it('reports its Postgres pool and the backlog of its DeviceEvents consumer', async () => {
    assert.equal(await series('qpq_db_pool_max_connections'), 8, 'the default pool size');
    const idle = await series('qpq_db_pool_connections', { state: 'idle' });
    const busy = await series('qpq_db_pool_connections', { state: 'busy' });
    assert.ok(
      idle !== undefined && busy !== undefined && idle + busy >= 1,
      `connections open (${idle} idle, ${busy} busy)`,
    );
    assert.equal(await series('qpq_db_pool_waiting_clients'), 0);

    // Everything published so far is appended (the test before waited for it): nothing left behind.
    const consumer = { stream: 'QPQ_DEVICES', consumer: 'ktlog' };
    await waitFor('an empty backlog', async () => {
      const pending = await series('qpq_jetstream_consumer_pending_messages', consumer);
      const ackPending = await series('qpq_jetstream_consumer_ack_pending_messages', consumer);
      return pending === 0 && ackPending === 0;
    });
    assert.equal(await series('qpq_jetstream_consumer_redelivered_messages', consumer), 0);
  });

  it('a restarted service reports the newest head before anything is appended or asked for', async () => {
    const head = await client.call(Rpc.getTreeHead, {});
    assert.equal(head.treeSize, 5n);
    await service!.stop();
    service = undefined;
    await startService();
    const samples = await scrape();
    assertHeadGauges(samples, head);
    assert.equal(value(samples, APPENDED), 0, 'counters are per process');
  });
});
