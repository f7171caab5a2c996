/**
 * Two gateway processes in front of the real auth, keypackage and delivery services (each its own
 * process), real Postgres, real NATS: a device registered and logged in through one gateway gets
 * its pushes on whichever gateway holds its connection, and a misbehaving client is cut off alone.
 */
import {
  AuthServiceService,
  DeliveryServiceService,
  Push,
  SessionServiceService,
  type FinishLoginResponse,
} from '@qpq/proto';
import { TestNetwork } from '@qpq/testnet';
import { CloseCode, GatewayConnection, RpcError, StatusCode } from '@qpq/wire';
import { RawQuicClient } from '@qpq/wire/testing';
import { connect as natsConnect, type NatsConnection } from 'nats';
import pg from 'pg';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { call, hostPort, registerByHand, startLoginByHand } from './by-hand.js';

/** Registers `username` and logs in as a new device, all through the gateway. */
async function registerAndLogin(
  conn: GatewayConnection,
  username: string,
  password: string,
): Promise<FinishLoginResponse> {
  await registerByHand(conn, username, password);
  return call(conn, AuthServiceService.finishLogin, {
    ...(await startLoginByHand(conn, username, password)),
    device: { $case: 'newDevice', value: { identityKey: randomBytes(32), name: 'test device' } },
  });
}

function collectPushes(conn: GatewayConnection): Push[] {
  const pushes: Push[] = [];
  conn.onPush((p) => pushes.push(p));
  return pushes;
}

