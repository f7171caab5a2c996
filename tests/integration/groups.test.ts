/**
 * Groups and multi-device on the whole system (every service its own process, real Postgres, NATS
 * JetStream, QUIC): fan-out to every device of every member exactly once and in order, removal,
 * commit races settled by the delivery service, a device catching up after membership changes, a new
 * device handed its history, disappearing messages, and device revocation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodePayload, groupInfo } from '@qpq/crypto';
import type { QpqClient, ReceivedMessage } from '@qpq/sdk';
import type { TestNetwork } from '@qpq/testnet';
import pg from 'pg';
import { bootNetwork, openClient, waitFor } from './support.js';

let net: TestNetwork;
let db: pg.Client;
const clients: QpqClient[] = [];
const warnings: string[] = [];
/** Every message each client announced, in order. */
const seen = new Map<QpqClient, ReceivedMessage[]>();

before(async () => {
  net = await bootNetwork({ serviceEnv: { delivery: { QPQ_GC_INTERVAL: '1s' } } });
  db = new pg.Client({ connectionString: net.databaseUrl });
  await db.connect();
});
after(async () => {
  await Promise.allSettled(clients.map((c) => c.close(1_000)));
  await db?.end();
  await net?.destroy();
});

let n = 0;
/** A connected client: registers `username` (first device) or logs in as a new device of it. */
async function device(username: string, opts: { register: boolean }): Promise<QpqClient> {
  const client = await openClient(net, `${username}-${n++}`);
  client.on('warning', (w) => warnings.push(`${username}: ${w.message}`));
  seen.set(client, []);
  client.on('message', (m) => seen.get(client)!.push(m));
  clients.push(client);
  if (opts.register) await client.register(username, `pw of ${username}`);
  else await client.login(username, `pw of ${username}`);
  await client.connect({ stayConnected: true });
  return client;
}

const unique = (label: string) => `${label}${Math.random().toString(36).slice(2, 7)}`;

/** The group's epoch and members (device identities) as this client's store holds them. */
async function groupView(client: QpqClient, groupId: string): Promise<{ epoch: bigint; members: string[] }> {
  const state = (await client.store.read()).groups[groupId]?.state;
  if (!state) return { epoch: -1n, members: [] };
  const info = groupInfo(Buffer.from(state, 'base64'));
  return { epoch: info.epoch, members: [...info.members].sort() };
}

