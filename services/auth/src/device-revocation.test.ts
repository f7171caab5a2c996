import { status } from '@grpc/grpc-js';
import { AuthServiceService as Rpc, DeviceEvent, DeviceEvent_Op, Push, type FinishLoginResponse } from '@qpq/proto';
import { readEnv, type RpcClient } from '@qpq/runtime';
import {
  freeTcpPort,
  messagesDuring,
  rejectsWithStatus,
  ServiceTestBed,
  startNats,
  waitFor,
  type NatsHandle,
} from '@qpq/testnet';
import { connect, type NatsConnection } from 'nats';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { authEnv, envToConfig, type AuthConfig } from './config.js';
import { AuthService } from './index.js';
import { existingDevice, identityOf, login, newDevice, register, uniqueName } from './test-client.js';

const DOMAIN = 'example.test';
const DEVICES_STREAM = 'QPQ_DEVICES';

let bed: ServiceTestBed;
let service: AuthService;
let gateway: RpcClient;
let nc: NatsConnection;

const configFor = (env: Record<string, string> = {}): AuthConfig => envToConfig(readEnv(authEnv, bed.env(env)));

before(
  async () => {
    bed = await ServiceTestBed.create({ service: 'auth', env: { QPQ_DOMAIN: DOMAIN } });
    ({ service, gateway, nc } = await bed.startService(() => AuthService.create(configFor())));
  },
  { timeout: 120_000 },
);

after(() => bed?.destroy(() => service?.stop()), { timeout: 60_000 });

/** A registered account with `n` devices, logged in on each. */
async function accountWithDevices(
  n: number,
  client = gateway,
): Promise<{ username: string; devices: FinishLoginResponse[] }> {
  const username = uniqueName('rev');
  await register(client, username, 'pw');
  const devices: FinishLoginResponse[] = [];
  for (let i = 0; i < n; i++) devices.push(await login(client, username, 'pw', newDevice(`device ${i}`)));
  return { username, devices };
}

const revoke = (by: FinishLoginResponse, deviceId: string, client = gateway) =>
  client.call(Rpc.revokeDevice, { deviceId }, { identity: identityOf(by) });

interface StoredEvent {
  subject: string;
  msgId: string | undefined;
  event: DeviceEvent;
}

/** Every DeviceEvent in the QPQ_DEVICES stream of the NATS server `conn` talks to. */
async function eventsInStream(conn: NatsConnection): Promise<StoredEvent[]> {
  const jsm = await conn.jetstreamManager();
  const { state } = await jsm.streams.info(DEVICES_STREAM);
  const out: StoredEvent[] = [];
  if (state.messages === 0) return out;
  for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(DEVICES_STREAM, { seq });
    out.push({ subject: m.subject, msgId: m.header?.get('Nats-Msg-Id'), event: DeviceEvent.decode(m.data) });
  }
  return out;
}

/** The stream's events about `deviceId`, once `count` of them are there (and a moment later, for strays). */
async function eventsFor(conn: NatsConnection, deviceId: string, count: number): Promise<StoredEvent[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const found = (await eventsInStream(conn)).filter((e) => e.event.deviceId === deviceId);
    if (found.length >= count) {
      await sleep(300);
      return (await eventsInStream(conn)).filter((e) => e.event.deviceId === deviceId);
    }
    assert.ok(Date.now() < deadline, `only ${found.length} of ${count} events for ${deviceId} reached the stream`);
    await sleep(50);
  }
}

/** Pushes received on every device's push subject while `action` runs, by device id. */
async function pushesDuring(action: () => Promise<unknown>): Promise<Map<string, Push[]>> {
  const received = await messagesDuring(
    nc,
    'qpq.push.*',
    (msg) => ({ deviceId: msg.subject.slice('qpq.push.'.length), push: Push.decode(msg.data) }),
    action,
  );
  const byDevice = new Map<string, Push[]>();
  for (const { deviceId, push } of received) byDevice.set(deviceId, [...(byDevice.get(deviceId) ?? []), push]);
  return byDevice;
}

