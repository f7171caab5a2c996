import { status } from '@grpc/grpc-js';
import { streams, subjects } from '@qpq/bus';
import {
  DeviceEvent,
  DeviceEvent_Op,
  KeyPackageServiceService as Rpc,
  Push,
  type ClaimKeyPackagesResponse,
} from '@qpq/proto';
import { readEnv, type RpcClient, type Identity } from '@qpq/runtime';
import { metricValue, rejectsWithStatus, ServiceTestBed, waitFor } from '@qpq/testnet';
import type { NatsConnection } from 'nats';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  defaultCapabilities,
  defaultLifetime,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type CiphersuiteImpl,
  type CiphersuiteName,
} from 'ts-mls';
import { envToConfig, keyPackageEnv, type KeyPackageConfig } from './config.js';
import { DEVICE_EVENTS_CONSUMER, KeyPackageService } from './index.js';
import { deviceCredentialIdentity, REQUIRED_CIPHER_SUITE } from './key-package-check.js';

const DOMAIN = 'example.test';
/** How often the service under test samples its gauges (15 s in production). */
const SAMPLE_INTERVAL_MS = 50;

let bed: ServiceTestBed;
let service: KeyPackageService;
let gateway: RpcClient;
let stranger: RpcClient;
let nc: NatsConnection;

const configFor = (env: Record<string, string> = {}): KeyPackageConfig =>
  envToConfig(readEnv(keyPackageEnv, bed.env(env)));

// Hooks and tests carry timeouts: a stuck dependency fails the run instead of hanging it.
before(
  async () => {
    bed = await ServiceTestBed.create({ service: 'keypackage', env: { QPQ_DOMAIN: DOMAIN } });
    ({ service, gateway, stranger, nc } = await bed.startService(() =>
      KeyPackageService.create(configFor(), { sampleIntervalMs: SAMPLE_INTERVAL_MS }),
    ));
  },
  { timeout: 120_000 },
);

after(() => bed?.destroy(() => service?.stop()), { timeout: 60_000 });

// --- devices and KeyPackages, made as the client makes them (ts-mls, basic credential) ---

const suites = new Map<CiphersuiteName, Promise<CiphersuiteImpl>>();
const suite = (name: CiphersuiteName) => {
  if (!suites.has(name)) suites.set(name, getCiphersuiteImpl(getCiphersuiteFromName(name)));
  return suites.get(name)!;
};

function newDevice(username = `u${randomBytes(4).toString('hex')}`): Identity {
  return { accountId: randomUUID(), deviceId: randomUUID(), username };
}

async function keyPackage(
  device: Identity,
  opts: { suite?: CiphersuiteName; identity?: string } = {},
): Promise<Uint8Array> {
  const identity = opts.identity ?? deviceCredentialIdentity(device.username, DOMAIN, device.deviceId);
  const { publicPackage } = await generateKeyPackage(
    { credentialType: 'basic', identity: new TextEncoder().encode(identity) },
    defaultCapabilities(),
    defaultLifetime,
    [],
    await suite(opts.suite ?? REQUIRED_CIPHER_SUITE),
  );
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: publicPackage });
}

