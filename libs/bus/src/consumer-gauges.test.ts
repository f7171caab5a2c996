/**
 * Consumer gauges against a real NATS JetStream, read from a real /metrics (the runtime's Telemetry
 * and its Prometheus exporter, as a service serves them).
 */
import { Telemetry } from '@qpq/runtime';
import { startNats, waitFor, type NatsHandle } from '@qpq/testnet';
import { AckPolicy, DeliverPolicy, type JsMsg } from 'nats';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Bus } from './bus.js';

const STREAM = { name: 'GAUGE_EVENTS', subjects: ['gauge.events.>'], maxAgeMs: 3600_000 };
const DURABLE = 'watched';
const INTERVAL_MS = 50;

let nats: NatsHandle;
let bus: Bus;
let telemetry: Telemetry;
let server: Server;
let url: string;

/** The series of `name` for consumer `durable`, or undefined when /metrics has none. */
async function gauge(name: string, durable = DURABLE): Promise<number | undefined> {
  const text = await (await fetch(url, { signal: AbortSignal.timeout(5_000) })).text();
  const line = text
    .split('\n')
    .find(
      (l) => l.startsWith(`${name}{`) && l.includes(`stream="${STREAM.name}"`) && l.includes(`consumer="${durable}"`),
    );
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

/** Waits until the gauges (sampled every INTERVAL_MS) show `expected`. */
async function gaugesShow(expected: { pending: number; ackPending: number; redelivered: number }): Promise<void> {
  const read = async () => ({
    pending: await gauge('qpq_jetstream_consumer_pending_messages'),
    ackPending: await gauge('qpq_jetstream_consumer_ack_pending_messages'),
    redelivered: await gauge('qpq_jetstream_consumer_redelivered_messages'),
  });
  let last: unknown;
  await waitFor(`gauges ${JSON.stringify(expected)} (last seen ${JSON.stringify(last)})`, async () => {
    const now = await read();
    last = now;
    return JSON.stringify(now) === JSON.stringify(expected);
  });
}

before(
  async () => {
    nats = await startNats();
    bus = await Bus.connect(nats.url, 'gauge-test');
    await bus.ensureStream(STREAM);
    // Read by hand below, so the test decides what is delivered, acknowledged and redelivered.
    await bus.ensureConsumer(STREAM.name, {
      durable_name: DURABLE,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: 'gauge.events.>',
    });
    telemetry = Telemetry.start('bus-test');
    server = createServer((req, res) => telemetry.serveMetrics(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  },
  { timeout: 60_000 },
);

after(
  async () => {
    server?.close();
    await telemetry?.shutdown();
    await bus?.close();
    await nats?.stop();
  },
  { timeout: 30_000 },
);

describe('Bus.watchConsumers', { timeout: 60_000 }, () => {
  test('reports messages not yet delivered, delivered but unacknowledged, and redelivered', async () => {
    const watch = bus.watchConsumers(telemetry.meter, [{ stream: STREAM.name, durable: DURABLE }], {
      intervalMs: INTERVAL_MS,
    });
    await gaugesShow({ pending: 0, ackPending: 0, redelivered: 0 });

    // Published while nobody reads the consumer: all pending.
    for (let i = 0; i < 5; i++) await bus.publishDurable('gauge.events.x', new TextEncoder().encode(`m${i}`));
    await gaugesShow({ pending: 5, ackPending: 0, redelivered: 0 });

    const consumer = await bus.js.consumers.get(STREAM.name, DURABLE);
    const fetched: JsMsg[] = [];
    for await (const m of await consumer.fetch({ max_messages: 3, expires: 2_000 })) {
      fetched.push(m);
      if (fetched.length === 3) break;
    }
    assert.equal(fetched.length, 3);
    await gaugesShow({ pending: 2, ackPending: 3, redelivered: 0 });

    // One handed back and delivered again (now delivered twice, still unacknowledged); two acknowledged.
    fetched[0]!.nak();
    await fetched[1]!.ackAck();
    await fetched[2]!.ackAck();
    const again = await consumer.next({ expires: 2_000 });
    assert.ok(again);
    assert.equal(again.info.deliveryCount, 2);
    await gaugesShow({ pending: 2, ackPending: 1, redelivered: 1 });

    await again.ackAck();
    await gaugesShow({ pending: 2, ackPending: 0, redelivered: 0 });
    await watch.stop();
  });

  test('a consumer that can no longer be read keeps its last values, with one warning', async () => {
    const warnings: string[] = [];
    const logged = await Bus.connect(nats.url, 'gauge-test-2', {
      info: () => undefined,
      warn: (_obj, msg) => void warnings.push(msg),
    });
    const doomed = 'doomed';
    await logged.ensureConsumer(STREAM.name, { durable_name: doomed, ack_policy: AckPolicy.Explicit });
    try {
      logged.watchConsumers(telemetry.meter, [{ stream: STREAM.name, durable: doomed }], { intervalMs: INTERVAL_MS });
      // The five messages of the first test, none delivered to this consumer.
      await waitFor('its backlog', async () => (await gauge('qpq_jetstream_consumer_pending_messages', doomed)) === 5);
      await (await logged.nc.jetstreamManager()).consumers.delete(STREAM.name, doomed);
      await waitFor('a warning', () => warnings.length > 0);
      await new Promise((r) => setTimeout(r, 5 * INTERVAL_MS));
      assert.equal(warnings.length, 1, 'one warning for the streak of failures');
      assert.equal(await gauge('qpq_jetstream_consumer_pending_messages', doomed), 5, 'the last value is kept');
    } finally {
      // close() stops the watch: no timer is left behind to keep the test process alive.
      await logged.close();
    }
  });
});