describe('device revocation', { timeout: 120_000 }, () => {
  test('a revoked device loses its sessions, cannot log in again, and leaves ResolveUser and ListDevices', async () => {
    const { username, devices } = await accountWithDevices(2);
    const [phone, laptop] = devices as [FinishLoginResponse, FinishLoginResponse];
    // A second session of the laptop, so "every session" is more than one.
    const laptopAgain = await login(gateway, username, 'pw', existingDevice(laptop.deviceId));

    await revoke(phone, laptop.deviceId);

    for (const token of [laptop.sessionToken, laptopAgain.sessionToken]) {
      await rejectsWithStatus(
        gateway.call(Rpc.validateSession, { sessionToken: token }),
        status.UNAUTHENTICATED,
        'session expired or revoked; log in again',
      );
    }
    const sessionRows = await service.ctx.db
      .selectFrom('sessions')
      .select('token_hash')
      .where('device_id', '=', laptop.deviceId)
      .execute();
    assert.equal(sessionRows.length, 0, 'the sessions are deleted, not only refused');
    await rejectsWithStatus(
      login(gateway, username, 'pw', existingDevice(laptop.deviceId)),
      status.PERMISSION_DENIED,
      'this device was revoked; log in as a new device',
    );

    const listed = await gateway.call(Rpc.listDevices, {}, { identity: identityOf(phone) });
    assert.deepEqual(
      listed.devices.map((d) => d.deviceId),
      [phone.deviceId],
    );
    const resolved = await gateway.call(Rpc.resolveUser, { username }, { identity: identityOf(phone) });
    assert.deepEqual(
      resolved.devices.map((d) => d.deviceId),
      [phone.deviceId],
    );
    // The device doing the revoking is untouched.
    assert.equal(
      (await gateway.call(Rpc.validateSession, { sessionToken: phone.sessionToken })).deviceId,
      phone.deviceId,
    );

    await rejectsWithStatus(
      revoke(phone, laptop.deviceId),
      status.FAILED_PRECONDITION,
      'this device is already revoked',
    );
  });

  test('a device can revoke itself', async () => {
    const { devices } = await accountWithDevices(2);
    const [self, other] = devices as [FinishLoginResponse, FinishLoginResponse];
    await revoke(self, self.deviceId);
    await rejectsWithStatus(
      gateway.call(Rpc.validateSession, { sessionToken: self.sessionToken }),
      status.UNAUTHENTICATED,
    );
    const listed = await gateway.call(Rpc.listDevices, {}, { identity: identityOf(other) });
    assert.deepEqual(
      listed.devices.map((d) => d.deviceId),
      [other.deviceId],
    );
  });

  test('a revoked device frees its place: a 6th device registers after one of 5 is revoked', async () => {
    const { username, devices } = await accountWithDevices(5);
    await rejectsWithStatus(
      login(gateway, username, 'pw', newDevice('sixth')),
      status.RESOURCE_EXHAUSTED,
      /device limit reached/,
    );
    await revoke(devices[0]!, devices[4]!.deviceId);
    const sixth = await login(gateway, username, 'pw', newDevice('sixth'));
    const listed = await gateway.call(Rpc.listDevices, {}, { identity: identityOf(sixth) });
    assert.equal(listed.devices.length, 5);
    assert.ok(listed.devices.some((d) => d.deviceId === sixth.deviceId));
    await rejectsWithStatus(login(gateway, username, 'pw', newDevice('seventh')), status.RESOURCE_EXHAUSTED);
  });

  test("another account's device, an unknown id and a non-id are all NOT_FOUND, and nothing changes", async () => {
    const mine = await accountWithDevices(1);
    const theirs = await accountWithDevices(1);
    const me = mine.devices[0]!;
    const them = theirs.devices[0]!;
    for (const deviceId of [them.deviceId, randomUUID(), 'not-a-device-id', '']) {
      await rejectsWithStatus(revoke(me, deviceId), status.NOT_FOUND, 'no such device');
    }
    assert.equal(
      (await gateway.call(Rpc.validateSession, { sessionToken: them.sessionToken })).deviceId,
      them.deviceId,
    );
    // Without an identity from the gateway there is no caller whose device it could be.
    await rejectsWithStatus(gateway.call(Rpc.revokeDevice, { deviceId: me.deviceId }), status.UNAUTHENTICATED);
  });

  test('a revocation is audited', async () => {
    const { devices } = await accountWithDevices(2);
    const seen: string[] = [];
    const sub = nc.subscribe('qpq.audit.device.revoked', { callback: (_err, msg) => seen.push(msg.string()) });
    await nc.flush();
    await revoke(devices[0]!, devices[1]!.deviceId);
    await waitFor('the audit event', () => seen.some((b) => b.includes(devices[1]!.deviceId)));
    sub.unsubscribe();
    const body = JSON.parse(seen.find((b) => b.includes(devices[1]!.deviceId))!) as Record<string, unknown>;
    assert.equal(body.by_device_id, devices[0]!.deviceId);
    assert.equal(body.sessions, 1);
  });
});

