import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { connect, StringCodec } from 'nats';
import { startNats, type NatsHandle } from './nats.js';
import { processAlive } from './processes.js';

const sc = StringCodec();
const started: NatsHandle[] = [];
after(async () => {
  await Promise.allSettled(started.map((h) => h.stop()));
});

function refusesConnections(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

test('starts nats-server with JetStream: a published message is stored and read back', async () => {
  const nats = await startNats();
  started.push(nats);
  console.log(`nats-server started in ${nats.startMs} ms`);
  assert.equal(nats.external, false);
  assert.match(nats.url, /^nats:\/\/127\.0\.0\.1:\d+$/);

  const nc = await connect({ servers: nats.url });
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: 'TESTNET', subjects: ['testnet.>'] });
  const ack = await nc.jetstream().publish('testnet.hello', sc.encode('stored'));
  assert.equal(ack.stream, 'TESTNET');
  assert.equal(ack.duplicate, false);
  const msg = await jsm.streams.getMessage('TESTNET', { seq: ack.seq });
  assert.equal(sc.decode(msg.data), 'stored');
  await nc.close();
  assert.ok(readdirSync(nats.storeDir, { recursive: true }).length > 0, 'JetStream wrote to its store dir');

  const pid = nats.pid ?? -1;
  await nats.stop();
  assert.equal(processAlive(pid), false);
  assert.equal(await refusesConnections(nats.url), true);
  assert.equal(existsSync(nats.storeDir), false, 'a throwaway store is removed');
  await nats.stop(); // idempotent
});

test('a store dir keeps streams and messages across restarts', async () => {
  const base = await mkdtemp(join(tmpdir(), 'qpq-nats-test-'));
  await chmod(base, 0o755);
  const dir = join(base, 'store');
  try {
    const first = await startNats({ dir });
    started.push(first);
    let nc = await connect({ servers: first.url });
    await (await nc.jetstreamManager()).streams.add({ name: 'KEEP', subjects: ['keep.>'] });
    await nc.jetstream().publish('keep.a', sc.encode('still here'));
    await nc.close();
    await first.stop();

    const second = await startNats({ dir });
    started.push(second);
    nc = await connect({ servers: second.url });
    const msg = await (await nc.jetstreamManager()).streams.getMessage('KEEP', { seq: 1 });
    assert.equal(sc.decode(msg.data), 'still here');
    await nc.close();
    await second.stop();
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});

test('a taken port fails start-up with one clear line', async () => {
  const holder = await startNats();
  started.push(holder);
  const port = Number(new URL(holder.url).port);
  await assert.rejects(startNats({ port }), new RegExp(`port ${port}/tcp is already in use`));
  await holder.stop();
});

test('QPQ_NATS_URL: that server is used and stop() leaves it running', async () => {
  const server = await startNats();
  started.push(server);
  const saved = process.env.QPQ_NATS_URL;
  process.env.QPQ_NATS_URL = server.url;
  try {
    const ext = await startNats();
    assert.equal(ext.external, true);
    assert.equal(ext.url, server.url);
    await ext.stop();
    const nc = await connect({ servers: ext.url });
    await nc.flush();
    await nc.close();
  } finally {
    if (saved === undefined) delete process.env.QPQ_NATS_URL;
    else process.env.QPQ_NATS_URL = saved;
    await server.stop();
  }
});
