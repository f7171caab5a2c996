import { status as GrpcStatus } from '@grpc/grpc-js';
import { subjects } from '@qpq/bus';
import { DeliveryProof, DeliveryServiceService, Push, type EnqueueResponse } from '@qpq/proto';
import type { Identity } from '@qpq/runtime';
import { waitFor } from '@qpq/testnet';
import { sql } from 'kysely';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeliveryService } from './index.js';
import { verifyDeliveryProof } from '@qpq/crypto';
import { bytes, deliveryUnderTest, metric, newDevice, rejection, sameBytes, text, uuidv7 } from './test-helpers.js';

const { enqueue: Enqueue, fetch: Fetch, ack: Ack } = DeliveryServiceService;
const MAX_PAYLOAD = 256 * 1024;

describe('delivery service', () => {
  const delivery = deliveryUnderTest();

  const enqueue = (sender: Identity, recipients: Identity[], payload: Uint8Array, messageId = uuidv7()) =>
    delivery.gateway.call(
      Enqueue,
      {
        messageId,
        recipientDeviceIds: recipients.map((r) => r.deviceId),
        payload,
        groupId: new Uint8Array(0),
        ttlSeconds: 0,
        welcome: undefined,
      },
      { identity: sender },
    );
  const fetchAfter = (device: Identity, afterSeq = 0n, limit = 0) =>
    delivery.gateway.call(Fetch, { afterSeq, limit }, { identity: device });
  const ack = (device: Identity, upToSeq: bigint) => delivery.gateway.call(Ack, { upToSeq }, { identity: device });
  const seqOf = (res: EnqueueResponse, device: Identity) =>
    res.recipients.find((r) => r.deviceId === device.deviceId)?.seq;
  const count = async (table: 'messages' | 'mailbox' | 'device_cursors') =>
    Number(
      (
        await delivery.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  it('refuses calls whose identity does not come from the gateway', async () => {
    const alice = newDevice();
    const fromStranger = await rejection(
      delivery.stranger.call(Fetch, { afterSeq: 0n, limit: 0 }, { identity: alice }),
    );
    assert.equal(fromStranger.code, GrpcStatus.UNAUTHENTICATED);
    const noIdentity = await rejection(delivery.gateway.call(Fetch, { afterSeq: 0n, limit: 0 }));
    assert.equal(noIdentity.code, GrpcStatus.UNAUTHENTICATED);
    const enqueueFromStranger = await rejection(
      delivery.stranger.call(
        Enqueue,
        {
          messageId: uuidv7(),
          recipientDeviceIds: [alice.deviceId],
          payload: bytes('x'),
          groupId: new Uint8Array(),
          ttlSeconds: 0,
          welcome: undefined,
        },
        { identity: alice },
      ),
    );
    assert.equal(enqueueFromStranger.code, GrpcStatus.UNAUTHENTICATED);
  });

  it('gives every recipient device consecutive seqs across messages', async () => {
    const alice = newDevice('alice');
    const devices = [newDevice('bob'), newDevice('bob'), newDevice('carol')];
    for (let n = 1n; n <= 3n; n++) {
      const res = await enqueue(alice, devices, bytes(`message ${n}`));
      assert.equal(res.duplicate, false);
      assert.deepEqual(
        res.recipients.map((r) => r.deviceId),
        devices.map((d) => d.deviceId).sort(),
      );
      for (const d of devices) assert.equal(seqOf(res, d), n, `seq of message ${n} for ${d.deviceId}`);
    }
    for (const d of devices) {
      const got = await fetchAfter(d);
      assert.deepEqual(
        got.envelopes.map((e) => e.seq),
        [1n, 2n, 3n],
      );
      assert.deepEqual(
        got.envelopes.map((e) => text(e.payload)),
        ['message 1', 'message 2', 'message 3'],
      );
      assert.equal(got.lastSeq, 3n);
    }
  });

  it('keeps seqs gap-free under 50 concurrent enqueues to the same device', async () => {
    const target = newDevice('bob');
    const senders = Array.from({ length: 50 }, () => newDevice('alice'));
    const results = await Promise.all(
      senders.map((s, i) => enqueue(s, i % 2 ? [target, newDevice('x')] : [newDevice('y'), target], bytes(`m${i}`))),
    );
    const seqs = results.map((r) => seqOf(r, target) as bigint).sort((a, b) => Number(a - b));
    assert.deepEqual(
      seqs,
      Array.from({ length: 50 }, (_, i) => BigInt(i + 1)),
    );
    const got = await fetchAfter(target, 0n, 500);
    assert.equal(got.envelopes.length, 50);
    assert.equal(new Set(got.envelopes.map((e) => e.messageId)).size, 50);
    assert.equal(got.lastSeq, 50n);
  });

  it('answers a retry with the original result and stores nothing new', async () => {
    const alice = newDevice('alice');
    const devices = [newDevice('bob'), newDevice('carol')];
    const messageId = uuidv7();
    const first = await enqueue(alice, devices, bytes('hello'), messageId);
    const stored = { messages: await count('messages'), mailbox: await count('mailbox') };
    // The retry lists the recipients in another order: the same set is the same message.
    const retry = await enqueue(alice, [...devices].reverse(), bytes('hello'), messageId.toUpperCase());
    assert.equal(retry.duplicate, true);
    assert.deepEqual(retry.recipients, first.recipients);
    assert.deepEqual(retry.deliveryProof, first.deliveryProof);
    assert.deepEqual({ messages: await count('messages'), mailbox: await count('mailbox') }, stored);
    for (const d of devices) assert.equal((await fetchAfter(d)).lastSeq, 1n);

    const otherSender = await rejection(enqueue(newDevice('mallory'), devices, bytes('hello'), messageId));
    assert.equal(otherSender.code, GrpcStatus.ALREADY_EXISTS);
    const otherPayload = await rejection(enqueue(alice, devices, bytes('hello!'), messageId));
    assert.equal(otherPayload.code, GrpcStatus.ALREADY_EXISTS);
    assert.match(otherPayload.details, /already used/);
  });

  it('stores concurrent enqueues together and still answers each on its own', async () => {
    const batchesBefore = (await metric(delivery.service, 'qpq_delivery_enqueue_batch_size_count')) ?? 0;
    const target = newDevice('bob');
    const alice = newDevice('alice');
    const retried = uuidv7();
    const first = enqueue(alice, [target], bytes('retried'), retried);
    const fresh = Array.from({ length: 40 }, (_, i) =>
      enqueue(newDevice('x'), [target, newDevice('y')], bytes(`m${i}`)),
    );
    // In flight with its first attempt: the same message again, and another sender's message under its id.
    const retry = enqueue(alice, [target], bytes('retried'), retried);
    const reuse = rejection(enqueue(newDevice('mallory'), [target], bytes('other'), retried));
    const [original, again, refused, ...stored] = await Promise.all([first, retry, reuse, ...fresh]);

    assert.equal(original.duplicate, false);
    assert.equal(again.duplicate, true);
    assert.deepEqual(again.recipients, original.recipients);
    assert.deepEqual(again.deliveryProof, original.deliveryProof);
    assert.equal(refused.code, GrpcStatus.ALREADY_EXISTS);
    assert.ok(stored.every((r) => !r.duplicate));
    const seqs = [original, ...stored].map((r) => seqOf(r, target) as bigint).sort((a, b) => Number(a - b));
    assert.deepEqual(
      seqs,
      Array.from({ length: 41 }, (_, i) => BigInt(i + 1)),
      'every stored message has its own seq, gap-free',
    );
    const got = await fetchAfter(target, 0n, 500);
    assert.equal(got.envelopes.length, 41);
    for (const e of got.envelopes) {
      const receipt = [original, ...stored].find((r) => seqOf(r, target) === e.seq);
      assert.ok(receipt, `envelope ${e.seq} was answered to its sender`);
      assert.ok(receipt.deliveryProof, 'a proof came with the receipt');
      assert.equal(verifyDeliveryProof(receipt.deliveryProof, e.payload, delivery.service.proofPublicKey), true);
    }
    const batches = ((await metric(delivery.service, 'qpq_delivery_enqueue_batch_size_count')) ?? 0) - batchesBefore;
    assert.ok(batches < 41, `43 requests were stored in ${batches} transactions: some went together`);
  });

  it('fails only the request the database refuses when a batch cannot be stored', async () => {
    // A trigger stands for any error one message causes: its batch fails, and each is then stored alone.
    await sql`create function refuse_poison() returns trigger language plpgsql as $$
      begin
        if new.payload = convert_to('poison', 'UTF8') then raise exception 'poisoned payload'; end if;
        return new;
      end $$`.execute(delivery.db);
    await sql`create trigger refuse_poison before insert on messages for each row execute function refuse_poison()`.execute(
      delivery.db,
    );
    try {
      const target = newDevice('bob');
      const calls = Array.from({ length: 20 }, (_, i) =>
        enqueue(newDevice('x'), [target], bytes(i === 10 ? 'poison' : `fine ${i}`)),
      );
      const settled = await Promise.allSettled(calls);
      const failed = settled.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
      assert.deepEqual(failed, [10], 'only the poisoned message fails');
      assert.equal((settled[10] as PromiseRejectedResult).reason.code, GrpcStatus.INTERNAL);
      const got = await fetchAfter(target, 0n, 500);
      assert.deepEqual(
        got.envelopes.map((e) => text(e.payload)).sort(),
        settled.flatMap((_, i) => (i === 10 ? [] : [`fine ${i}`])).sort(),
      );
      assert.deepEqual(
        got.envelopes.map((e) => e.seq),
        Array.from({ length: 19 }, (_, i) => BigInt(i + 1)),
        'no seq was lost to the failed batch',
      );
    } finally {
      await sql`drop trigger refuse_poison on messages`.execute(delivery.db);
      await sql`drop function refuse_poison()`.execute(delivery.db);
    }
  });

  it('signs a delivery proof that verifies with the service key and fails when any byte changes', async () => {
    const devices = [newDevice('bob'), newDevice('carol'), newDevice('dave')];
    const payload = bytes('attack at dawn');
    const before = Date.now();
    const res = await enqueue(newDevice('alice'), devices, payload);
    const proof = res.deliveryProof;
    assert.ok(proof);
    assert.deepEqual(proof.recipientDeviceIds, devices.map((d) => d.deviceId).sort());
    assert.ok(proof.acceptedAtMs >= BigInt(before) && proof.acceptedAtMs <= BigInt(Date.now()));
    sameBytes(proof.serverPublicKey, delivery.service.proofPublicKey, 'server public key');
    assert.equal(verifyDeliveryProof(proof, payload, delivery.service.proofPublicKey), true);

    const encoded = DeliveryProof.encode(proof).finish();
    let flips = 0;
    for (let i = 0; i < encoded.length; i++) {
      const tampered = Uint8Array.from(encoded);
      tampered[i] = (tampered[i] as number) ^ 0x01;
      let decoded: DeliveryProof;
      try {
        decoded = DeliveryProof.decode(tampered);
      } catch {
        continue; // no longer a proof at all
      }
      flips++;
      assert.equal(
        verifyDeliveryProof(decoded, payload, delivery.service.proofPublicKey),
        false,
        `byte ${i} of the encoded proof flipped`,
      );
    }
    assert.ok(flips > encoded.length / 2);
    assert.equal(verifyDeliveryProof(proof, bytes('attack at dusk')), false);
  });

  it('answers a mailbox full of the largest payloads in pages that fit, never too big to deliver', async () => {
    const alice = newDevice('alice');
    const bob = newDevice('bob');
    const big = new Uint8Array(256 * 1024).fill(7);
    for (let i = 0; i < 6; i++) {
      await delivery.gateway.call(
        Enqueue,
        {
          messageId: uuidv7(),
          recipientDeviceIds: [bob.deviceId],
          payload: big,
          groupId: new Uint8Array(),
          ttlSeconds: 0,
          welcome: undefined,
        },
        { identity: alice },
      );
    }
    const seen: bigint[] = [];
    let after = 0n;
    for (let pages = 0; pages < 10; pages++) {
      const page = await fetchAfter(bob, after);
      const bytes = page.envelopes.reduce((n, e) => n + e.payload.length, 0);
      assert.ok(bytes <= 512 * 1024, `a page holds ${bytes} payload bytes`);
      assert.ok(page.envelopes.length >= 1);
      seen.push(...page.envelopes.map((e) => e.seq));
      after = page.envelopes.at(-1)!.seq;
      if (!page.hasMore) break;
    }
    assert.deepEqual(seen, [1n, 2n, 3n, 4n, 5n, 6n]);
  });

  it('fetches envelopes after a seq, in order, a page at a time', async () => {
    const alice = newDevice('alice');
    const bob = newDevice('bob');
    const groupId = bytes('group-1');
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const messageId = uuidv7();
      ids.push(messageId);
      await delivery.gateway.call(
        Enqueue,
        {
          messageId,
          recipientDeviceIds: [bob.deviceId],
          payload: bytes(`m${i}`),
          groupId,
          ttlSeconds: 0,
          welcome: undefined,
        },
        { identity: alice },
      );
    }
    const after2 = await fetchAfter(bob, 2n);
    assert.deepEqual(
      after2.envelopes.map((e) => e.seq),
      [3n, 4n, 5n],
    );
    assert.deepEqual(
      after2.envelopes.map((e) => e.messageId),
      ids.slice(2),
    );
    const e = after2.envelopes[0];
    assert.ok(e);
    assert.equal(e.senderUser, 'alice');
    assert.equal(e.senderDeviceId, alice.deviceId);
    sameBytes(e.groupId, groupId, 'group id');
    sameBytes(e.payload, bytes('m3'), 'payload');
    assert.ok(e.acceptedAtMs > 0n);
    assert.equal(after2.hasMore, false);
    assert.equal(after2.lastSeq, 5n);

    const page = await fetchAfter(bob, 0n, 2);
    assert.deepEqual(
      page.envelopes.map((x) => x.seq),
      [1n, 2n],
    );
    assert.equal(page.hasMore, true);
    const empty = await fetchAfter(newDevice('nobody'));
    assert.deepEqual(empty, { envelopes: [], hasMore: false, lastSeq: 0n });
  });

  it('acks cumulatively, deletes what was acknowledged, and fetch after ack returns nothing', async () => {
    const alice = newDevice('alice');
    const bob = newDevice('bob');
    const carol = newDevice('carol');
    const sent: EnqueueResponse[] = [];
    const messageIds: string[] = [];
    for (let i = 1; i <= 4; i++) {
      messageIds.push(uuidv7());
      sent.push(await enqueue(alice, [bob, carol], bytes(`m${i}`), messageIds[i - 1]));
    }
    const mailboxOf = async (d: Identity) =>
      (
        await delivery.db
          .selectFrom('mailbox')
          .select('seq')
          .where('device_id', '=', d.deviceId)
          .orderBy('seq')
          .execute()
      ).map((r) => r.seq);

    assert.equal((await ack(bob, 2n)).ackedUpToSeq, 2n);
    assert.deepEqual(await mailboxOf(bob), [3n, 4n]);
    assert.deepEqual(
      (await fetchAfter(bob)).envelopes.map((e) => e.seq),
      [3n, 4n],
    );
    assert.equal((await ack(bob, 1n)).ackedUpToSeq, 2n, 'an ack never goes backwards');
    assert.equal((await ack(bob, 999n)).ackedUpToSeq, 4n, 'an ack never goes beyond the last seq');
    assert.deepEqual(await mailboxOf(bob), []);
    assert.deepEqual((await fetchAfter(bob)).envelopes, []);
    assert.equal((await fetchAfter(bob)).lastSeq, 4n);

    // Carol has not acknowledged: her envelopes (and the payloads) are all still there.
    assert.deepEqual(
      (await fetchAfter(carol)).envelopes.map((e) => text(e.payload)),
      ['m1', 'm2', 'm3', 'm4'],
    );
    const payloadsLeft = () =>
      delivery.db
        .selectFrom('messages')
        .select(sql<number>`count(payload)::int`.as('n'))
        .where('message_id', 'in', messageIds)
        .executeTakeFirstOrThrow()
        .then((r) => r.n);
    assert.equal(await payloadsLeft(), 4);
    await ack(carol, 4n);
    assert.equal(await payloadsLeft(), 0, 'payloads are deleted once every recipient acknowledged');
    // The message row stays as the idempotency record: a late retry is still not delivered twice.
    const retry = await enqueue(alice, [bob, carol], bytes('m1'), messageIds[0]);
    assert.equal(retry.duplicate, true);
    assert.deepEqual(retry.recipients, sent[0]?.recipients);
    assert.deepEqual((await fetchAfter(bob)).envelopes, []);
    assert.equal((await ack(newDevice('nobody'), 5n)).ackedUpToSeq, 0n);
  });

  it('deletes the payload when the last recipients ack at the same moment', async () => {
    const alice = newDevice('alice');
    const recipients = Array.from({ length: 4 }, () => newDevice('bob'));
    const messageIds: string[] = [];
    for (let i = 0; i < 20; i++) {
      messageIds.push(uuidv7());
      await enqueue(alice, recipients, bytes(`m${i}`), messageIds[i]);
    }
    await Promise.all(recipients.map((d) => ack(d, 20n)));
    const left = await delivery.db
      .selectFrom('messages')
      .select(sql<number>`count(payload)::int`.as('n'))
      .where('message_id', 'in', messageIds)
      .executeTakeFirstOrThrow();
    assert.equal(left.n, 0, 'a payload every recipient acknowledged is still stored');
    assert.equal((await count('messages')) > 0, true);
  });

  it('publishes a push for each recipient only after the message is committed', async () => {
    const alice = newDevice('alice');
    const bob = newDevice('bob');
    const carol = newDevice('carol');
    const seen: { device: string; push: Push; committed: boolean }[] = [];
    const subs = [bob, carol].map((d) =>
      delivery.nc.subscribe(subjects.push(d.deviceId), {
        callback: (err, msg) => {
          if (err) return;
          const push = Push.decode(msg.data);
          const seq = push.kind?.$case === 'envelope' ? push.kind.value.seq : -1n;
          // Read with another connection the moment the push arrives: the row must already be visible.
          void delivery.db
            .selectFrom('mailbox')
            .select('seq')
            .where('device_id', '=', d.deviceId)
            .where('seq', '=', seq)
            .executeTakeFirst()
            .then((row) => seen.push({ device: d.deviceId, push, committed: row !== undefined }));
        },
      }),
    );
    await delivery.nc.flush();
    const messageId = uuidv7();
    const payload = bytes('pushed');
    await delivery.gateway.call(
      Enqueue,
      {
        messageId,
        recipientDeviceIds: [bob.deviceId, carol.deviceId],
        payload,
        groupId: bytes('g'),
        ttlSeconds: 0,
        welcome: undefined,
      },
      { identity: alice },
    );
    await waitFor('two pushes', async () => (seen.length >= 2 ? true : undefined));
    for (const s of subs) s.unsubscribe();
    for (const { push, committed } of seen) {
      assert.equal(committed, true, 'the push arrived before the mailbox row was committed');
      assert.equal(push.kind?.$case, 'envelope');
      const env = push.kind.value;
      assert.equal(env.seq, 1n);
      assert.equal(env.messageId, messageId);
      assert.equal(env.senderUser, 'alice');
      assert.equal(env.senderDeviceId, alice.deviceId);
      sameBytes(env.payload, payload, 'payload');
      sameBytes(env.groupId, bytes('g'), 'group id');
    }
    assert.deepEqual(seen.map((s) => s.device).sort(), [bob.deviceId, carol.deviceId].sort());
  });

  it('refuses bad requests with a clear message and stores nothing', async () => {
    const alice = newDevice('alice');
    const bob = newDevice('bob');
    const before = await count('messages');
    const oversize = await rejection(enqueue(alice, [bob], new Uint8Array(MAX_PAYLOAD + 1)));
    assert.equal(oversize.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.match(oversize.details, /262145 bytes is larger than the limit of 262144 bytes \(QPQ_MAX_PAYLOAD_BYTES\)/);
    assert.equal(
      (await enqueue(alice, [bob], new Uint8Array(MAX_PAYLOAD))).duplicate,
      false,
      'the limit itself is fine',
    );

    const tooMany = await rejection(
      enqueue(
        alice,
        Array.from({ length: 1001 }, () => newDevice()),
        bytes('x'),
      ),
    );
    assert.equal(tooMany.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.match(tooMany.details, /limit of 1000 .*QPQ_MAX_RECIPIENTS/);

    const cases: [string, Promise<unknown>, RegExp][] = [
      ['empty payload', enqueue(alice, [bob], new Uint8Array(0)), /payload is empty/],
      ['no recipients', enqueue(alice, [], bytes('x')), /recipient_device_ids is empty/],
      ['bad message id', enqueue(alice, [bob], bytes('x'), 'not-a-uuid'), /message_id must be a UUID/],
      [
        'bad recipient',
        delivery.gateway.call(
          Enqueue,
          {
            messageId: uuidv7(),
            recipientDeviceIds: ['bob'],
            payload: bytes('x'),
            groupId: new Uint8Array(),
            ttlSeconds: 0,
            welcome: undefined,
          },
          { identity: alice },
        ),
        /recipient device id must be a UUID/,
      ],
      ['repeated recipient', enqueue(alice, [bob, bob], bytes('x')), /listed more than once/],
    ];
    for (const [what, call, message] of cases) {
      const err = await rejection(call);
      assert.equal(err.code, GrpcStatus.INVALID_ARGUMENT, what);
      assert.match(err.details, message, what);
    }
    assert.equal(await count('messages'), before + 1);
  });

  it('deletes expired messages in the periodic sweep and keeps the rest', async () => {
    const alice = newDevice('alice');
    const bob = newDevice('bob');
    const old = await enqueue(alice, [bob], bytes('old'));
    await enqueue(alice, [bob], bytes('fresh'));
    const oldId = (await fetchAfter(bob)).envelopes[0]?.messageId;
    assert.ok(oldId && seqOf(old, bob) === 1n);
    await delivery.db
      .updateTable('messages')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('message_id', '=', oldId)
      .execute();
    await waitFor('the sweep', async () =>
      (await delivery.db.selectFrom('messages').select('id').where('message_id', '=', oldId).executeTakeFirst())
        ? undefined
        : true,
    );
    const got = await fetchAfter(bob);
    assert.deepEqual(
      got.envelopes.map((e) => text(e.payload)),
      ['fresh'],
    );
    assert.deepEqual(
      got.envelopes.map((e) => e.seq),
      [2n],
    );
    assert.equal(got.lastSeq, 2n, 'seqs never restart after expiry');
    assert.equal(
      (await delivery.db.selectFrom('mailbox').select('seq').where('device_id', '=', bob.deviceId).execute()).length,
      1,
    );
  });

  it('serves probes and metrics', async () => {
    const ready = await globalThis.fetch(`http://${delivery.service.httpAddress}/readyz`);
    assert.equal(ready.status, 200);
    const metrics = await (await globalThis.fetch(`http://${delivery.service.httpAddress}/metrics`)).text();
    assert.match(metrics, /qpq_delivery_enqueued_messages_total/);
    assert.match(metrics, /qpq_delivery_duplicates_total/);
    assert.match(metrics, /qpq_delivery_fanout_devices_bucket/);
  });

  it('reports acknowledged envelopes, the sampled mailbox backlog and its age, and the Postgres pool', async () => {
    const PENDING = 'qpq_delivery_pending_messages';
    const AGE = 'qpq_delivery_oldest_pending_age_seconds';
    const ACKED = 'qpq_delivery_acked_messages_total';
    const gaugeReaches = (name: string, check: (v: number) => boolean, what: string) =>
      waitFor(what, async () => {
        const v = await metric(delivery.service, name);
        return v !== undefined && check(v);
      });
    // Empty every mailbox the tests before left, acknowledging as each device.
    const left = await delivery.db
      .selectFrom('mailbox')
      .select(['device_id', (eb) => eb.fn.max('seq').as('last')])
      .groupBy('device_id')
      .execute();
    for (const { device_id: deviceId, last } of left) {
      await ack({ ...newDevice(), deviceId }, BigInt(last));
    }
    assert.equal(await count('mailbox'), 0);
    await gaugeReaches(PENDING, (v) => v === 0, 'no envelope pending');
    assert.equal(await metric(delivery.service, AGE), 0, 'no pending envelope, no age');
    const acked = (await metric(delivery.service, ACKED))!;

    // Three messages for two devices: six envelopes.
    const alice = newDevice('alice');
    const bob = newDevice('bob');
    const carol = newDevice('carol');
    const sent = [uuidv7(), uuidv7(), uuidv7()];
    for (const [n, messageId] of sent.entries()) await enqueue(alice, [bob, carol], bytes(`m${n}`), messageId);
    await gaugeReaches(PENDING, (v) => v === 6, 'six envelopes pending');
    // The first one accepted an hour ago: the age is the oldest envelope's.
    await delivery.db
      .updateTable('messages')
      .set({ accepted_at: new Date(Date.now() - 3600_000) })
      .where('message_id', '=', sent[0]!)
      .execute();
    await gaugeReaches(AGE, (v) => v >= 3600 && v < 3660, 'an hour-old envelope pending');

    // Bob acknowledges all three, then carol the first: her first envelope was the oldest.
    await ack(bob, 3n);
    await ack(carol, 1n);
    assert.equal(await metric(delivery.service, ACKED), acked + 4);
    await gaugeReaches(PENDING, (v) => v === 2, 'two envelopes pending');
    await gaugeReaches(AGE, (v) => v < 60, 'the hour-old envelope no longer pending');
    // An ack of nothing new counts nothing.
    await ack(bob, 3n);
    await ack(carol, 3n);
    assert.equal(await metric(delivery.service, ACKED), acked + 6);
    await gaugeReaches(PENDING, (v) => v === 0, 'nothing pending');
    assert.equal(await metric(delivery.service, AGE), 0);

    assert.equal(await metric(delivery.service, 'qpq_db_pool_max_connections'), 8);
    const idle = await metric(delivery.service, 'qpq_db_pool_connections', { state: 'idle' });
    const busy = await metric(delivery.service, 'qpq_db_pool_connections', { state: 'busy' });
    assert.ok(idle !== undefined && busy !== undefined && idle + busy >= 1, `${idle} idle, ${busy} busy`);
    assert.equal(await metric(delivery.service, 'qpq_db_pool_waiting_clients'), 0);
  });

  it('keeps every message, seq and the signing key across a restart', async () => {
    const alice = newDevice('alice');
    const bob = newDevice('bob');
    const payload = bytes('before restart');
    const first = await enqueue(alice, [bob], payload);
    const publicKey = delivery.service.proofPublicKey;

    await delivery.service.stop();
    delivery.gateway.close();
    delivery.service = await DeliveryService.create(delivery.cfg).then((s) => s.start());
    delivery.gateway = delivery.bed.clientAs('gateway', delivery.service.grpcAddress);

    assert.deepEqual(delivery.service.proofPublicKey, publicKey);
    const got = await fetchAfter(bob);
    assert.deepEqual(
      got.envelopes.map((e) => text(e.payload)),
      ['before restart'],
    );
    const after = bytes('after restart');
    const second = await enqueue(alice, [bob], after);
    assert.equal(seqOf(second, bob), 2n);
    assert.ok(second.deliveryProof && first.deliveryProof);
    assert.ok(verifyDeliveryProof(second.deliveryProof, after, publicKey));
    assert.ok(verifyDeliveryProof(first.deliveryProof, payload, delivery.service.proofPublicKey));
  });

  it('goes unready without NATS but still accepts messages (the device fetches)', async () => {
    await delivery.nc.close();
    await delivery.bed.nats.stop();
    await waitFor('/readyz to turn 503', async () =>
      (await globalThis.fetch(`http://${delivery.service.httpAddress}/readyz`)).status === 503 ? true : undefined,
    );
    const bob = newDevice('bob');
    const res = await enqueue(newDevice('alice'), [bob], bytes('while NATS is down'));
    assert.equal(seqOf(res, bob), 1n);
    assert.equal((await fetchAfter(bob)).envelopes.length, 1);
  });
});
