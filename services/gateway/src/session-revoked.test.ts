/**
 * The gateway in this process in front of the real auth service (Postgres, NATS, mutual TLS) and
 * real QUIC clients: what the gateway does when one of its attached devices is revoked.
 */
import { AuthService, authEnv, envToConfig as authConfig } from '@qpq/auth';
import { subjects } from '@qpq/bus';
import { AuthServiceService as Auth, Push, SessionServiceService as Session } from '@qpq/proto';
import { readEnv } from '@qpq/runtime';
import {
  callGateway as call,
  existingDevice,
  freeTcpPort,
  gatewayCaller,
  metricValue,
  newDevice,
  opaqueLogin,
  opaqueRegister,
  ServiceTestBed,
  waitFor,
} from '@qpq/testnet';
import { GatewayConnection, RpcError, StatusCode } from '@qpq/wire';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { GatewayConfig } from './config.js';
import { GatewayService } from './index.js';

process.env.QPQ_LOG_LEVEL ??= 'warn';

async function expectStatus(p: Promise<unknown>, code: number, message: string | RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof RpcError, String(err));
    assert.equal(err.code, code, `${err.code}: ${err.message}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

describe('gateway and a revoked device', { timeout: 120_000 }, () => {
  let bed: ServiceTestBed;
  let auth: AuthService;
  let gateway: GatewayService;
  let ca: string;
  let port: number;
  const clients: GatewayConnection[] = [];

  const connect = async () => {
    const c = await GatewayConnection.connect({ host: '127.0.0.1', port, ca, timeoutMs: 5_000 });
    clients.push(c);
    return c;
  };
  const pushesOf = (c: GatewayConnection) => {
    const seen: Push[] = [];
    c.onPush((p) => seen.push(p));
    return seen;
  };

  before(async () => {
    bed = await ServiceTestBed.create({ service: 'auth', certNames: ['edge'], env: { QPQ_DOMAIN: 'localhost' } });
    ({ service: auth } = await bed.startService(() => AuthService.create(authConfig(readEnv(authEnv, bed.env())))));
    const nowhere = `127.0.0.1:${await freeTcpPort()}`;
    const edge = bed.certs.files('edge');
    const cfg: GatewayConfig = {
      listen: { host: '127.0.0.1', port: 0 },
      metricsListen: { host: '127.0.0.1', port: 0 },
      drainTimeoutMs: 2_000,
      rpcTimeoutMs: 5_000,
      domain: 'localhost',
      maxMessageBytes: 1024 * 1024,
      tls: bed.certs.files('gateway'),
      edgeTls: { cert: edge.cert, key: edge.key },
      backends: { auth: auth.grpcAddress, keypackage: nowhere, delivery: nowhere, ktlog: nowhere, blob: nowhere },
      natsUrl: bed.nats.url,
      maxFrameBytes: 1024 * 1024,
      // Far longer than the test: without the push, a cached answer would keep the device in.
      sessionCacheTtlMs: 10 * 60_000,
      maxConnections: 100,
      maxRequestsInFlight: 16,
      idleTimeoutMs: 30_000,
      maxFileStreams: 4,
      fileStreamTimeoutMs: 60_000,
    };
    gateway = await (await GatewayService.create(cfg)).start();
    port = Number(gateway.quicAddress.split(':').pop());
    ca = readFileSync(bed.certs.caPath, 'utf8');
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await gateway?.stop();
    await bed?.destroy(() => auth?.stop());
  });

  test('SessionRevoked reaches the device, detaches its connections, and its token no longer attaches', async () => {
    const username = `rev${randomBytes(4).toString('hex')}`;
    const phone = await connect();
    const laptop = await connect();
    const laptopAgain = await connect();
    await opaqueRegister(gatewayCaller(phone), username, 'pw');
    const phoneSession = await opaqueLogin(gatewayCaller(phone), username, 'pw', newDevice('phone'));
    const laptopSession = await opaqueLogin(gatewayCaller(laptop), username, 'pw', newDevice('laptop'));
    const laptopSecond = await opaqueLogin(
      gatewayCaller(laptopAgain),
      username,
      'pw',
      existingDevice(laptopSession.deviceId),
    );
    await call(phone, Session.attach, { sessionToken: phoneSession.sessionToken });
    await call(laptop, Session.attach, { sessionToken: laptopSession.sessionToken });
    await call(laptopAgain, Session.attach, { sessionToken: laptopSecond.sessionToken });
    // Both of the laptop's connections are served (and their answers cached by the gateway).
    for (const c of [laptop, laptopAgain]) assert.equal((await call(c, Auth.listDevices, {})).devices.length, 2);
    const phonePushes = pushesOf(phone);
    const laptopPushes = pushesOf(laptop);
    const laptopAgainPushes = pushesOf(laptopAgain);

    await call(phone, Auth.revokeDevice, { deviceId: laptopSession.deviceId });

    const revokedPush = { $case: 'sessionRevoked', value: { deviceId: laptopSession.deviceId } };
    await waitFor('SessionRevoked on both', () => laptopPushes.length > 0 && laptopAgainPushes.length > 0);
    assert.deepEqual(
      laptopPushes.map((p) => p.kind),
      [revokedPush],
    );
    assert.deepEqual(
      laptopAgainPushes.map((p) => p.kind),
      [revokedPush],
    );
    for (const c of [laptop, laptopAgain]) {
      await expectStatus(
        call(c, Auth.listDevices, {}),
        StatusCode.UNAUTHENTICATED,
        'this device was revoked; log in as a new device',
      );
      await expectStatus(
        call(c, Session.attach, { sessionToken: laptopSession.sessionToken }),
        StatusCode.UNAUTHENTICATED,
        'session expired or revoked; log in again',
      );
    }
    const fresh = await connect();
    await expectStatus(
      call(fresh, Session.attach, { sessionToken: laptopSecond.sessionToken }),
      StatusCode.UNAUTHENTICATED,
      'session expired or revoked; log in again',
    );
    // Public methods still work on the detached connection: the laptop logs in as a new device.
    await expectStatus(
      opaqueLogin(gatewayCaller(laptop), username, 'pw', existingDevice(laptopSession.deviceId)),
      StatusCode.PERMISSION_DENIED,
      'this device was revoked; log in as a new device',
    );

    // The phone is untouched and was told the account's devices changed.
    const remaining = await call(phone, Auth.listDevices, {});
    assert.deepEqual(
      remaining.devices.map((d) => d.deviceId),
      [phoneSession.deviceId],
    );
    await waitFor('DevicesChanged on the phone', () => phonePushes.length > 0);
    assert.deepEqual(
      phonePushes.map((p) => p.kind),
      [
        {
          $case: 'devicesChanged',
          value: { accountId: phoneSession.accountId, deviceId: laptopSession.deviceId, revoked: true },
        },
      ],
    );
  });

  test('/metrics follows attached sessions and times pushes from acceptance to the client', async () => {
    const metric = (name: string) => metricValue(gateway.httpAddress, name);
    const SESSIONS = 'qpq_gateway_sessions';
    const LATENCY = 'qpq_gateway_push_latency_seconds';
    const sessions = (await metric(SESSIONS))!;
    assert.ok(sessions !== undefined, `${SESSIONS} is on /metrics`);
    const pushes = (await metric(`${LATENCY}_count`)) ?? 0;
    const pushSeconds = (await metric(`${LATENCY}_sum`)) ?? 0;

    const username = `met${randomBytes(4).toString('hex')}`;
    const phone = await connect();
    const laptop = await connect();
    await opaqueRegister(gatewayCaller(phone), username, 'pw');
    const phoneSession = await opaqueLogin(gatewayCaller(phone), username, 'pw', newDevice('phone'));
    const laptopSession = await opaqueLogin(gatewayCaller(laptop), username, 'pw', newDevice('laptop'));
    assert.equal(await metric(SESSIONS), sessions, 'logging in attaches nothing');
    await call(phone, Session.attach, { sessionToken: phoneSession.sessionToken });
    await call(laptop, Session.attach, { sessionToken: laptopSession.sessionToken });
    // Attaching again on the same connection is still one attached session.
    await call(laptop, Session.attach, { sessionToken: laptopSession.sessionToken });
    assert.equal(await metric(SESSIONS), sessions + 2);

    // An envelope the delivery service accepted 1.5 s ago, pushed as delivery pushes it.
    const nc = await bed.natsClient();
    const received = pushesOf(phone);
    const envelope = {
      seq: 1n,
      messageId: 'm1',
      senderUser: 'someone',
      senderDeviceId: 'd1',
      payload: randomBytes(100),
      acceptedAtMs: BigInt(Date.now() - 1500),
      groupId: new Uint8Array(),
    };
    nc.publish(
      subjects.push(phoneSession.deviceId),
      Push.encode({ kind: { $case: 'envelope', value: envelope } }).finish(),
    );
    // A push that carries no acceptance time is not timed.
    nc.publish(
      subjects.push(phoneSession.deviceId),
      Push.encode({ kind: { $case: 'messageDelivered', value: { messageId: 'm0' } } }).finish(),
    );
    await waitFor('both pushes', () => received.length === 2);
    await waitFor('the push timed', async () => (await metric(`${LATENCY}_count`)) === pushes + 1);
    const seconds = (await metric(`${LATENCY}_sum`))! - pushSeconds;
    assert.ok(seconds >= 1.5 && seconds < 5, `latency from acceptance: ${seconds} s`);

    // Logging out detaches the laptop's connection; closing the phone's ends its attachment.
    await call(laptop, Auth.logout, {});
    assert.equal(await metric(SESSIONS), sessions + 1);
    await phone.close();
    await waitFor('the closed connection detached', async () => (await metric(SESSIONS)) === sessions);
  });
});
