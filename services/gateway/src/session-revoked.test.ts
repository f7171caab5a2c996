/**
 * The gateway in this process in front of the real auth service (Postgres, NATS, mutual TLS) and
 * real QUIC clients: what the gateway does when one of its attached devices is revoked.
 */
import { AuthService, authEnv, envToConfig as authConfig } from '@qpq/auth';
import { AuthServiceService as Auth, SessionServiceService as Session, type Push } from '@qpq/proto';
import { readEnv } from '@qpq/runtime';
import {
  callGateway as call,
  existingDevice,
  freeTcpPort,
  gatewayCaller,
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
});
