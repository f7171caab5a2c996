// The server never sees plaintext: after real conversations, neither Postgres (tables and WAL), nor
// the NATS store, nor any service's log holds what was sent — as text, base64 or hex.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestNetwork } from '@qpq/testnet';
import { search } from './plaintext-search.js';
import { bootNetwork, marker, openClient } from './support.js';

describe('the server never sees plaintext', { timeout: 180_000 }, () => {
  let net: TestNetwork;
  const sent: string[] = [];
  const username = `probe${Math.random().toString(36).slice(2, 8)}`;

  before(async () => {
    net = await bootNetwork();
    const alice = await openClient(net, 'alice');
    const bob = await openClient(net, username);
    await alice.register('alice', 'alice password 1');
    await bob.register(username, 'probe password 1');
    for (let i = 0; i < 5; i++) {
      const a = marker(`secret-from-alice-${i}`);
      const b = marker(`secret-from-bob-${i}`);
      sent.push(a, b);
      await alice.sendText(username, a);
      await bob.sendText('alice', b);
    }
    // Both sides read everything, so the text went the whole way.
    await alice.receive();
    await bob.receive();
    const atBob = (await bob.history('alice@localhost')).map((m) => m.text);
    const atAlice = (await alice.history(`${username}@localhost`)).map((m) => m.text);
    for (const s of sent) assert.ok(atBob.includes(s) && atAlice.includes(s), `${s} was exchanged`);
    await alice.close();
    await bob.close();
    // Stop the services so every log line and the NATS store are on disk; Postgres keeps running
    // only to be stopped by destroy(), and its files are read as they are.
    for (const name of net.serviceNames()) await net.stopService(name);
  });
  after(async () => {
    await net?.destroy();
  });

  test('the search finds what the server does know (the username), so it can fail', async () => {
    const found = await search([join(net.dir, 'postgres'), join(net.dir, 'logs')], [username]);
    assert.ok((found.get(username) ?? []).length > 0, 'the username is stored in Postgres');
  });

  test('no message text in Postgres data (tables and WAL), the NATS store, or any log', async () => {
    const dirs = [join(net.dir, 'postgres'), join(net.dir, 'nats'), join(net.dir, 'logs')];
    const found = await search(dirs, sent);
    assert.deepEqual(Object.fromEntries(found), {});
  });
});