const keyPackages = (device: Identity, n: number) => Promise.all(Array.from({ length: n }, () => keyPackage(device)));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('keypackage service', { timeout: 120_000 }, () => {
  test('a device uploads one-time and last-resort KeyPackages and counts them', async () => {
    const bob = newDevice();
    const uploaded = await gateway.call(
      Rpc.uploadKeyPackages,
      { keyPackages: await keyPackages(bob, 3), lastResortKeyPackage: await keyPackage(bob) },
      { identity: bob },
    );
    assert.deepEqual(uploaded, { stored: 4, oneTimeRemaining: 3 });
    const count = await gateway.call(Rpc.countKeyPackages, {}, { identity: bob });
    assert.deepEqual(count, { oneTimeRemaining: 3, hasLastResort: true, lowWaterMark: 10 });
  });

  test('20 concurrent claims over 10 one-time KeyPackages hand each out once, then the last-resort one', async () => {
    const bob = newDevice();
    const oneTime = await keyPackages(bob, 10);
    const lastResort = await keyPackage(bob);
    await gateway.call(
      Rpc.uploadKeyPackages,
      { keyPackages: oneTime, lastResortKeyPackage: lastResort },
      { identity: bob },
    );

    const claimers = Array.from({ length: 20 }, () => newDevice());
    const claims: ClaimKeyPackagesResponse[] = await Promise.all(
      claimers.map((c) =>
        gateway.call(Rpc.claimKeyPackages, { username: bob.username, deviceIds: [] }, { identity: c }),
      ),
    );
    const handedOut = claims.map((c) => {
      assert.equal(c.keyPackages.length, 1);
      assert.equal(c.keyPackages[0]!.deviceId, bob.deviceId);
      return c.keyPackages[0]!;
    });
    const oneTimeClaims = handedOut.filter((k) => !k.lastResort).map((k) => hex(k.keyPackage));
    const lastResortClaims = handedOut.filter((k) => k.lastResort).map((k) => hex(k.keyPackage));
    assert.equal(oneTimeClaims.length, 10);
    assert.equal(new Set(oneTimeClaims).size, 10, 'no one-time KeyPackage handed out twice');
    assert.deepEqual(new Set(oneTimeClaims), new Set(oneTime.map(hex)));
    assert.deepEqual(lastResortClaims, Array(10).fill(hex(lastResort)));

    const count = await gateway.call(Rpc.countKeyPackages, {}, { identity: bob });
    assert.deepEqual(count, { oneTimeRemaining: 0, hasLastResort: true, lowWaterMark: 10 });
  });

  test('a KeyPackage of another cipher suite is refused and nothing of the upload is stored', async () => {
    const bob = newDevice();
    const good = await keyPackage(bob);
    const classic = await keyPackage(bob, { suite: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' });
    await rejectsWithStatus(
      gateway.call(
        Rpc.uploadKeyPackages,
        { keyPackages: [good, classic], lastResortKeyPackage: new Uint8Array() },
        { identity: bob },
      ),
      status.INVALID_ARGUMENT,
      'KeyPackage uses cipher suite MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519; this server requires MLS_256_XWING_AES256GCM_SHA512_Ed25519',
    );
    const count = await gateway.call(Rpc.countKeyPackages, {}, { identity: bob });
    assert.equal(count.oneTimeRemaining, 0);
  });

  test('a KeyPackage whose credential names another device, garbage, or too many are refused', async () => {
    const bob = newDevice();
    const mallory = newDevice();
    const forged = await keyPackage(mallory, {
      identity: deviceCredentialIdentity(bob.username, DOMAIN, bob.deviceId),
    });
    // Mallory uploads a KeyPackage claiming to be Bob's device.
    await rejectsWithStatus(
      gateway.call(
        Rpc.uploadKeyPackages,
        { keyPackages: [forged], lastResortKeyPackage: new Uint8Array() },
        { identity: mallory },
      ),
      status.PERMISSION_DENIED,
      /credential names/,
    );
    await rejectsWithStatus(
      gateway.call(
        Rpc.uploadKeyPackages,
        { keyPackages: [randomBytes(300)], lastResortKeyPackage: new Uint8Array() },
        { identity: bob },
      ),
      status.INVALID_ARGUMENT,
      'KeyPackage 1 is not an MLS KeyPackage message',
    );
    // Tampering breaks the self-signature.
    const tampered = Buffer.from(await keyPackage(bob));
    tampered[100] = tampered[100]! ^ 0xff;
    await rejectsWithStatus(
      gateway.call(
        Rpc.uploadKeyPackages,
        { keyPackages: [tampered], lastResortKeyPackage: new Uint8Array() },
        { identity: bob },
      ),
      status.INVALID_ARGUMENT,
      'KeyPackage 1 has an invalid signature',
    );
    const one = await keyPackage(bob);
    await rejectsWithStatus(
      gateway.call(
        Rpc.uploadKeyPackages,
        { keyPackages: Array(101).fill(one), lastResortKeyPackage: new Uint8Array() },
        { identity: bob },
      ),
      status.INVALID_ARGUMENT,
      'too many KeyPackages in one upload: 101; at most 100 per upload',
    );
    await rejectsWithStatus(
      gateway.call(
        Rpc.uploadKeyPackages,
        { keyPackages: [new Uint8Array(64 * 1024 + 1)], lastResortKeyPackage: new Uint8Array() },
        { identity: bob },
      ),
      status.INVALID_ARGUMENT,
      /at most 65536 bytes/,
    );
  });

  test('a claim below the low-water mark pushes KeyPackagesLow to the device on NATS', async () => {
    const bob = newDevice();
    await gateway.call(
      Rpc.uploadKeyPackages,
      { keyPackages: await keyPackages(bob, 3), lastResortKeyPackage: await keyPackage(bob) },
      { identity: bob },
    );
    const sub = nc.subscribe(subjects.push(bob.deviceId), { max: 1, timeout: 5000 });
    await nc.flush();
    await gateway.call(Rpc.claimKeyPackages, { username: bob.username, deviceIds: [] }, { identity: newDevice() });
    for await (const msg of sub) {
      const push = Push.decode(msg.data);
      assert.deepEqual(push.kind, { $case: 'keyPackagesLow', value: { oneTimeRemaining: 2, lowWaterMark: 10 } });
    }
    assert.equal(sub.getProcessed(), 1);
  });

  test('claims cover each device of the user, can be restricted, and replace nothing but the last resort', async () => {
    const username = `u${randomBytes(4).toString('hex')}`;
    const phone = newDevice(username);
    const laptop = { ...newDevice(username), accountId: phone.accountId };
    await gateway.call(
      Rpc.uploadKeyPackages,
      { keyPackages: await keyPackages(phone, 2), lastResortKeyPackage: new Uint8Array() },
      { identity: phone },
    );
    const lr1 = await keyPackage(laptop);
    const lr2 = await keyPackage(laptop);
    await gateway.call(Rpc.uploadKeyPackages, { keyPackages: [], lastResortKeyPackage: lr1 }, { identity: laptop });
    await gateway.call(Rpc.uploadKeyPackages, { keyPackages: [], lastResortKeyPackage: lr2 }, { identity: laptop });

    const alice = newDevice();
    const both = await gateway.call(Rpc.claimKeyPackages, { username, deviceIds: [] }, { identity: alice });
    assert.deepEqual(new Set(both.keyPackages.map((k) => k.deviceId)), new Set([phone.deviceId, laptop.deviceId]));
    const fromLaptop = both.keyPackages.find((k) => k.deviceId === laptop.deviceId)!;
    assert.equal(fromLaptop.lastResort, true);
    assert.equal(hex(fromLaptop.keyPackage), hex(lr2), 'the newer last-resort KeyPackage replaced the older');

    const onlyPhone = await gateway.call(
      Rpc.claimKeyPackages,
      { username, deviceIds: [phone.deviceId] },
      { identity: alice },
    );
    assert.deepEqual(
      onlyPhone.keyPackages.map((k) => [k.deviceId, k.lastResort]),
      [[phone.deviceId, false]],
    );
    // The phone's pool is now empty and it has no last resort: nothing left for it.
    await rejectsWithStatus(
      gateway.call(Rpc.claimKeyPackages, { username, deviceIds: [phone.deviceId] }, { identity: alice }),
      status.NOT_FOUND,
      `no KeyPackages for ${username}`,
    );
    await rejectsWithStatus(
      gateway.call(Rpc.claimKeyPackages, { username: 'nobody', deviceIds: [] }, { identity: alice }),
      status.NOT_FOUND,
      'no KeyPackages for nobody',
    );
  });

  test('claims are rate limited per calling device', async () => {
    const limited = await (await KeyPackageService.create(configFor({ QPQ_CLAIM_RATE: '2' }))).start();
    const client = bed.clientAs('gateway', limited.grpcAddress);
    try {
      const bob = newDevice();
      await client.call(
        Rpc.uploadKeyPackages,
        { keyPackages: [], lastResortKeyPackage: await keyPackage(bob) },
        { identity: bob },
      );
      const alice = newDevice();
      const claim = () =>
        client.call(Rpc.claimKeyPackages, { username: bob.username, deviceIds: [] }, { identity: alice });
      await claim();
      await claim();
      await rejectsWithStatus(
        claim(),
        status.RESOURCE_EXHAUSTED,
        /^too many KeyPackage claims; try again in (29|30) s$/,
      );
      // Another device has its own allowance.
      await client.call(Rpc.claimKeyPackages, { username: bob.username, deviceIds: [] }, { identity: newDevice() });
    } finally {
      client.close();
      await limited.stop();
    }
  });

  test('identity metadata from a caller that is not the gateway is ignored', async () => {
    const bob = newDevice();
    await rejectsWithStatus(stranger.call(Rpc.countKeyPackages, {}, { identity: bob }), status.UNAUTHENTICATED);
    await rejectsWithStatus(
      stranger.call(
        Rpc.uploadKeyPackages,
        { keyPackages: [await keyPackage(bob)], lastResortKeyPackage: new Uint8Array() },
        { identity: bob },
      ),
      status.UNAUTHENTICATED,
    );
    await rejectsWithStatus(
      stranger.call(Rpc.claimKeyPackages, { username: bob.username, deviceIds: [] }, { identity: bob }),
      status.UNAUTHENTICATED,
    );
  });

  test('/readyz is ready while Postgres and NATS are reachable', async () => {
    const res = await fetch(`http://${service.httpAddress}/readyz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
  });
});

// --- revocations, as auth publishes them (DeviceEvent on QPQ_DEVICES) ---

function revokeEvent(device: Identity): DeviceEvent {
  return {
    eventId: randomUUID(),
    op: DeviceEvent_Op.OP_REVOKE,
    accountId: device.accountId,
    username: device.username,
    address: `${device.username}@${DOMAIN}`,
    deviceId: device.deviceId,
    identityKey: randomBytes(32),
    atMs: BigInt(Date.now()),
  };
}

/** Publishes to QPQ_DEVICES; without msgID (unlike auth) so a repeat is stored, as a redelivery would be. */
async function publishRevoke(body: Uint8Array): Promise<number> {
  const ack = await nc.jetstream().publish(subjects.deviceEvent('revoke'), body);
  return ack.seq;
}

/** Waits until the keypackage consumer has handled and acknowledged everything up to `seq`. */
async function consumerPast(seq: number): Promise<void> {
  const jsm = await nc.jetstreamManager();
  const deadline = Date.now() + 15_000;
  for (;;) {
    const info = await jsm.consumers.info(streams.devices.name, DEVICE_EVENTS_CONSUMER);
    if (info.ack_floor.stream_seq >= seq && info.num_ack_pending === 0) return;
    assert.ok(
      Date.now() < deadline,
      `consumer stuck: ${JSON.stringify(info.ack_floor)}, ${info.num_ack_pending} pending`,
    );
    await sleep(50);
  }
}

describe('revoked devices', { timeout: 120_000 }, () => {
  const storedFor = async (deviceId: string) =>
    (await service.ctx.db.selectFrom('key_packages').select('id').where('device_id', '=', deviceId).execute()).length;

  test('a revoke event withdraws every KeyPackage of the device; claims leave it out; it uploads no more', async () => {
    const username = `u${randomBytes(4).toString('hex')}`;
    const phone = newDevice(username);
    const laptop = { ...newDevice(username), accountId: phone.accountId };
    for (const device of [phone, laptop]) {
      await gateway.call(
        Rpc.uploadKeyPackages,
        { keyPackages: await keyPackages(device, 3), lastResortKeyPackage: await keyPackage(device) },
        { identity: device },
      );
    }
    assert.equal(await storedFor(laptop.deviceId), 4);

    await consumerPast(await publishRevoke(DeviceEvent.encode(revokeEvent(laptop)).finish()));

    assert.equal(await storedFor(laptop.deviceId), 0, 'one-time and last-resort KeyPackages are gone');
    assert.equal(await storedFor(phone.deviceId), 4, 'the other device keeps its own');
    const alice = newDevice();
    const claimed = await gateway.call(Rpc.claimKeyPackages, { username, deviceIds: [] }, { identity: alice });
    assert.deepEqual(
      claimed.keyPackages.map((k) => k.deviceId),
      [phone.deviceId],
    );
    await rejectsWithStatus(
      gateway.call(Rpc.claimKeyPackages, { username, deviceIds: [laptop.deviceId] }, { identity: alice }),
      status.NOT_FOUND,
      `no KeyPackages for ${username}`,
    );
    // Its session is gone at auth; should a request still get through, the upload is refused.
    await rejectsWithStatus(
      gateway.call(
        Rpc.uploadKeyPackages,
        { keyPackages: await keyPackages(laptop, 1), lastResortKeyPackage: await keyPackage(laptop) },
        { identity: laptop },
      ),
      status.PERMISSION_DENIED,
      'this device was revoked; log in as a new device',
    );
    assert.equal(await storedFor(laptop.deviceId), 0);
    assert.deepEqual(await gateway.call(Rpc.countKeyPackages, {}, { identity: laptop }), {
      oneTimeRemaining: 0,
      hasLastResort: false,
      lowWaterMark: 10,
    });
  });

  test('the same revoke delivered twice, and an undecodable message, are harmless', async () => {
    const bob = newDevice();
    await gateway.call(
      Rpc.uploadKeyPackages,
      { keyPackages: await keyPackages(bob, 2), lastResortKeyPackage: await keyPackage(bob) },
      { identity: bob },
    );
    const event = revokeEvent(bob);
    const body = DeviceEvent.encode(event).finish();
    await publishRevoke(body);
    await publishRevoke(Uint8Array.from([0x0f, 0x01])); // not protobuf: skipped, not retried forever
    const last = await publishRevoke(body);
    await consumerPast(last);

    assert.equal(await storedFor(bob.deviceId), 0);
    const revoked = await service.ctx.db
      .selectFrom('revoked_devices')
      .selectAll()
      .where('device_id', '=', bob.deviceId)
      .execute();
    assert.equal(revoked.length, 1);
    assert.equal(revoked[0]!.event_id, event.eventId);
    assert.equal(revoked[0]!.revoked_at.getTime(), Number(event.atMs));
  });
});

// --- what /metrics reports ---

const metric = (name: string, labels: Record<string, string> = {}) => metricValue(service.httpAddress, name, labels);

describe('metrics', { timeout: 60_000 }, () => {
  const STORED = 'qpq_keypackage_stored_keypackages';
  const BELOW = 'qpq_keypackage_devices_below_low_water';
  const gaugeReaches = (name: string, value: number) =>
    waitFor(`${name} = ${value}`, async () => (await metric(name)) === value);

  test('uploads, claims by kind and the sampled stock follow what devices do', async () => {
    // Nothing else changes the pool meanwhile: once a few samples went by, these are current.
    await sleep(4 * SAMPLE_INTERVAL_MS);
    const stored = (await metric(STORED))!;
    const below = (await metric(BELOW))!;
    assert.ok(stored !== undefined && below !== undefined, 'the stock gauges are on /metrics');
    const uploaded = (await metric('qpq_keypackage_uploaded_total'))!;
    const pooled = (await metric('qpq_keypackage_claims_total', { kind: 'pooled' }))!;
    const lastResort = (await metric('qpq_keypackage_claims_total', { kind: 'last_resort' }))!;

    // 12 one-time KeyPackages (above the low-water mark of 10) and a last-resort one.
    const carol = newDevice();
    await gateway.call(
      Rpc.uploadKeyPackages,
      { keyPackages: await keyPackages(carol, 12), lastResortKeyPackage: await keyPackage(carol) },
      { identity: carol },
    );
    assert.equal(await metric('qpq_keypackage_uploaded_total'), uploaded + 13);
    await gaugeReaches(STORED, stored + 12);
    assert.equal(await metric(BELOW), below, 'carol has enough');

    // Three claims take her below the low-water mark.
    for (let i = 0; i < 3; i++) {
      await gateway.call(Rpc.claimKeyPackages, { username: carol.username, deviceIds: [] }, { identity: newDevice() });
    }
    assert.equal(await metric('qpq_keypackage_claims_total', { kind: 'pooled' }), pooled + 3);
    assert.equal(await metric('qpq_keypackage_claims_total', { kind: 'last_resort' }), lastResort);
    await gaugeReaches(STORED, stored + 9);
    await gaugeReaches(BELOW, below + 1);

    // Her revocation withdraws them all: she is no longer a device with a stock.
    await consumerPast(await publishRevoke(DeviceEvent.encode(revokeEvent(carol)).finish()));
    await gaugeReaches(STORED, stored);
    await gaugeReaches(BELOW, below);

    // A device with only its last-resort KeyPackage: the claim gets that one.
    const dave = newDevice();
    await gateway.call(
      Rpc.uploadKeyPackages,
      { keyPackages: [], lastResortKeyPackage: await keyPackage(dave) },
      { identity: dave },
    );
    await gateway.call(Rpc.claimKeyPackages, { username: dave.username, deviceIds: [] }, { identity: newDevice() });
    assert.equal(await metric('qpq_keypackage_claims_total', { kind: 'last_resort' }), lastResort + 1);
    assert.equal(await metric('qpq_keypackage_uploaded_total'), uploaded + 14);
    await gaugeReaches(BELOW, below + 1);
  });

  test('the DeviceEvents consumer backlog and the Postgres pool are reported', async () => {
    const consumer = { stream: streams.devices.name, consumer: DEVICE_EVENTS_CONSUMER };
    // Every revoke published so far was handled (the tests waited for it): nothing left behind.
    await waitFor('an empty backlog', async () => {
      const pending = await metric('qpq_jetstream_consumer_pending_messages', consumer);
      const ackPending = await metric('qpq_jetstream_consumer_ack_pending_messages', consumer);
      return pending === 0 && ackPending === 0;
    });
    assert.equal(await metric('qpq_jetstream_consumer_redelivered_messages', consumer), 0);
    assert.equal(await metric('qpq_db_pool_max_connections'), 8);
    const idle = await metric('qpq_db_pool_connections', { state: 'idle' });
    const busy = await metric('qpq_db_pool_connections', { state: 'busy' });
    // Busy only for the moment a sample's query runs.
    assert.ok(idle !== undefined && busy !== undefined && idle + busy >= 1, `${idle} idle, ${busy} busy`);
    assert.equal(await metric('qpq_db_pool_waiting_clients'), 0);
  });
});
