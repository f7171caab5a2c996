// A member who builds an MLS group chooses every name in it. Mallory, a registered user driving the
// protocol by hand over a raw gateway connection, tries to pass herself off as alice to bob, and to make
// bob encrypt to a KeyPackage that is not signed by her registered identity key. The SDK must believe
// only what the server authenticated (who sent an envelope) and what auth lists (each device's key).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  addMembers,
  commitChanges,
  createGroup,
  encryptMessage,
  generateDeviceKeys,
  generateKeyPackages,
  joinFromWelcome,
  padToBucket,
  type DeviceKeys,
} from '@qpq/crypto';
import {
  AppContent,
  AuthServiceService,
  DeliveryServiceService,
  E2EPayload,
  KeyPackageServiceService,
  SessionServiceService,
} from '@qpq/proto';
import type { QpqClient, QpqClientError, ReceivedMessage } from '@qpq/sdk';
import type { TestNetwork } from '@qpq/testnet';
import { type GatewayConnection } from '@qpq/wire';
import { v7 as uuidv7 } from 'uuid';
import { call, connectByHand, registerByHand, startLoginByHand } from './by-hand.js';
import { bootNetwork, openClient, waitFor } from './support.js';

/** Mallory: a real account and device, with a hand-driven connection instead of the SDK. */
interface Mallory {
  conn: GatewayConnection;
  deviceId: string;
  keys: DeviceKeys;
}

const PASSWORD = 'mallory password';

/** Registers `username` by hand, then logs in as a new device (see loginByHand). */
async function registerMallory(net: TestNetwork, username: string, keys: DeviceKeys): Promise<Mallory> {
  const conn = await connectByHand(net);
  await registerByHand(conn, username, PASSWORD);
  return loginByHand(conn, username, keys);
}

/** Logs in as a new device registering `keys.signaturePublicKey` as its identity key, and attaches. */
async function loginByHand(conn: GatewayConnection, username: string, keys: DeviceKeys): Promise<Mallory> {
  const session = await call(conn, AuthServiceService.finishLogin, {
    ...(await startLoginByHand(conn, username, PASSWORD)),
    device: { $case: 'newDevice', value: { identityKey: keys.signaturePublicKey, name: 'by hand' } },
  });
  await call(conn, SessionServiceService.attach, { sessionToken: session.sessionToken });
  return { conn, deviceId: session.deviceId, keys };
}

/** What the SDK puts in Envelope.payload. */
function payload(kind: NonNullable<E2EPayload['kind']>): Uint8Array {
  return padToBucket(E2EPayload.encode({ kind, padding: new Uint8Array(0) }).finish());
}

/**
 * What `client` reports from now on. Bob stays connected, so pushed envelopes may be processed in the
 * background before the test calls receive(): listen before anything is sent.
 */
function listen(client: QpqClient): { warnings: QpqClientError[]; messages: ReceivedMessage[] } {
  const heard = { warnings: [] as QpqClientError[], messages: [] as ReceivedMessage[] };
  client.on('warning', (w) => heard.warnings.push(w));
  client.on('message', (m) => heard.messages.push(m));
  return heard;
}

