import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  addMembers,
  createGroup,
  decodePayload,
  deviceIdentity,
  encryptMessage,
  generateDeviceKeys,
  generateKeyPackages,
  joinFromWelcome,
  mlsPayload,
  verifyDeliveryProof,
  welcomePayload,
  type DeviceKeys,
  type GroupStateBytes,
  type KeyPackageBundle,
} from '@qpq/crypto';
import { DeliveryServiceService, type EnqueueRequest, type EnqueueResponse } from '@qpq/proto';
import type { Identity } from '@qpq/runtime';
import { rejectsWithStatus, waitFor } from '@qpq/testnet';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { bytes, deliveryUnderTest, newDevice, rejection, sameBytes, uuidv7 } from './test-helpers.js';

const { enqueue: Enqueue, fetch: Fetch } = DeliveryServiceService;

/** A device as both sides see it: the identity the gateway vouches for, and its MLS keys. */
interface Member {
  server: Identity;
  identity: string;
  keys: DeviceKeys;
  keyPackage: KeyPackageBundle;
}

async function newMember(username: string): Promise<Member> {
  const server = newDevice(username);
  const identity = deviceIdentity(`${username}@example.org`, server.deviceId);
  const keys = await generateDeviceKeys();
  const [keyPackage] = await generateKeyPackages(keys, identity, 1);
  assert.ok(keyPackage);
  return { server, identity, keys, keyPackage };
}

/** A Commit adding `joiner`, made on `state`, with the Welcome the joiner needs, as Enqueue fields. */
async function addCommit(
  state: GroupStateBytes,
  joiner: Member,
): Promise<{ state: GroupStateBytes; payload: Uint8Array; welcome: NonNullable<EnqueueRequest['welcome']> }> {
  const added = await addMembers(state, [joiner.keyPackage.publicBytes]);
  return {
    state: added.state,
    payload: mlsPayload(added.commit),
    welcome: {
      messageId: uuidv7(),
      recipientDeviceIds: [joiner.server.deviceId],
      payload: welcomePayload({ welcome: added.welcome, conversationKind: 'group', settings: undefined }),
    },
  };
}

