// Two people exchange MLS-encrypted direct messages through the whole system: the real `qpq` command
// and the SDK over QUIC, the gateway, gRPC services in their own processes, Postgres and NATS.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestNetwork } from '@qpq/testnet';
import { bootNetwork, dataDirOf, jsonLines, openClient, qpq, waitFor } from './support.js';

describe('direct messages between two people', () => {
  let net: TestNetwork;
  const alice = () => dataDirOf(net, 'alice');
  const bob = () => dataDirOf(net, 'bob');

  before(async () => {
    net = await bootNetwork();
  });
  after(async () => {
    await net?.destroy();
  });

  test('alice and bob register with the CLI and exchange messages both ways', async () => {
    const reg1 = await qpq(net, alice(), ['register', '-u', 'alice', '-p', 'correct horse battery']);
    assert.equal(reg1.code, 0, reg1.stderr);
    const reg2 = await qpq(net, bob(), ['register', '-u', 'bob', '-p', 'staple tuna guitar']);
    assert.equal(reg2.code, 0, reg2.stderr);

    const sent = await qpq(net, alice(), ['send', 'bob', 'hello bob, it is alice']);
    assert.equal(sent.code, 0, sent.stderr);
    const got = await qpq(net, bob(), ['recv', '--wait', '10', '--json']);
    assert.equal(got.code, 0, got.stderr);
    const lines = jsonLines(got.stdout);
    assert.equal(lines.length, 1, got.stdout);
    assert.equal(lines[0]!['from'], 'alice@localhost');
    assert.equal(lines[0]!['text'], 'hello bob, it is alice');
    assert.equal(lines[0]!['conversation'], 'alice@localhost');

    const reply = await qpq(net, bob(), ['send', 'alice', 'hi alice, bob here']);
    assert.equal(reply.code, 0, reply.stderr);
    const back = await qpq(net, alice(), ['--json', 'recv', '--wait', '10']);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(
      jsonLines(back.stdout).map((m) => [m['from'], m['text']]),
      [['bob@localhost', 'hi alice, bob here']],
    );

    // Nothing is shown twice, and an empty mailbox still exits 0.
    const again = await qpq(net, alice(), ['recv', '--wait', '1', '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(jsonLines(again.stdout), []);
  });

  test('bob, offline, receives everything on his next connect, in order and without gaps', async () => {
    const texts = Array.from({ length: 25 }, (_, i) => `offline message ${i + 1}`);
    const a = await openClient(net, 'alice');
    try {
      for (const text of texts) {
        const sent = await a.sendText('bob', text);
        assert.equal(sent.delivered, true);
      }
    } finally {
      await a.close();
    }

    const b = await openClient(net, 'bob');
    try {
      await b.connect();
      const received = (await b.takeUnshown()).filter((m) => m.from === 'alice@localhost');
      assert.deepEqual(
        received.map((m) => m.text),
        texts,
      );
      const seqs = received.map((m) => m.seq!);
      for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1, `seqs ${seqs.join(',')}`);
    } finally {
      await b.close();
    }
  });

  test('a live connection gets new messages pushed as they arrive', async () => {
    const b = await openClient(net, 'bob');
    const a = await openClient(net, 'alice');
    try {
      await b.connect({ stayConnected: true });
      const arrived = new Promise<string>((resolve) => b.on('message', (m) => resolve(m.text)));
      await a.sendText('bob', 'pushed to you');
      const text = await Promise.race([
        arrived,
        new Promise<string>((_, reject) => setTimeout(() => reject(new Error('no push within 10 s')), 10_000)),
      ]);
      assert.equal(text, 'pushed to you');
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a wrong password gives one clear error line', async () => {
    const res = await qpq(net, dataDirOf(net, 'alice-wrong'), ['login', '-u', 'alice', '-p', 'not her password']);
    assert.notEqual(res.code, 0);
    const lines = res.stderr.trim().split('\n');
    assert.equal(lines.length, 1, res.stderr);
    assert.match(lines[0]!, /wrong username or password/);
    // An unknown user gets the very same answer (no enumeration).
    const unknown = await qpq(net, dataDirOf(net, 'nobody'), ['login', '-u', 'nobody', '-p', 'whatever pass']);
    assert.equal(unknown.stderr, res.stderr);
  });

  test('a 6th device is refused with a line naming the limit', async () => {
    await qpq(net, dataDirOf(net, 'carol-1'), ['register', '-u', 'carol', '-p', 'carol password 1']).then((r) =>
      assert.equal(r.code, 0, r.stderr),
    );
    for (let i = 2; i <= 5; i++) {
      const r = await qpq(net, dataDirOf(net, `carol-${i}`), ['login', '-u', 'carol', '-p', 'carol password 1']);
      assert.equal(r.code, 0, `device ${i}: ${r.stderr}`);
    }
    const sixth = await qpq(net, dataDirOf(net, 'carol-6'), ['login', '-u', 'carol', '-p', 'carol password 1']);
    assert.notEqual(sixth.code, 0);
    const lines = sixth.stderr.trim().split('\n');
    assert.equal(lines.length, 1, sixth.stderr);
    assert.match(lines[0]!, /at most 5 devices/);
    // The five devices still work: the first one can send.
    const ok = await qpq(net, dataDirOf(net, 'carol-1'), ['send', 'alice', 'carol has five devices']);
    assert.equal(ok.code, 0, ok.stderr);
    const seen = await waitFor('carol message at alice', async () => {
      const r = await qpq(net, alice(), ['recv', '--wait', '2', '--json']);
      const m = jsonLines(r.stdout).find((x) => x['text'] === 'carol has five devices');
      return m;
    });
    assert.equal(seen['from'], 'carol@localhost');
  });
});
