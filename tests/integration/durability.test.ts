// Killing a service mid-conversation and starting it again loses no acknowledged message.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { QpqClient } from '@qpq/sdk';
import type { TestNetwork } from '@qpq/testnet';
import { bootNetwork, openClient, waitFor } from './support.js';

describe('a service killed mid-conversation', { timeout: 240_000 }, () => {
  let net: TestNetwork;
  let alice: QpqClient;
  let bob: QpqClient;

  before(async () => {
    net = await bootNetwork();
    alice = await openClient(net, 'alice');
    bob = await openClient(net, 'bob');
    await alice.register('alice', 'alice password 1');
    await bob.register('bob', 'bob password 123');
    await alice.sendText('bob', 'before anything breaks');
  });
  after(async () => {
    await alice?.close(2_000);
    await bob?.close(2_000);
    await net?.destroy();
  });

  for (const victim of ['delivery', 'gateway-0', 'auth', 'keypackage'] as const) {
    test(`SIGKILL of ${victim} while alice sends: every acknowledged message reaches bob`, async () => {
      const acknowledged: string[] = [];
      const queued: string[] = [];
      const sending = (async () => {
        for (let i = 0; i < 30; i++) {
          const text = `${victim} message ${i}`;
          try {
            const sent = await alice.sendText('bob', text);
            if (sent.delivered) acknowledged.push(text);
          } catch {
            // Not acknowledged: it waits in the outbox and goes out later with the same message id.
            queued.push(text);
          }
        }
      })();
      await waitFor('a few acknowledged sends', async () => (acknowledged.length >= 5 ? true : undefined), 60_000);
      await net.killService(victim);
      await new Promise((r) => setTimeout(r, 500));
      await net.startService(victim);
      await sending;
      await alice.flushOutbox();
      assert.equal(await alice.pendingOutbox(), 0, 'the outbox drains once the service is back');

      const texts = new Set<string>();
      await waitFor(
        'every acknowledged message at bob',
        async () => {
          await bob.receive();
          for (const m of await bob.takeUnshown()) texts.add(m.text);
          return acknowledged.every((t) => texts.has(t)) && queued.every((t) => texts.has(t)) ? true : undefined;
        },
        60_000,
      );
      // Exactly once each: nothing doubled by the retries.
      const history = (await bob.history('alice@localhost')).filter((m) => m.text.startsWith(`${victim} message`));
      assert.equal(history.length, 30, history.map((m) => m.text).join(' | '));
      assert.equal(new Set(history.map((m) => m.text)).size, 30);
    });
  }
});