async function waitFor(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('two gateways in front of the real services', { timeout: 180_000 }, () => {
  let net: TestNetwork;
  let ca: string;
  let nc: NatsConnection;
  const conns: GatewayConnection[] = [];
  const connectTo = async (gateway: number) => {
    const address = net.gatewayAddresses[gateway];
    assert.ok(address);
    const c = await GatewayConnection.connect({ ...hostPort(address), ca, timeoutMs: 10_000 });
    conns.push(c);
    return c;
  };
  const attach = async (conn: GatewayConnection, sessionToken: string) =>
    call(conn, SessionServiceService.attach, { sessionToken });

  before(async () => {
    net = await TestNetwork.create({ gateways: 2 });
    ca = readFileSync(net.caPath, 'utf8');
    nc = await natsConnect({ servers: net.nats.url, timeout: 5_000 });
  });

  after(async () => {
    await Promise.all(conns.map((c) => c.close()));
    await nc?.close();
    await net?.destroy();
  });

  test('a device gets its pushes on every connection, whichever gateway holds it', async () => {
    const alice0 = await connectTo(0);
    const session = await registerAndLogin(alice0, `alice${randomBytes(3).toString('hex')}`, 'correct horse battery');
    const attached = await attach(alice0, session.sessionToken);
    assert.equal(attached.deviceId, session.deviceId);
    assert.equal(attached.address, `${session.username}@localhost`);

    // The same device also connected through the other gateway.
    const alice1 = await connectTo(1);
    assert.equal((await attach(alice1, session.sessionToken)).deviceId, session.deviceId);
    const on0 = collectPushes(alice0);
    const on1 = collectPushes(alice1);

    const notice = Push.encode({
      kind: { $case: 'keyPackagesLow', value: { oneTimeRemaining: 2, lowWaterMark: 10 } },
    }).finish();
    nc.publish(`qpq.push.${session.deviceId}`, notice);
    await waitFor('the push on both gateways', () => on0.length === 1 && on1.length === 1);
    assert.deepEqual(on1[0]?.kind, { $case: 'keyPackagesLow', value: { oneTimeRemaining: 2, lowWaterMark: 10 } });

    // A device that closed its connection no longer gets pushes there; the other one still does.
    await alice0.close();
    nc.publish(`qpq.push.${session.deviceId}`, notice);
    await waitFor('the second push on gateway 1', () => on1.length === 2);
    assert.equal(on0.length, 1);
  });

  test('a message sent through one gateway is pushed by the other, and fetched with the identity', async () => {
    const alice = await connectTo(0);
    const bob = await connectTo(1);
    const aliceSession = await registerAndLogin(alice, `alice${randomBytes(3).toString('hex')}`, 'pw alice 123');
    const bobSession = await registerAndLogin(bob, `bob${randomBytes(3).toString('hex')}`, 'pw bob 1234');
    await attach(alice, aliceSession.sessionToken);
    await attach(bob, bobSession.sessionToken);
    const bobPushes = collectPushes(bob);

    const payload = randomBytes(200);
    const sent = await call(alice, DeliveryServiceService.enqueue, {
      messageId: randomUUID(),
      recipientDeviceIds: [bobSession.deviceId],
      payload,
      groupId: new Uint8Array(),
      ttlSeconds: 0,
      welcome: undefined,
    });
    assert.equal(sent.recipients[0]?.deviceId, bobSession.deviceId);

    await waitFor('the envelope push at bob', () => bobPushes.some((p) => p.kind?.$case === 'envelope'));
    const pushed = bobPushes.find((p) => p.kind?.$case === 'envelope');
    assert.ok(pushed?.kind?.$case === 'envelope');
    assert.deepEqual(Buffer.from(pushed.kind.value.payload), payload);
    assert.equal(pushed.kind.value.senderDeviceId, aliceSession.deviceId);

    // Fetch runs as bob's device: the gateway passed his identity on.
    const fetched = await call(bob, DeliveryServiceService.fetch, { afterSeq: 0n, limit: 10 });
    assert.deepEqual(
      fetched.envelopes.map((e) => Buffer.from(e.payload).toString('hex')),
      [payload.toString('hex')],
    );
  });

  test('a bad session token is refused by auth through the gateway', async () => {
    const c = await connectTo(0);
    await assert.rejects(attach(c, 'not-a-real-token'), (err: unknown) => {
      assert.ok(err instanceof RpcError);
      assert.equal(err.code, StatusCode.UNAUTHENTICATED);
      assert.match(err.message, /session/);
      return true;
    });
    await assert.rejects(
      call(c, DeliveryServiceService.fetch, { afterSeq: 0n, limit: 1 }),
      (err: unknown) =>
        err instanceof RpcError &&
        err.code === StatusCode.UNAUTHENTICATED &&
        /attach a session first/.test(err.message),
    );
  });

  test('after Logout the connection no longer acts for the device', async () => {
    const c = await connectTo(1);
    const session = await registerAndLogin(c, `carol${randomBytes(3).toString('hex')}`, 'pw carol 123');
    await attach(c, session.sessionToken);
    await call(c, AuthServiceService.logout, {});
    await assert.rejects(
      call(c, DeliveryServiceService.fetch, { afterSeq: 0n, limit: 1 }),
      (err: unknown) => err instanceof RpcError && err.code === StatusCode.UNAUTHENTICATED,
    );
    await assert.rejects(
      attach(c, session.sessionToken),
      (err: unknown) => err instanceof RpcError && err.code === StatusCode.UNAUTHENTICATED,
    );
  });

  test('a malformed frame closes only that client; the gateway keeps serving the others', async () => {
    const good = await connectTo(0);
    const session = await registerAndLogin(good, `dave${randomBytes(3).toString('hex')}`, 'pw dave 1234');
    await attach(good, session.sessionToken);
    const pushes = collectPushes(good);

    const raw = await RawQuicClient.connect({ ...hostPort(net.gatewayAddresses[0] ?? ''), ca });
    await raw.sendFrame(Uint8Array.from([0xff, 0xff, 0xff]));
    const end = await raw.ended(5_000);
    assert.deepEqual([end.by, end.isApp, end.code], ['peer', true, CloseCode.MALFORMED_FRAME]);
    await raw.destroy();

    assert.equal(good.isClosed, false);
    const fetched = await call(good, DeliveryServiceService.fetch, { afterSeq: 0n, limit: 1 });
    assert.equal(fetched.envelopes.length, 0);
    nc.publish(
      `qpq.push.${session.deviceId}`,
      Push.encode({ kind: { $case: 'keyPackagesLow', value: { oneTimeRemaining: 1, lowWaterMark: 5 } } }).finish(),
    );
    await waitFor('a push after the other client was cut off', () => pushes.length === 1);
    assert.match(readFileSync(net.logFile('gateway-0'), 'utf8'), /closing client connection: malformed frame/);
  });

  test('a replayed OPAQUE finish message is refused', async () => {
    const c = await connectTo(0);
    const username = `erin${randomBytes(3).toString('hex')}`;
    const password = 'erin password 1';
    await registerAndLogin(c, username, password);
    const finish = {
      ...(await startLoginByHand(c, username, password)),
      device: { $case: 'newDevice' as const, value: { identityKey: randomBytes(32), name: 'second' } },
    };
    const first = await call(c, AuthServiceService.finishLogin, finish);
    assert.ok(first.sessionToken.length > 0);
    await assert.rejects(call(c, AuthServiceService.finishLogin, finish), (err: unknown) => {
      assert.ok(err instanceof RpcError);
      assert.equal(err.code, StatusCode.UNAUTHENTICATED);
      assert.match(err.message, /expired or already used/);
      return true;
    });
    // The replay created no session: the account still has exactly the two devices it logged in.
    await attach(c, first.sessionToken);
    const devices = await call(c, AuthServiceService.listDevices, {});
    assert.equal(devices.devices.length, 2);
  });

  test('a retried Enqueue with the same message_id is stored once and answered as a duplicate', async () => {
    const alice = await connectTo(0);
    const bob = await connectTo(1);
    const aliceSession = await registerAndLogin(alice, `frank${randomBytes(3).toString('hex')}`, 'pw frank 123');
    const bobSession = await registerAndLogin(bob, `gina${randomBytes(3).toString('hex')}`, 'pw gina 1234');
    await attach(alice, aliceSession.sessionToken);
    await attach(bob, bobSession.sessionToken);
    const request = {
      messageId: uuidv7(),
      recipientDeviceIds: [bobSession.deviceId],
      payload: randomBytes(300),
      groupId: new Uint8Array(),
      ttlSeconds: 0,
      welcome: undefined,
    };
    const first = await call(alice, DeliveryServiceService.enqueue, request);
    const retry = await call(alice, DeliveryServiceService.enqueue, request);
    assert.equal(first.duplicate, false);
    assert.equal(retry.duplicate, true);
    assert.deepEqual(retry.recipients, first.recipients);
    assert.deepEqual(retry.deliveryProof, first.deliveryProof);

    const fetched = await call(bob, DeliveryServiceService.fetch, { afterSeq: 0n, limit: 10 });
    assert.deepEqual(
      fetched.envelopes.map((e) => e.messageId),
      [request.messageId],
    );
    const db = new pg.Client({ connectionString: net.databaseUrl });
    await db.connect();
    try {
      const rows = await db.query('select count(*)::int as n from delivery.messages where message_id = $1', [
        request.messageId,
      ]);
      assert.equal(rows.rows[0].n, 1);
    } finally {
      await db.end();
    }
  });

  test('an oversized frame closes only that client', async () => {
    const good = await connectTo(1);
    const raw = await RawQuicClient.connect({ ...hostPort(net.gatewayAddresses[1] ?? ''), ca });
    // A header announcing 64 MiB: refused from the header alone, before anything is buffered.
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, 64 * 1024 * 1024);
    await raw.write(header);
    const end = await raw.ended(5_000);
    assert.deepEqual([end.by, end.isApp, end.code], ['peer', true, CloseCode.FRAME_TOO_LARGE]);
    await raw.destroy();
    assert.equal(good.isClosed, false);
    await assert.rejects(
      call(good, DeliveryServiceService.fetch, { afterSeq: 0n, limit: 1 }),
      (err: unknown) => err instanceof RpcError && err.code === StatusCode.UNAUTHENTICATED,
    );
  });
});
