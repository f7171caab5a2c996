import { freeTcpPort, startNats, type NatsHandle } from '@qpq/testnet';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bus } from './bus.js';
import type { ConsumedMessage } from './consumer.js';

const STREAM = { name: 'TEST_EVENTS', subjects: ['test.events.>'], maxAgeMs: 3600_000 };
const text = (m: ConsumedMessage) => Buffer.from(m.data).toString();
const encode = (s: string) => new TextEncoder().encode(s);

/** Polls `check` until it holds or `ms` pass. */
async function eventually(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('Bus.consume (durable JetStream consumer)', { timeout: 60_000 }, () => {
  let nats: NatsHandle;
  let bus: Bus;

  before(async () => {
    nats = await startNats();
    bus = await Bus.connect(nats.url, 'bus-test');
    await bus.ensureStream(STREAM);
  });

  after(async () => {
    await bus?.close();
    await nats?.stop();
  });

  test('hands messages to the handler in stream order and acknowledges them', async () => {
    const seen: string[] = [];
    for (const n of [1, 2, 3]) await bus.publishDurable('test.events.a', encode(`a${n}`));
    const consumer = await bus.consume(
      { stream: STREAM.name, durable: 'in-order', filterSubject: 'test.events.a' },
      async (m) => {
        await sleep(5); // a slow handler still sees one message at a time, in order
        seen.push(text(m));
      },
    );
    await eventually(() => seen.length === 3, 10_000, 'three messages');
    await consumer.stop();
    assert.deepEqual(seen, ['a1', 'a2', 'a3']);
    const info = await bus.js.consumers.get(STREAM.name, 'in-order').then((c) => c.info());
    assert.equal(info.num_ack_pending, 0, 'every handled message was acknowledged');
    assert.equal(info.num_pending, 0);
  });

  test('a durable consumer resumes where it stopped, and only sees its filter subject', async () => {
    const seen: string[] = [];
    const spec = { stream: STREAM.name, durable: 'resumes', filterSubject: 'test.events.b' };
    await bus.publishDurable('test.events.b', encode('b1'));
    await bus.publishDurable('test.events.other', encode('not mine'));
    const first = await bus.consume(spec, async (m) => void seen.push(text(m)));
    await eventually(() => seen.length === 1, 10_000, 'b1');
    await first.stop();

    await bus.publishDurable('test.events.b', encode('b2'));
    await sleep(300);
    assert.deepEqual(seen, ['b1'], 'nothing is handled after stop()');
    const second = await bus.consume(spec, async (m) => void seen.push(text(m)));
    await eventually(() => seen.length === 2, 10_000, 'b2');
    await sleep(200);
    await second.stop();
    assert.deepEqual(seen, ['b1', 'b2'], 'b1 is not handed out again; b2 was kept for the consumer');
  });

  test('a failing handler gets the message again, with its delivery count', async () => {
    const attempts: { body: string; deliveryCount: number }[] = [];
    await bus.publishDurable('test.events.c', encode('c1'));
    const consumer = await bus.consume(
      { stream: STREAM.name, durable: 'retries', filterSubject: 'test.events.c', retryDelayMs: 100 },
      async (m) => {
        attempts.push({ body: text(m), deliveryCount: m.deliveryCount });
        if (attempts.length < 3) throw new Error('not yet');
      },
    );
    await eventually(() => attempts.length === 3, 10_000, 'three attempts');
    await sleep(300);
    await consumer.stop();
    assert.deepEqual(
      attempts.map((a) => [a.body, a.deliveryCount]),
      [
        ['c1', 1],
        ['c1', 2],
        ['c1', 3],
      ],
      'redelivered after each failure and not after the success',
    );
  });

  test('close() stops the consumers it started', async () => {
    const own = await Bus.connect(nats.url, 'bus-test-close');
    const seen: string[] = [];
    await own.consume(
      { stream: STREAM.name, durable: 'closed-with-bus', filterSubject: 'test.events.d' },
      async (m) => void seen.push(text(m)),
    );
    await bus.publishDurable('test.events.d', encode('d1'));
    await eventually(() => seen.length === 1, 10_000, 'd1');
    await own.close();
    await bus.publishDurable('test.events.d', encode('d2'));
    await sleep(300);
    assert.deepEqual(seen, ['d1']);
  });

  test('keeps consuming after NATS restarts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qpq-bus-restart-'));
    const port = await freeTcpPort();
    let server = await startNats({ dir, port });
    const own = await Bus.connect(server.url, 'bus-test-restart');
    try {
      await own.ensureStream(STREAM);
      const seen: string[] = [];
      await own.consume(
        { stream: STREAM.name, durable: 'survives-restart', filterSubject: 'test.events.e' },
        async (m) => void seen.push(text(m)),
      );
      await own.publishDurable('test.events.e', encode('e1'));
      await eventually(() => seen.length === 1, 10_000, 'e1');
      await server.stop();
      await eventually(() => !own.isConnected(), 10_000, 'the bus to notice');
      server = await startNats({ dir, port });
      await eventually(() => own.isConnected(), 15_000, 'the bus to reconnect');
      await own.publishDurable('test.events.e', encode('e2'));
      await eventually(() => seen.length === 2, 30_000, 'e2 after the restart');
      assert.deepEqual(seen, ['e1', 'e2']);
    } finally {
      await own.close();
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