async function sameGroupState(
  all: QpqClient[],
  groupId: string,
  timeoutMs = 30_000,
): Promise<{ epoch: bigint; members: string[] }> {
  return waitFor(
    'every client in the same epoch with the same members',
    async () => {
      await Promise.all(all.map((c) => c.receive()));
      const views = await Promise.all(all.map((c) => groupView(c, groupId)));
      const first = JSON.stringify(views[0], (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      const agree = views.every(
        (v) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) === first,
      );
      return agree && views[0]!.epoch >= 0n ? views[0] : undefined;
    },
    timeoutMs,
  );
}

function textsFrom(client: QpqClient, from: string, conversation: string): string[] {
  return seen
    .get(client)!
    .filter((m) => m.from === from && m.conversation === conversation)
    .map((m) => m.text);
}

describe('groups and devices', { timeout: 600_000 }, () => {
  it('a group of 3 accounts × 2 devices: every message reaches all 6 devices once, in order; a removed member gets nothing after', async () => {
    const [a, b, c] = [unique('alice'), unique('bob'), unique('carol')];
    const a1 = await device(a, { register: true });
    const a2 = await device(a, { register: false });
    const b1 = await device(b, { register: true });
    const b2 = await device(b, { register: false });
    const c1 = await device(c, { register: true });
    const c2 = await device(c, { register: false });
    const all = [a1, a2, b1, b2, c1, c2];
    const group = await a1.createGroup('team', [b, c]);
    const state = await sameGroupState(all, group.id);
    assert.equal(state.members.length, 6, 'all six devices are members');
    assert.equal(group.kind, 'group');

    const senders: [QpqClient, string][] = [
      [a1, `${a}@localhost`],
      [b2, `${b}@localhost`],
      [c1, `${c}@localhost`],
      [a2, `${a}@localhost`],
    ];
    const sent = new Map<QpqClient, string[]>();
    for (let i = 0; i < 5; i++) {
      await Promise.all(
        senders.map(async ([s]) => {
          const text = `m${i} from ${senders.findIndex(([x]) => x === s)}`;
          await s.send(group.id, text);
          sent.set(s, [...(sent.get(s) ?? []), text]);
        }),
      );
    }
    for (const receiver of all) {
      for (const [sender, address] of senders) {
        if (sender === receiver) continue;
        const expected = sent.get(sender)!;
        await waitFor(`${expected.length} messages of one sender at a receiver`, async () => {
          const got = textsFrom(receiver, address, group.id).filter((t) => expected.includes(t));
          return got.length >= expected.length ? got : undefined;
        });
      }
      // Exactly once each, and each sender's messages in the order sent.
      const ids = seen
        .get(receiver)!
        .filter((m) => m.conversation === group.id)
        .map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, 'no message announced twice');
      for (const [sender] of senders) {
        if (sender === receiver) continue;
        const order = seen
          .get(receiver)!
          .filter((m) => m.conversation === group.id && sent.get(sender)!.includes(m.text))
          .map((m) => m.text);
        assert.deepEqual(order, sent.get(sender), 'in the order sent');
      }
      const history = await receiver.history(group.id);
      assert.equal(history.length, 20, 'every message once in each history');
      assert.ok(history.every((h) => h.group === 'team'));
    }

    // Every device acknowledged a1's messages: a1 shows them delivered; a read receipt makes them read.
    await waitFor('a1 sees its messages delivered', async () => {
      const own = (await a1.history(group.id)).filter((h) => sent.get(a1)!.includes(h.text));
      return own.length === 5 && own.every((h) => h.status === 'delivered') ? true : undefined;
    });
    assert.equal(await b1.markRead(group.id), 15, 'b1 read the 15 messages of the others');
    await waitFor('a1 sees them read by b', async () => {
      const own = (await a1.history(group.id)).filter((h) => sent.get(a1)!.includes(h.text));
      return own.every((h) => h.status === 'read' && h.readBy.includes(`${b}@localhost`)) ? true : undefined;
    });
    await waitFor("b2 knows b1 read them: an account's receipt covers its devices", async () => {
      const history = (await b2.store.read()).conversations[group.id]!.history;
      return history.filter((h) => h.direction === 'in').every((h) => h.receiptSent) ? true : undefined;
    });

    await a1.removeMember(group.id, c);
    const afterRemoval = await sameGroupState([a1, a2, b1, b2], group.id);
    assert.equal(afterRemoval.members.length, 4);
    assert.ok(afterRemoval.members.every((m) => !m.startsWith(`${c}@`)));
    await waitFor('carol sees she was removed', async () =>
      (await c1.conversations()).find((x) => x.id === group.id)?.left ? true : undefined,
    );
    const before1 = seen.get(c1)!.length;
    const before2 = seen.get(c2)!.length;
    await b1.send(group.id, 'after carol left');
    await waitFor('a2 gets the message', async () =>
      textsFrom(a2, `${b}@localhost`, group.id).includes('after carol left') ? true : undefined,
    );
    await Promise.all([c1.receive(), c2.receive()]);
    assert.equal(seen.get(c1)!.length, before1, 'a removed device receives nothing new');
    assert.equal(seen.get(c2)!.length, before2, 'a removed device receives nothing new');
    const mailbox = await db.query(
      `select count(*)::int as n from delivery.messages m where m.message_id in (
         select message_id from delivery.messages where sender_device_id = $1 order by accepted_at desc limit 1)
       and exists (select 1 from delivery.mailbox x where x.message_pk = m.id and x.device_id = any($2::uuid[]))`,
      [(await b1.account())!.deviceId, [(await c1.account())!.deviceId, (await c2.account())!.deviceId]],
    );
    assert.equal(mailbox.rows[0].n, 0, 'the server was not even asked to deliver it to carol');
  });

  it('twelve concurrent Commits for one epoch: one wins at a time, everyone ends in the same epoch, no losing Welcome is delivered', async () => {
    const names = Array.from({ length: 12 }, (_, i) => unique(`r${i}`));
    const members = [];
    for (const name of names) members.push(await device(name, { register: true }));
    const invitees = Array.from({ length: 6 }, (_, i) => unique(`inv${i}`));
    const inviteeClients = [];
    for (const name of invitees) {
      const client = await device(name, { register: true });
      inviteeClients.push(client);
    }
    // The invitees go offline so their mailboxes can be inspected before they read them.
    await Promise.all(inviteeClients.map((c) => c.close(1_000)));
    const group = await members[0]!.createGroup('race', names.slice(1));
    const start = await sameGroupState(members, group.id);

    // Six members invite someone, six rotate their keys — all at once, all on the same epoch.
    await Promise.all(
      members.map((m, i) => (i % 2 === 0 ? m.invite(group.id, invitees[i / 2]!) : m.rotateKeys(group.id))),
    );
    // Twelve rounds of conflict, fetch and retry, every client's MLS work in this one process: 33–71 s
    // in CI runs, once 91 s on a busy machine. The test is about convergence, not its speed.
    const end = await sameGroupState(members, group.id, 120_000);
    assert.equal(end.epoch, start.epoch + 12n, 'every change made it, one epoch each');
    assert.equal(end.members.length, 18);
    // The delivery service refused the Commits that lost an epoch (and the clients retried them).
    const metrics = await (await fetch(`http://${net.addressOf('delivery').metrics}/metrics`)).text();
    const conflicts = Number(/^qpq_delivery_commit_conflicts_total\S* (\d+)/m.exec(metrics)?.[1] ?? 0);
    assert.ok(conflicts >= 11, `at least 11 Commits lost the first epoch (${conflicts} conflicts in all)`);

    // Each invitee's mailbox holds exactly one Welcome: the one that travelled with its winning Commit.
    const welcomes = await db.query(
      `select x.device_id, m.payload from delivery.mailbox x join delivery.messages m on m.id = x.message_pk`,
    );
    const inviteeDevices = new Set<string>();
    for (const c of inviteeClients) inviteeDevices.add((await c.account())!.deviceId);
    const perDevice = new Map<string, number>();
    for (const row of welcomes.rows as { device_id: string; payload: Buffer | null }[]) {
      if (!inviteeDevices.has(row.device_id) || !row.payload) continue;
      if (decodePayload(new Uint8Array(row.payload)).$case === 'welcome') {
        perDevice.set(row.device_id, (perDevice.get(row.device_id) ?? 0) + 1);
      }
    }
    assert.deepEqual(
      [...inviteeDevices].map((d) => perDevice.get(d) ?? 0),
      invitees.map(() => 1),
    );

    const back = [];
    for (const c of inviteeClients) {
      const again = await openClient(net, `${c.dataDir.split('/').pop()!}`);
      clients.push(again);
      await again.connect({ stayConnected: true });
      back.push(again);
    }
    const final = await sameGroupState([...members, ...back], group.id, 60_000);
    assert.equal(final.members.length, 18);
  });

  it('a device offline for 100 messages and two membership changes catches up to the same state', async () => {
    const [a, b, c, d] = [unique('al'), unique('bo'), unique('ca'), unique('da')];
    const a1 = await device(a, { register: true });
    const b1 = await device(b, { register: true });
    const b2 = await device(b, { register: false });
    await device(c, { register: true });
    await device(d, { register: true });
    const group = await a1.createGroup('catchup', [b, c]);
    await sameGroupState([a1, b1, b2], group.id);
    await b2.close(1_000);
    for (let i = 0; i < 50; i++) await a1.send(group.id, `offline ${i}`);
    await a1.invite(group.id, d);
    for (let i = 50; i < 80; i++) await b1.send(group.id, `offline ${i}`);
    await a1.removeMember(group.id, c);
    for (let i = 80; i < 100; i++) await a1.send(group.id, `offline ${i}`);
    const b2again = await openClient(net, b2.dataDir.split('/').pop()!);
    clients.push(b2again);
    seen.set(b2again, []);
    b2again.on('message', (m) => seen.get(b2again)!.push(m));
    await b2again.connect({ stayConnected: true });
    const state = await sameGroupState([a1, b1, b2again], group.id);
    assert.equal(state.members.length, 4, 'a1, b1, b2 and d');
    const history = (await b2again.history(group.id)).map((h) => h.text).filter((t) => t.startsWith('offline '));
    assert.deepEqual(
      history,
      Array.from({ length: 100 }, (_, i) => `offline ${i}`),
    );
  });

  it('a member who leaves is removed by the others, on all its devices, and gets nothing after', async () => {
    const [a, b, c] = [unique('lea'), unique('ves'), unique('gone')];
    const a1 = await device(a, { register: true });
    const b1 = await device(b, { register: true });
    const c1 = await device(c, { register: true });
    const c2 = await device(c, { register: false });
    const group = await a1.createGroup('leavers', [b, c]);
    await sameGroupState([a1, b1, c1, c2], group.id);
    await c1.leave(group.id);
    await waitFor('a remaining member commits the removal', async () => {
      await a1.receive();
      const view = await groupView(a1, group.id);
      return view.members.some((m) => m.startsWith(`${c}@`)) ? undefined : true;
    });
    const state = await sameGroupState([a1, b1], group.id);
    assert.deepEqual(
      state.members.map((m) => m.split('/')[0]),
      [`${a}@localhost`, `${b}@localhost`].sort(),
    );
    for (const client of [c1, c2]) {
      await waitFor('the leaver’s devices know', async () => {
        await client.receive();
        return (await client.conversations()).find((x) => x.id === group.id)?.left ? true : undefined;
      });
    }
    await a1.send(group.id, 'after the leave');
    await waitFor('b gets it', async () =>
      textsFrom(b1, `${a}@localhost`, group.id).includes('after the leave') ? true : undefined,
    );
    await Promise.all([c1.receive(), c2.receive()]);
    assert.ok(!textsFrom(c2, `${a}@localhost`, group.id).includes('after the leave'));
    await assert.rejects(c2.send(group.id, 'still here?'), /no longer in/);
  });

  it('a device linked after 20 messages sees them in its history', async () => {
    const [a, b] = [unique('ann'), unique('ben')];
    const a1 = await device(a, { register: true });
    const b1 = await device(b, { register: true });
    for (let i = 0; i < 10; i++) {
      await a1.sendText(b, `before link a${i}`);
      await b1.sendText(a, `before link b${i}`);
    }
    await waitFor('a1 has all 20', async () => ((await a1.history(`${b}@localhost`)).length === 20 ? true : undefined));
    const a2 = await device(a, { register: false });
    const history = await waitFor(
      'the new device has the history',
      async () => {
        await a2.receive();
        const h = await a2.history(`${b}@localhost`);
        return h.length >= 20 ? h : undefined;
      },
      30_000,
    );
    assert.equal(history.length, 20);
    assert.deepEqual(
      history.filter((h) => h.from === `${a}@localhost`).map((h) => h.text),
      Array.from({ length: 10 }, (_, i) => `before link a${i}`),
    );
    assert.ok(history.filter((h) => h.from === `${a}@localhost`).every((h) => h.direction === 'out'));
    // It came through the group of ann's own devices, which no conversation list shows.
    assert.equal((await a2.store.read()).conversations['~self']?.kind, 'self');
    assert.deepEqual(
      (await a2.conversations()).map((c) => c.id),
      [`${b}@localhost`],
    );
    // And it is in the conversation from now on, both ways.
    await b1.sendText(a, 'after link');
    await waitFor('a2 gets new messages', async () =>
      (await a2.history(`${b}@localhost`)).some((h) => h.text === 'after link') ? true : undefined,
    );
  });

  it('disappearing messages leave Postgres and every store after their time', async () => {
    const [a, b] = [unique('dis'), unique('app')];
    const a1 = await device(a, { register: true });
    const b1 = await device(b, { register: true });
    await a1.sendText(b, 'this one stays');
    await a1.setDisappearing(`${b}@localhost`, 3_000);
    await waitFor('b has the timer', async () =>
      (await b1.conversations()).find((x) => x.id === `${a}@localhost`)?.disappearAfterMs === 3_000 ? true : undefined,
    );
    const gone = await a1.sendText(b, 'this one disappears');
    await waitFor('b has it', async () =>
      (await b1.history(`${a}@localhost`)).some((h) => h.text === 'this one disappears') ? true : undefined,
    );
    const row = await db.query('select count(*)::int as n from delivery.messages where message_id = $1', [gone.id]);
    assert.equal(row.rows[0].n, 1);
    await waitFor(
      'gone from Postgres',
      async () => {
        const r = await db.query('select count(*)::int as n from delivery.messages where message_id = $1', [gone.id]);
        return r.rows[0].n === 0 ? true : undefined;
      },
      15_000,
    );
    for (const client of [a1, b1]) {
      await waitFor('gone from the store', async () => {
        await client.history(`${client === a1 ? b : a}@localhost`);
        const doc = JSON.stringify(await client.store.read());
        return doc.includes('this one disappears') ? undefined : true;
      });
      const texts = (await client.history(`${client === a1 ? b : a}@localhost`)).map((h) => h.text);
      assert.ok(texts.includes('this one stays'), 'messages from before the timer stay');
    }
  });

  it('a revoked device is removed from its groups and its next request is refused', async () => {
    const [a, b] = [unique('rev'), unique('oke')];
    const a1 = await device(a, { register: true });
    const a2 = await device(a, { register: false });
    const b1 = await device(b, { register: true });
    const group = await b1.createGroup('revoke', [a]);
    await sameGroupState([a1, a2, b1], group.id);
    const a2id = (await a2.account())!.deviceId;
    await a1.revokeDevice(a2id);
    const state = await sameGroupState([a1, b1], group.id);
    assert.ok(
      state.members.every((m) => !m.endsWith(a2id)),
      'the revoked device is out of the group',
    );
    await assert.rejects(
      async () => {
        await a2.send(group.id, 'from a revoked device');
      },
      (err: Error) => /session expired|revoked|no longer/i.test(err.message),
    );
    assert.ok(!(await a1.devices()).some((d) => d.deviceId === a2id));
  });

  it('no warnings were raised along the way', () => {
    assert.deepEqual(
      warnings.filter((w) => !/closed|connection|revoked|session expired/i.test(w)),
      [],
    );
  });
});