describe('impersonation through MLS credential names', { timeout: 240_000 }, () => {
  let net: TestNetwork;
  let alice: QpqClient;
  let bob: QpqClient;
  const mallories: Mallory[] = [];

  before(async () => {
    net = await bootNetwork();
    alice = await openClient(net, 'alice');
    bob = await openClient(net, 'bob');
    await alice.register('alice', 'alice password');
    await bob.register('bob', 'bob password');
  });
  after(async () => {
    await Promise.all(mallories.map((m) => m.conn.close()));
    await alice?.close();
    await bob?.close();
    await net?.destroy();
  });

  test('bob refuses a Welcome in which mallory names herself alice, and his messages for alice reach alice', async () => {
    const keys = await generateDeviceKeys();
    const mallory = await registerMallory(net, 'mallory', keys);
    mallories.push(mallory);
    const bobAccount = (await bob.account())!;
    const { warnings, messages } = listen(bob);

    // Mallory claims one of bob's KeyPackages and builds a group with the smallest possible id, her own
    // leaf named alice (with her own device id, so the server's fan-out still reaches her).
    const claimed = await call(mallory.conn, KeyPackageServiceService.claimKeyPackages, {
      username: 'bob',
      deviceIds: [],
    });
    assert.equal(claimed.keyPackages.length, 1);
    const groupId = new Uint8Array(32);
    const group = await createGroup(keys, `alice@localhost/${mallory.deviceId}`, groupId);
    const added = await addMembers(group.state, [claimed.keyPackages[0]!.keyPackage]);
    // The Welcome travels with its Commit (the delivery service takes it no other way).
    await call(mallory.conn, DeliveryServiceService.enqueue, {
      messageId: uuidv7(),
      recipientDeviceIds: [mallory.deviceId],
      payload: payload({ $case: 'mlsMessage', value: added.commit }),
      groupId,
      ttlSeconds: 0,
      welcome: {
        messageId: uuidv7(),
        recipientDeviceIds: [bobAccount.deviceId],
        payload: payload({
          $case: 'welcome',
          value: { welcome: added.welcome, conversationKind: 'dm', settings: undefined },
        }),
      },
    });
    const content = AppContent.encode({
      id: uuidv7(),
      sentAtMs: BigInt(Date.now()),
      body: { $case: 'text', value: { text: 'hi bob, this is alice (really)', replyTo: '' } },
    }).finish();
    const forged = await encryptMessage(added.state, content);
    await call(mallory.conn, DeliveryServiceService.enqueue, {
      messageId: uuidv7(),
      recipientDeviceIds: [bobAccount.deviceId],
      payload: payload({ $case: 'mlsMessage', value: forged.message }),
      groupId,
      ttlSeconds: 0,
      welcome: undefined,
    });

    await bob.receive();
    assert.deepEqual(messages, [], 'nothing from the forged group is shown');
    assert.deepEqual(await bob.conversations(), [], 'bob has no conversation filed under alice (or anyone)');
    assert.ok(
      warnings.some((w) => /refused a Welcome from mallory@localhost\/.*not a member/.test(w.message)),
      warnings.map((w) => w.message).join('\n'),
    );
    assert.deepEqual(await bob.takeUnshown(), []);

    // Bob's first message to alice sets up a group with alice's real device, not mallory's.
    const sent = await bob.sendText('alice', 'for alice only');
    assert.equal(sent.delivered, true);
    const got = await waitFor('alice to receive bob message', async () => {
      const msgs = await alice.receive();
      return msgs.length > 0 ? msgs : undefined;
    });
    assert.deepEqual(
      got.map((m) => [m.from, m.conversation, m.text]),
      [['bob@localhost', 'bob@localhost', 'for alice only']],
    );
    // The forged Welcome was acknowledged: it does not come back, and mallory got nothing from bob.
    assert.deepEqual(await bob.receive(), []);
    const mailbox = await call(mallory.conn, DeliveryServiceService.fetch, { afterSeq: 0n, limit: 100 });
    assert.deepEqual(
      mailbox.envelopes.filter((e) => e.senderUser === 'bob'),
      [],
      'nothing bob sent went to mallory',
    );
  });

  test('bob refuses to start a conversation over KeyPackages not signed by the registered identity key', async () => {
    // Eve registers one identity key but uploads KeyPackages signed by another.
    const eve = await registerMallory(net, 'eve', await generateDeviceKeys());
    mallories.push(eve);
    const identity = `eve@localhost/${eve.deviceId}`;
    const [kp, lastResort] = await generateKeyPackages(await generateDeviceKeys(), identity, 2);
    await call(eve.conn, KeyPackageServiceService.uploadKeyPackages, {
      keyPackages: [kp!.publicBytes],
      lastResortKeyPackage: lastResort!.publicBytes,
    });

    await assert.rejects(bob.sendText('eve', 'hello eve'), (err: Error) => {
      assert.match(
        err.message,
        /^refusing to add eve@localhost: the KeyPackage of eve@localhost\/.* signs with another key than that device's identity key$/,
      );
      return true;
    });
    assert.equal(await bob.pendingOutbox(), 0, 'nothing was queued for eve');
    assert.ok(!(await bob.conversations()).some((c) => c.peer === 'eve@localhost'));
  });

  test("bob drops a message whose MLS sender is not the envelope's sender", async () => {
    // Trent has two devices, both honest members of a group with bob; t1 sends what t2 encrypted.
    const t1 = await registerMallory(net, 'trent', await generateDeviceKeys());
    mallories.push(t1);
    const t2 = await loginByHand(await connectByHand(net), 'trent', await generateDeviceKeys());
    mallories.push(t2);
    const bobAccount = (await bob.account())!;
    const { warnings, messages } = listen(bob);
    const [t2Kp] = await generateKeyPackages(t2.keys, `trent@localhost/${t2.deviceId}`, 1);
    const claimed = await call(t1.conn, KeyPackageServiceService.claimKeyPackages, { username: 'bob', deviceIds: [] });
    const group = await createGroup(t1.keys, `trent@localhost/${t1.deviceId}`);
    const added = await addMembers(group.state, [claimed.keyPackages[0]!.keyPackage, t2Kp!.publicBytes]);
    await call(t1.conn, DeliveryServiceService.enqueue, {
      messageId: uuidv7(),
      recipientDeviceIds: [t1.deviceId],
      payload: payload({ $case: 'mlsMessage', value: added.commit }),
      groupId: group.groupId,
      ttlSeconds: 0,
      welcome: {
        messageId: uuidv7(),
        recipientDeviceIds: [bobAccount.deviceId, t2.deviceId],
        payload: payload({
          $case: 'welcome',
          value: { welcome: added.welcome, conversationKind: 'dm', settings: undefined },
        }),
      },
    });
    const t2State = (await joinFromWelcome(added.welcome, (ref) => (ref === t2Kp!.ref ? t2Kp : undefined))).state;
    const text = (t: string) =>
      AppContent.encode({
        id: uuidv7(),
        sentAtMs: BigInt(Date.now()),
        body: { $case: 'text', value: { text: t, replyTo: '' } },
      }).finish();
    const byT2 = await encryptMessage(t2State, text('encrypted by t2, sent by t1'));
    const byT1 = await encryptMessage(added.state, text('encrypted and sent by t1'));
    for (const m of [byT2.message, byT1.message]) {
      await call(t1.conn, DeliveryServiceService.enqueue, {
        messageId: uuidv7(),
        recipientDeviceIds: [bobAccount.deviceId],
        payload: payload({ $case: 'mlsMessage', value: m }),
        groupId: group.groupId,
        ttlSeconds: 0,
        welcome: undefined,
      });
    }

    await bob.receive();
    assert.deepEqual(
      messages.map((m) => [m.from, m.conversation, m.text]),
      [['trent@localhost', 'trent@localhost', 'encrypted and sent by t1']],
    );
    assert.ok(
      warnings.some((w) =>
        /dropped a message that claims to be from trent@localhost\/.* sent by trent@localhost\//.test(w.message),
      ),
      warnings.map((w) => w.message).join('\n'),
    );
  });

  test('a leaf auth does not vouch for, added by a member, stops bob sending there until a member removes it', async () => {
    const victor = await registerMallory(net, 'victor', await generateDeviceKeys());
    mallories.push(victor);
    const bobAccount = (await bob.account())!;
    const { warnings } = listen(bob);
    // Victor makes an honest group with bob…
    const claimed = await call(victor.conn, KeyPackageServiceService.claimKeyPackages, {
      username: 'bob',
      deviceIds: [],
    });
    const group = await createGroup(victor.keys, `victor@localhost/${victor.deviceId}`);
    const added = await commitChanges(group.state, { add: [claimed.keyPackages[0]!.keyPackage] });
    await call(victor.conn, DeliveryServiceService.enqueue, {
      messageId: uuidv7(),
      recipientDeviceIds: [victor.deviceId],
      payload: payload({ $case: 'mlsMessage', value: added.commit }),
      groupId: group.groupId,
      ttlSeconds: 0,
      welcome: {
        messageId: uuidv7(),
        recipientDeviceIds: [bobAccount.deviceId],
        payload: payload({
          $case: 'welcome',
          value: {
            welcome: added.welcome!,
            conversationKind: 'group',
            settings: { name: 'ghosts', disappearAfterMs: 0n },
          },
        }),
      },
    });
    await bob.receive();
    const conv = (await bob.conversations()).find((c) => c.name === 'ghosts');
    assert.ok(conv, 'bob joined the honest group');
    await bob.send(conv.id, 'hello victor');

    // …then adds a device of an account auth has never heard of, with a key of his choosing.
    const [ghost] = await generateKeyPackages(await generateDeviceKeys(), `ghost@localhost/${uuidv7()}`, 1);
    const sneaky = await commitChanges(added.state, { add: [ghost!.publicBytes] });
    await call(victor.conn, DeliveryServiceService.enqueue, {
      messageId: uuidv7(),
      recipientDeviceIds: [bobAccount.deviceId],
      payload: payload({ $case: 'mlsMessage', value: sneaky.commit }),
      groupId: group.groupId,
      ttlSeconds: 0,
      welcome: {
        messageId: uuidv7(),
        recipientDeviceIds: [uuidv7()],
        payload: payload({
          $case: 'welcome',
          value: { welcome: sneaky.welcome!, conversationKind: 'group', settings: undefined },
        }),
      },
    });
    await bob.receive();
    assert.ok(
      warnings.some((w) => /ghost@localhost\/\S+ belongs to no account auth knows/.test(w.message)),
      warnings.map((w) => w.message).join('\n'),
    );
    // Bob (the only other honest member) removes the ghost; until then he sends nothing there.
    const sendsNow = await bob.send(conv.id, 'is anyone else here?').then(
      () => 'sent',
      (err: Error) => err.message,
    );
    // Either it was refused, or a removal of the ghost (queued before the send) had already gone out.
    if (sendsNow === 'sent') {
      assert.ok(
        !(await bob.members(conv.id)).some((m) => m.address === 'ghost@localhost'),
        'sent only without the ghost',
      );
    } else {
      assert.match(sendsNow, /refusing to send in #ghosts: .*ghost@localhost/);
    }
    await waitFor('bob removes the ghost', async () => {
      const members = await bob.members(conv.id);
      return members.some((m) => m.address === 'ghost@localhost') ? undefined : true;
    });
    await bob.send(conv.id, 'just us again');
  });
});