describe('commit ordering, Welcomes and disappearing messages', () => {
  const delivery = deliveryUnderTest();

  const send = (sender: Identity, fields: Partial<EnqueueRequest> & { payload: Uint8Array; to: Identity[] }) =>
    delivery.gateway.call(
      Enqueue,
      {
        messageId: fields.messageId ?? uuidv7(),
        recipientDeviceIds: fields.to.map((d) => d.deviceId),
        payload: fields.payload,
        groupId: fields.groupId ?? new Uint8Array(0),
        ttlSeconds: fields.ttlSeconds ?? 0,
        welcome: fields.welcome,
      },
      { identity: sender },
    );
  const fetchAll = (device: Identity) =>
    delivery.gateway.call(Fetch, { afterSeq: 0n, limit: 500 }, { identity: device });
  const messageRows = (messageIds: string[]) =>
    delivery.db
      .selectFrom('messages')
      .select(['message_id', 'accepted_at', 'expires_at', 'group_id'])
      .where('message_id', 'in', messageIds)
      .execute();
  const mailboxRows = (devices: Identity[]) =>
    delivery.db
      .selectFrom('mailbox')
      .select(['device_id', 'seq'])
      .where(
        'device_id',
        'in',
        devices.map((d) => d.deviceId),
      )
      .execute();

  it('accepts exactly one of 12 concurrent Commits per epoch and delivers only the winner’s Welcome', async () => {
    const alice = await newMember('alice');
    // A member who receives the group's Commits (the server does not care who is in the group).
    const bob = newDevice('bob');
    const created = await createGroup(alice.keys, alice.identity);
    let state = created.state;
    /** The winner's state after each epoch's round. */
    const states: GroupStateBytes[] = [];
    let winnerRequest: Parameters<typeof send>[1] | undefined;
    let winnerResponse: EnqueueResponse | undefined;
    let loserRequest: Parameters<typeof send>[1] | undefined;

    // Epoch 0 of a group the service has never seen (the first Commit creates its row), then epoch 1
    // of a group it knows (the Commits queue on its row).
    for (const epoch of [0n, 1n]) {
      const joiners = await Promise.all(Array.from({ length: 12 }, (_, i) => newMember(`joiner${epoch}x${i}`)));
      const candidates = await Promise.all(joiners.map((j) => addCommit(state, j)));
      const requests = candidates.map((c) => ({
        messageId: uuidv7(),
        payload: c.payload,
        to: [bob],
        welcome: c.welcome,
      }));
      const results = await Promise.allSettled(requests.map((r) => send(alice.server, r)));

      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(won.length, 1, `epoch ${epoch}: ${won.length} Commits accepted`);
      const w = won[0] as number;
      for (const [i, r] of results.entries()) {
        if (i === w) continue;
        assert.equal(r.status, 'rejected');
        const err = r.reason as { code: number; details: string };
        assert.equal(err.code, GrpcStatus.ABORTED, err.details);
        assert.match(
          err.details,
          new RegExp(`^commit conflict: .* is at epoch ${epoch + 1n}, this Commit is for epoch ${epoch}`),
        );
      }
      const winner = results[w] as PromiseFulfilledResult<EnqueueResponse>;
      const winnerJoiner = joiners[w] as Member;
      const winnerWelcome = (candidates[w] as (typeof candidates)[number]).welcome;
      assert.equal(winner.value.duplicate, false);
      assert.deepEqual(winner.value.welcomeRecipients, [{ deviceId: winnerJoiner.server.deviceId, seq: 1n }]);

      // The losers' Welcomes were never stored: not as messages, not in any mailbox.
      const losers = joiners.filter((_, i) => i !== w);
      assert.deepEqual(await mailboxRows(losers.map((l) => l.server)), []);
      assert.deepEqual(await messageRows(requests.filter((_, i) => i !== w).map((r) => r.welcome.messageId)), []);
      for (const l of losers)
        assert.deepEqual(await fetchAll(l.server), { envelopes: [], hasMore: false, lastSeq: 0n });

      // The winner's joiner fetches its Welcome, with a proof of its own, and joins the group with it.
      const got = await fetchAll(winnerJoiner.server);
      assert.equal(got.envelopes.length, 1);
      const envelope = got.envelopes[0]!;
      assert.equal(envelope.messageId, winnerWelcome.messageId);
      sameBytes(envelope.groupId, created.groupId, 'group id of the Welcome');
      const proof = winner.value.welcomeDeliveryProof;
      assert.ok(proof);
      assert.deepEqual(proof.recipientDeviceIds, [winnerJoiner.server.deviceId]);
      assert.equal(verifyDeliveryProof(proof, envelope.payload, delivery.service.proofPublicKey), true);
      assert.equal(verifyDeliveryProof(proof, requests[w]!.payload, delivery.service.proofPublicKey), false);
      const kind = decodePayload(envelope.payload);
      assert.equal(kind.$case, 'welcome');
      const joined = await joinFromWelcome(kind.value.welcome, (ref) =>
        ref === winnerJoiner.keyPackage.ref ? winnerJoiner.keyPackage : undefined,
      );
      sameBytes(joined.groupId, created.groupId, 'joined group id');

      state = (candidates[w] as (typeof candidates)[number]).state;
      states.push(state);
      winnerRequest = requests[w];
      winnerResponse = winner.value;
      loserRequest = requests[w === 0 ? 1 : 0];
    }

    // Bob got exactly the two winning Commits, in order, filed under the group id from their framing.
    const bobs = await fetchAll(bob);
    assert.equal(bobs.envelopes.length, 2);
    assert.deepEqual(
      bobs.envelopes.map((e) => e.seq),
      [1n, 2n],
    );
    for (const e of bobs.envelopes) sameBytes(e.groupId, created.groupId, 'group id of a Commit');
    sameBytes(bobs.envelopes[1]?.payload, winnerRequest!.payload, 'second Commit');

    // The group is at epoch 2 now: a retry of the last winner is still answered as the original was.
    const retry = await send(alice.server, winnerRequest!);
    assert.equal(retry.duplicate, true);
    assert.deepEqual(retry.recipients, winnerResponse!.recipients);
    assert.deepEqual(retry.deliveryProof, winnerResponse!.deliveryProof);
    assert.deepEqual(retry.welcomeRecipients, winnerResponse!.welcomeRecipients);
    assert.deepEqual(retry.welcomeDeliveryProof, winnerResponse!.welcomeDeliveryProof);
    assert.equal((await fetchAll(bob)).envelopes.length, 2, 'the retry delivered nothing new');
    // A loser stored nothing, so its retry is no duplicate: it is refused again.
    await rejectsWithStatus(
      send(alice.server, loserRequest!),
      GrpcStatus.ABORTED,
      /^commit conflict: .* is at epoch 2/,
    );

    // A stale Commit (made on epoch 1) is refused, naming where the group is.
    const stale = await addCommit(states[0]!, await newMember('late'));
    await rejectsWithStatus(
      send(alice.server, { payload: stale.payload, to: [bob], welcome: stale.welcome }),
      GrpcStatus.ABORTED,
      /^commit conflict: .* is at epoch 2, this Commit is for epoch 1/,
    );
    // The next epoch's Commit is accepted.
    const next = await addCommit(state, await newMember('third'));
    const accepted = await send(alice.server, { payload: next.payload, to: [bob], welcome: next.welcome });
    assert.equal(accepted.duplicate, false);

    const metrics = await (await globalThis.fetch(`http://${delivery.service.httpAddress}/metrics`)).text();
    const conflicts = /^qpq_delivery_commit_conflicts_total(?:\{[^}]*\})? (\d+)/m.exec(metrics);
    assert.ok(conflicts && Number(conflicts[1]) >= 23, `conflict counter: ${conflicts?.[0]}`);
  });

  it('refuses a group_id other than the MLS framing’s, and a Welcome without a Commit; stores nothing', async () => {
    const alice = await newMember('alice');
    const bob = await newMember('bob');
    const created = await createGroup(alice.keys, alice.identity);
    const app = await encryptMessage(created.state, bytes('hello'));
    const commit = await addCommit(created.state, bob);
    const opaque = randomBytes(200);
    const before = await delivery.db.selectFrom('messages').select('id').execute();
    /** The Commit as it should be sent, but for `change` to its Welcome. */
    const withWelcome = (change: Partial<typeof commit.welcome>) =>
      send(alice.server, { payload: commit.payload, to: [bob.server], welcome: { ...commit.welcome, ...change } });

    const cases: [string, () => Promise<unknown>, RegExp][] = [
      [
        'application message, other group id',
        () =>
          send(alice.server, { payload: mlsPayload(app.message), to: [bob.server], groupId: bytes('another group') }),
        /group_id differs from the group id in the MLS message/,
      ],
      [
        'Commit, other group id',
        () =>
          send(alice.server, {
            payload: commit.payload,
            to: [bob.server],
            groupId: randomBytes(32),
            welcome: commit.welcome,
          }),
        /group_id differs/,
      ],
      [
        'a Welcome on its own, without its Commit',
        () => send(alice.server, { payload: commit.welcome.payload, to: [bob.server] }),
        /a Welcome travels only with its Commit/,
      ],
      [
        'Welcome with an opaque payload',
        () => send(alice.server, { payload: opaque, to: [bob.server], welcome: commit.welcome }),
        /welcome is allowed only with an MLS Commit/,
      ],
      [
        'Welcome with an application message',
        () => send(alice.server, { payload: mlsPayload(app.message), to: [bob.server], welcome: commit.welcome }),
        /welcome is allowed only with an MLS Commit/,
      ],
      [
        'Welcome with the Commit’s message id',
        () =>
          send(alice.server, {
            messageId: commit.welcome.messageId,
            payload: commit.payload,
            to: [bob.server],
            welcome: commit.welcome,
          }),
        /welcome.message_id must differ from message_id/,
      ],
      [
        'Welcome that is a Commit',
        () => withWelcome({ payload: commit.payload }),
        /welcome.payload is not a padded E2EPayload.welcome/,
      ],
      [
        'Welcome without recipients',
        () => withWelcome({ recipientDeviceIds: [] }),
        /welcome.recipient_device_ids is empty/,
      ],
      ['Welcome with a bad message id', () => withWelcome({ messageId: 'x' }), /welcome.message_id must be a UUID/],
      [
        'Welcome with a repeated recipient',
        () => withWelcome({ recipientDeviceIds: [bob.server.deviceId, bob.server.deviceId.toUpperCase()] }),
        /listed more than once in welcome.recipient_device_ids/,
      ],
    ];
    for (const [what, call, message] of cases) {
      const err = await rejection(call());
      assert.equal(err.code, GrpcStatus.INVALID_ARGUMENT, `${what}: ${err.details}`);
      assert.match(err.details, message, what);
    }
    const oversize = await rejection(withWelcome({ payload: new Uint8Array(delivery.cfg.maxPayloadBytes + 1) }));
    assert.equal(oversize.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.match(oversize.details, /^welcome.payload of 262145 bytes is larger than the limit/);
    const tooMany = await rejection(
      withWelcome({ recipientDeviceIds: Array.from({ length: 1001 }, () => newDevice().deviceId) }),
    );
    assert.equal(tooMany.code, GrpcStatus.RESOURCE_EXHAUSTED);

    assert.equal((await delivery.db.selectFrom('messages').select('id').execute()).length, before.length);
    assert.deepEqual(
      await delivery.db
        .selectFrom('group_epochs')
        .select('epoch')
        .where('group_id', '=', Buffer.from(created.groupId))
        .execute(),
      [],
    );
    // The same Commit, as it should be sent, is accepted: the group took no epoch from the refusals.
    const ok = await send(alice.server, {
      payload: commit.payload,
      to: [bob.server],
      groupId: created.groupId,
      welcome: commit.welcome,
    });
    assert.equal(ok.duplicate, false);
    assert.equal(ok.welcomeRecipients.length, 1);
  });

  it('does not order application messages by epoch, and keeps opaque payloads opaque', async () => {
    const alice = await newMember('alice');
    const bob = newDevice('bob');
    const created = await createGroup(alice.keys, alice.identity);
    const first = await addCommit(created.state, await newMember('carol'));
    await send(alice.server, { payload: first.payload, to: [bob], welcome: first.welcome });
    const second = await addCommit(first.state, await newMember('dave'));
    await send(alice.server, { payload: second.payload, to: [bob], welcome: second.welcome });

    // Messages of epochs 0 and 1 while the group is at epoch 2: late, not conflicting.
    const old = await encryptMessage(created.state, bytes('from epoch 0'));
    const current = await encryptMessage(first.state, bytes('from epoch 1'));
    for (const m of [old, current]) {
      const res = await send(alice.server, { payload: mlsPayload(m.message), to: [bob], groupId: created.groupId });
      assert.equal(res.duplicate, false);
      assert.deepEqual(res.welcomeRecipients, []);
      assert.equal(res.welcomeDeliveryProof, undefined);
    }

    // Random bytes, and bytes that almost are an MLS message, stay opaque with whatever group id came.
    const opaque = [
      randomBytes(1),
      randomBytes(1000),
      mlsPayload(randomBytes(64)),
      mlsPayload(old.message).subarray(0, 100),
    ];
    const carol = newDevice('carol');
    for (const payload of opaque) {
      const res = await send(alice.server, { payload, to: [carol], groupId: bytes('not an mls group') });
      assert.equal(res.duplicate, false);
    }
    const got = await fetchAll(carol);
    assert.equal(got.envelopes.length, opaque.length);
    for (const [i, e] of got.envelopes.entries()) {
      sameBytes(e.payload, opaque[i]!, `opaque payload ${i}`);
      sameBytes(e.groupId, bytes('not an mls group'), 'opaque group id');
    }
  });

  it('refuses the Commit when its Welcome’s message id is taken, and then the epoch is still free', async () => {
    const alice = await newMember('alice');
    const bob = newDevice('bob');
    const created = await createGroup(alice.keys, alice.identity);
    const taken = uuidv7();
    await send(alice.server, { messageId: taken, payload: bytes('earlier'), to: [bob] });
    const commit = await addCommit(created.state, await newMember('carol'));
    const reused = { ...commit.welcome, messageId: taken };
    await rejectsWithStatus(
      send(alice.server, { payload: commit.payload, to: [bob], welcome: reused }),
      GrpcStatus.ALREADY_EXISTS,
      new RegExp(`message_id ${taken} was already used`),
    );
    assert.equal((await fetchAll(bob)).envelopes.length, 1, 'the refused Commit was not delivered');
    const messageId = uuidv7();
    const ok = await send(alice.server, { messageId, payload: commit.payload, to: [bob], welcome: commit.welcome });
    assert.equal(ok.duplicate, false);
    // A retry is the same request: without its Welcome, or with another one, it is another message.
    for (const welcome of [undefined, { ...commit.welcome, messageId: uuidv7() }]) {
      await rejectsWithStatus(
        send(alice.server, { messageId, payload: commit.payload, to: [bob], welcome }),
        GrpcStatus.ALREADY_EXISTS,
        new RegExp(`message_id ${messageId} was already used`),
      );
    }
    // Another Commit for the epoch it took is refused as a conflict.
    const rival = await addCommit(created.state, await newMember('dave'));
    await rejectsWithStatus(
      send(alice.server, { payload: rival.payload, to: [bob], welcome: rival.welcome }),
      GrpcStatus.ABORTED,
      /^commit conflict: .* is at epoch 1, this Commit is for epoch 0/,
    );
  });

  it('gives a device listed for both the Commit and its Welcome the Commit first', async () => {
    const alice = await newMember('alice');
    const bob = newDevice('bob');
    await send(alice.server, { payload: bytes('before'), to: [bob] });
    const created = await createGroup(alice.keys, alice.identity);
    const commit = await addCommit(created.state, await newMember('carol'));
    const res = await send(alice.server, {
      payload: commit.payload,
      to: [bob],
      welcome: { ...commit.welcome, recipientDeviceIds: [bob.deviceId] },
    });
    assert.deepEqual(res.recipients, [{ deviceId: bob.deviceId, seq: 2n }]);
    assert.deepEqual(res.welcomeRecipients, [{ deviceId: bob.deviceId, seq: 3n }]);
    const got = await fetchAll(bob);
    assert.deepEqual(
      got.envelopes.map((e) => e.seq),
      [1n, 2n, 3n],
    );
    assert.deepEqual(
      got.envelopes.slice(1).map((e) => decodePayload(e.payload).$case),
      ['mlsMessage', 'welcome'],
    );
  });

  it('deletes a message with ttl_seconds=1 (and the Welcome with its Commit) a second after accepting it', async () => {
    const alice = await newMember('alice');
    const bob = newDevice('bob');
    const carol = await newMember('carol');
    const created = await createGroup(alice.keys, alice.identity);
    const commit = await addCommit(created.state, carol);
    const plain = { messageId: uuidv7(), payload: bytes('disappearing'), to: [bob], ttlSeconds: 1 };
    const kept = { messageId: uuidv7(), payload: bytes('kept'), to: [bob] };
    const capped = { messageId: uuidv7(), payload: bytes('capped'), to: [bob], ttlSeconds: 4_000_000_000 };
    const sentAt = Date.now();
    await send(alice.server, plain);
    await send(alice.server, {
      payload: commit.payload,
      to: [bob],
      ttlSeconds: 1,
      welcome: commit.welcome,
      messageId: uuidv7(),
    });
    await send(alice.server, kept);
    await send(alice.server, capped);

    const rows = new Map(
      (await messageRows([plain.messageId, commit.welcome.messageId, kept.messageId, capped.messageId])).map((r) => [
        r.message_id,
        r,
      ]),
    );
    const lifetime = (id: string) => rows.get(id)!.expires_at.getTime() - rows.get(id)!.accepted_at.getTime();
    assert.equal(lifetime(plain.messageId), 1000);
    assert.equal(lifetime(commit.welcome.messageId), 1000, 'the Welcome expires with its Commit');
    assert.equal(lifetime(kept.messageId), delivery.cfg.messageTtlMs);
    assert.equal(lifetime(capped.messageId), delivery.cfg.messageTtlMs, 'QPQ_MESSAGE_TTL caps ttl_seconds');
    assert.equal((await fetchAll(bob)).envelopes.length, 4);
    assert.equal((await fetchAll(carol.server)).envelopes.length, 1);

    await waitFor('the sweep', async () =>
      (await messageRows([plain.messageId, commit.welcome.messageId])).length === 0 ? true : undefined,
    );
    assert.ok(Date.now() - sentAt >= 1000, 'deleted before its time');
    assert.deepEqual(
      (await fetchAll(bob)).envelopes.map((e) => e.messageId),
      [kept.messageId, capped.messageId],
    );
    assert.deepEqual((await fetchAll(carol.server)).envelopes, []);
    assert.deepEqual(await mailboxRows([carol.server]), []);
    assert.equal((await mailboxRows([bob])).length, 2);
  });
});