describe('device events (outbox → QPQ_DEVICES) and device pushes', { timeout: 120_000 }, () => {
  test('adding and revoking a device each publish one complete DeviceEvent; logging in again publishes none', async () => {
    const { username, devices } = await accountWithDevices(2);
    const [first, second] = devices as [FinishLoginResponse, FinishLoginResponse];
    await login(gateway, username, 'pw', existingDevice(second.deviceId));
    await revoke(first, second.deviceId);

    const events = await eventsFor(nc, second.deviceId, 2);
    assert.deepEqual(
      events.map((e) => [e.subject, e.event.op]),
      [
        ['qpq.devices.add', DeviceEvent_Op.OP_ADD],
        ['qpq.devices.revoke', DeviceEvent_Op.OP_REVOKE],
      ],
    );
    const listed = await gateway.call(Rpc.resolveUser, { username }, { identity: identityOf(first) });
    const [added, revoked] = events as [StoredEvent, StoredEvent];
    for (const { event, msgId } of events) {
      assert.equal(msgId, event.eventId, 'the event id is the msgID JetStream deduplicates on');
      assert.match(event.eventId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUIDv7');
      assert.equal(event.accountId, second.accountId);
      assert.equal(event.username, username);
      assert.equal(event.address, `${username}@${DOMAIN}`);
      assert.equal(event.identityKey.length, 32);
      assert.ok(Math.abs(Number(event.atMs) - Date.now()) < 60_000);
    }
    assert.deepEqual(added.event.identityKey, revoked.event.identityKey);
    assert.ok(added.event.eventId < revoked.event.eventId);
    assert.equal(listed.devices.length, 1, 'only the first device remains');
    // The first device's add is there once too.
    assert.equal((await eventsFor(nc, first.deviceId, 1)).length, 1);

    const unpublished = await service.ctx.db
      .selectFrom('device_events')
      .select('event_id')
      .where('published_at', 'is', null)
      .execute();
    assert.deepEqual(unpublished, [], 'the relay marks what it published');
  });

  test('a new device is announced to the other devices; a revoked one gets SessionRevoked and the rest DevicesChanged', async () => {
    const { username, devices } = await accountWithDevices(2);
    const [a, b] = devices as [FinishLoginResponse, FinishLoginResponse];

    let c: FinishLoginResponse | undefined;
    const onAdd = await pushesDuring(async () => (c = await login(gateway, username, 'pw', newDevice('third'))));
    const added = { $case: 'devicesChanged', value: { accountId: a.accountId, deviceId: c!.deviceId, revoked: false } };
    assert.deepEqual(
      onAdd.get(a.deviceId)?.map((p) => p.kind),
      [added],
    );
    assert.deepEqual(
      onAdd.get(b.deviceId)?.map((p) => p.kind),
      [added],
    );
    assert.equal(onAdd.get(c!.deviceId), undefined, 'the new device is not told about itself');

    const onRelogin = await pushesDuring(() => login(gateway, username, 'pw', existingDevice(a.deviceId)));
    assert.equal(onRelogin.size, 0, 'logging in again as a known device changes no device');

    const onRevoke = await pushesDuring(() => revoke(a, b.deviceId));
    const revoked = { $case: 'devicesChanged', value: { accountId: a.accountId, deviceId: b.deviceId, revoked: true } };
    assert.deepEqual(
      onRevoke.get(a.deviceId)?.map((p) => p.kind),
      [revoked],
    );
    assert.deepEqual(
      onRevoke.get(c!.deviceId)?.map((p) => p.kind),
      [revoked],
    );
    assert.deepEqual(
      onRevoke.get(b.deviceId)?.map((p) => p.kind),
      [{ $case: 'sessionRevoked', value: { deviceId: b.deviceId } }],
    );
  });

  test('events written while NATS is down are published once it is back, and a republish is dropped', async () => {
    // Its own NATS (to stop and restart on the same port and store) and its own database (so the
    // shared service's relay cannot publish these events to the other NATS).
    const dir = await mkdtemp(join(tmpdir(), 'qpq-auth-outage-'));
    const port = await freeTcpPort();
    const dbName = `auth_outage_${randomBytes(4).toString('hex')}`;
    let ownNats: NatsHandle = await startNats({ dir, port });
    const databaseUrl = await bed.postgres.createDatabase(dbName);
    const svc = await (
      await AuthService.create(
        configFor({
          QPQ_NATS_URL: ownNats.url,
          QPQ_DATABASE_URL: databaseUrl,
          QPQ_DEVICE_EVENT_RELAY_INTERVAL: '200ms',
        }),
      )
    ).start();
    const client = bed.clientAs('gateway', svc.grpcAddress);
    let watcher: NatsConnection | undefined;
    try {
      const { devices } = await accountWithDevices(2, client);
      const [keep, gone] = devices as [FinishLoginResponse, FinishLoginResponse];
      watcher = await connect({ servers: ownNats.url, timeout: 5_000 });
      await eventsFor(watcher, gone.deviceId, 1);
      await watcher.close();

      await ownNats.stop();
      await waitFor('auth to notice NATS is gone', () => !svc.ctx.bus.isConnected(), 10_000);
      await revoke(keep, gone.deviceId, client);
      await rejectsWithStatus(
        client.call(Rpc.validateSession, { sessionToken: gone.sessionToken }),
        status.UNAUTHENTICATED,
      );
      await sleep(500); // a few relay intervals with NATS away
      const pending = await svc.ctx.db
        .selectFrom('device_events')
        .select('op')
        .where('published_at', 'is', null)
        .execute();
      assert.deepEqual(pending, [{ op: 'revoke' }], 'the revoke event waits in the outbox');

      ownNats = await startNats({ dir, port });
      watcher = await connect({ servers: ownNats.url, timeout: 5_000 });
      const events = await eventsFor(watcher, gone.deviceId, 2);
      assert.deepEqual(
        events.map((e) => e.event.op),
        [DeviceEvent_Op.OP_ADD, DeviceEvent_Op.OP_REVOKE],
      );
      await waitFor(
        'the outbox to be marked published',
        async () =>
          (await svc.ctx.db.selectFrom('device_events').select('op').where('published_at', 'is', null).execute())
            .length === 0,
      );

      // A crash between publishing and marking: the rows are published again, and JetStream drops the repeats.
      const before = (await eventsInStream(watcher)).length;
      await svc.ctx.deviceEvents.stop(); // so the pass below is the only one
      await svc.ctx.db.updateTable('device_events').set({ published_at: null }).execute();
      assert.equal(await svc.ctx.deviceEvents.relayPending(), 3, 'two adds and a revoke, all published again');
      assert.equal((await eventsInStream(watcher)).length, before, 'no event is stored twice');
    } finally {
      await watcher?.close();
      client.close();
      await svc.stop();
      await ownNats.stop();
      await rm(dir, { recursive: true, force: true });
      await bed.postgres.dropDatabase(dbName);
    }
  });
});
