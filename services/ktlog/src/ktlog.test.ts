/**
 * The ktlog service against real Postgres and real NATS JetStream: DeviceEvents published to
 * QPQ_DEVICES become log entries (once each), and every proof it serves verifies with libs/merkle
 * against a tree built here, independently, from the events that were published.
 */
import { status } from '@grpc/grpc-js';
import { encodeLogEntry, verifyTreeHead } from '@qpq/crypto';
import { leafHash, MerkleTree, verifyConsistency, verifyInclusion } from '@qpq/merkle';
import {
  DeviceEvent,
  DeviceEvent_Op,
  KeyTransparencyServiceService as Rpc,
  type GetEntriesResponse,
  type LogEntry,
  type SignedTreeHead,
} from '@qpq/proto';
import { readEnv, type RpcClient } from '@qpq/runtime';
import { rejectsWithStatus, ServiceTestBed, waitFor } from '@qpq/testnet';
import type { JetStreamClient } from 'nats';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { envToConfig, ktlogEnv, type KtlogConfig } from './config.js';
import { KtlogService } from './index.js';
import { appendEntries } from './log-append.js';

let bed: ServiceTestBed;
let cfg: KtlogConfig;
let service: KtlogService | undefined;
let client: RpcClient;
let js: JetStreamClient;
/** Every distinct event published so far, in publish order: what the log must hold, in this order. */
const published: DeviceEvent[] = [];
const reference = new MerkleTree();

function deviceEvent(username: string, op = DeviceEvent_Op.OP_ADD): DeviceEvent {
  return {
    eventId: randomUUID(),
    op,
    accountId: randomUUID(),
    username,
    address: `${username}@example.test`,
    deviceId: randomUUID(),
    identityKey: new Uint8Array(randomBytes(32)),
    atMs: BigInt(Date.now()),
  };
}

function leafOf(e: DeviceEvent): Uint8Array {
  return leafHash(
    encodeLogEntry({
      op: e.op,
      address: e.address,
      deviceId: e.deviceId,
      identityKey: e.identityKey,
      timestampMs: e.atMs,
    }),
  );
}

/** Publishes events (in order) to the stream; new ones are added to what the log must hold. */
async function publish(events: DeviceEvent[]): Promise<void> {
  for (const e of events) {
    await js.publish(
      `qpq.devices.${e.op === DeviceEvent_Op.OP_ADD ? 'add' : 'revoke'}`,
      DeviceEvent.encode(e).finish(),
    );
    if (!published.some((p) => p.eventId === e.eventId)) {
      published.push(e);
      reference.appendLeafHash(leafOf(e));
    }
  }
}

async function head(): Promise<SignedTreeHead> {
  return client.call(Rpc.getTreeHead, {});
}

/** Waits until the served head covers `size` entries. */
async function headReaches(size: number, timeoutMs = 20_000): Promise<SignedTreeHead> {
  return waitFor(
    `a tree head of size ${size}`,
    async () => {
      const h = await head();
      return h.treeSize >= BigInt(size) ? h : undefined;
    },
    timeoutMs,
    25,
  );
}

async function startService(): Promise<void> {
  const started = await bed.startService(() => KtlogService.create(cfg));
  service = started.service;
  client = started.gateway;
  js = started.nc.jetstream();
}

before(
  async () => {
    bed = await ServiceTestBed.create({ service: 'ktlog' });
    cfg = envToConfig(readEnv(ktlogEnv, bed.env({ QPQ_KTLOG_BATCH: '200' })));
    await startService();
  },
  { timeout: 120_000 },
);

after(
  async () => {
    await bed?.destroy(async () => {
      await service?.stop();
    });
  },
  { timeout: 60_000 },
);

/** Every entry of the log, read page by page up to `size`. */
async function allEntries(size: number): Promise<LogEntry[]> {
  const entries: LogEntry[] = [];
  while (entries.length < size) {
    const page: GetEntriesResponse = await client.call(Rpc.getEntries, { start: BigInt(entries.length), count: 0 });
    assert.ok(page.entries.length > 0);
    entries.push(...page.entries);
  }
  return entries;
}

/** Checks the whole log against the reference: same entries, in order, and the head's root. */
async function assertLogMatchesReference(h: SignedTreeHead): Promise<void> {
  assert.equal(h.treeSize, BigInt(published.length), 'head size = distinct events published');
  assert.ok(verifyTreeHead(h), 'head signature verifies');
  const entries = await allEntries(published.length);
  assert.deepEqual(
    entries.map((e) => [Number(e.index), e.deviceId]),
    published.map((e, i) => [i, e.deviceId]),
    'every event once, in the order published',
  );
  assert.deepEqual(Buffer.from(h.rootHash), Buffer.from(reference.root(published.length)), 'head root');
}

describe('ktlog', () => {
  it('serves a signed head of the empty tree before any event', async () => {
    const h = await head();
    assert.equal(h.treeSize, 0n);
    assert.ok(verifyTreeHead(h, h.logPublicKey));
    assert.deepEqual(Buffer.from(h.rootHash), Buffer.from(reference.root(0)));
  });

  it('appends a published DeviceEvent, and the same event twice only once', async () => {
    const add = deviceEvent('alice');
    const revoke = { ...deviceEvent('alice', DeviceEvent_Op.OP_REVOKE), deviceId: add.deviceId };
    revoke.identityKey = add.identityKey;
    const t0 = Date.now();
    await publish([add]);
    await headReaches(1);
    assert.ok(Date.now() - t0 < 1_000, `appended within a second (took ${Date.now() - t0} ms)`);
    await publish([add, revoke, add, revoke]);
    const h = await headReaches(2);
    // Give a wrongly repeated append time to show up before checking.
    await new Promise((r) => setTimeout(r, 500));
    await assertLogMatchesReference(await head());
    assert.equal(h.treeSize, 2n);
    const { entries } = await client.call(Rpc.getEntries, { start: 0n, count: 10 });
    assert.deepEqual(
      entries.map((e) => [e.op, e.address, e.deviceId, Buffer.from(e.identityKey).toString('hex')]),
      [
        [1, 'alice@example.test', add.deviceId, Buffer.from(add.identityKey).toString('hex')],
        [2, 'alice@example.test', add.deviceId, Buffer.from(add.identityKey).toString('hex')],
      ],
    );
  });

  it('skips events that cannot be entries without holding up the ones behind them', async () => {
    const size = published.length;
    await js.publish('qpq.devices.add', new Uint8Array([0xff, 0xff, 0xff]));
    const bad = [
      { ...deviceEvent('mallory'), eventId: 'not-a-uuid' },
      { ...deviceEvent('mallory'), identityKey: new Uint8Array(0) },
      { ...deviceEvent('mallory'), identityKey: new Uint8Array(70_000) },
      { ...deviceEvent('mallory'), address: 'no-domain' },
    ];
    for (const e of bad) await js.publish('qpq.devices.add', DeviceEvent.encode(e).finish());
    const good = deviceEvent('carol');
    await publish([good]);
    await headReaches(size + 1);
    await new Promise((r) => setTimeout(r, 300));
    await assertLogMatchesReference(await head());
  });

  it('LookupUser returns the history of a user, each entry with a proof against the head', async () => {
    const res = await client.call(Rpc.lookupUser, { username: 'alice', waitMs: 0 });
    assert.ok(verifyTreeHead(res.head!));
    const size = Number(res.head!.treeSize);
    assert.deepEqual(
      res.entries.map((p) => p.entry!.op),
      [1, 2],
    );
    for (const p of res.entries) {
      const e = p.entry!;
      const leaf = leafHash(encodeLogEntry(e));
      assert.ok(verifyInclusion(Number(e.index), size, leaf, p.proof, res.head!.rootHash), `entry ${e.index}`);
    }
    const exact = await client.call(Rpc.lookupUser, { username: 'alice@example.test', waitMs: 0 });
    assert.equal(exact.entries.length, 2);
  });

  it('LookupUser waits (bounded) for the first entry of a user that is being registered', async () => {
    const bob = deviceEvent('bob');
    const t0 = Date.now();
    const pending = client.call(Rpc.lookupUser, { username: 'bob', waitMs: 3_000 });
    setTimeout(() => void publish([bob]), 300);
    const res = await pending;
    assert.equal(res.entries.length, 1);
    assert.equal(res.entries[0]!.entry!.deviceId, bob.deviceId);
    assert.ok(Date.now() - t0 < 3_000);

    const t1 = Date.now();
    const nobody = await client.call(Rpc.lookupUser, { username: 'nobody', waitMs: 60_000 });
    const waited = Date.now() - t1;
    assert.equal(nobody.entries.length, 0);
    assert.ok(waited >= 2_900 && waited < 4_500, `waited ${waited} ms, bounded by QPQ_KTLOG_LOOKUP_WAIT`);
  });

  it(
    'proofs verify against an independent tree for many sizes, appended in batches',
    { timeout: 180_000 },
    async () => {
      // Waves of random length; waiting after some of them makes heads of many sizes.
      while (published.length < 3000) {
        const wave = Array.from({ length: 1 + Math.floor(Math.random() * 300) }, (_, i) =>
          deviceEvent(`user${i % 50}`),
        );
        await publish(wave);
        if (Math.random() < 0.5) await headReaches(published.length);
      }
      const h = await headReaches(published.length, 60_000);
      await assertLogMatchesReference(h);
      const n = published.length;
      const random = (below: number) => Math.floor(Math.random() * below);

      for (let k = 0; k < 300; k++) {
        const size = k < 20 ? k + 1 : 1 + random(n);
        const index = random(size);
        const proof = await client.call(Rpc.getInclusionProof, { index: BigInt(index), treeSize: BigInt(size) });
        assert.deepEqual(
          proof.hashes.map((x) => Buffer.from(x).toString('hex')),
          reference.inclusionProof(index, size).map((x) => Buffer.from(x).toString('hex')),
          `inclusion ${index}/${size}`,
        );
        assert.ok(verifyInclusion(index, size, reference.leafHash(index), proof.hashes, reference.root(size)));
      }
      for (let k = 0; k < 300; k++) {
        const size2 = k < 20 ? n - k : 1 + random(n);
        const size1 = 1 + random(size2);
        const proof = await client.call(Rpc.getConsistencyProof, { fromSize: BigInt(size1), toSize: BigInt(size2) });
        assert.ok(
          verifyConsistency(size1, size2, reference.root(size1), reference.root(size2), proof.hashes),
          `consistency ${size1} → ${size2}`,
        );
      }
      // A proof that verifies only because the verifier accepts anything would pass the loops above.
      const proof = await client.call(Rpc.getInclusionProof, { index: 5n, treeSize: BigInt(n) });
      const tampered = proof.hashes.map((x) => new Uint8Array(x));
      tampered[0]![0] = tampered[0]![0]! ^ 1;
      assert.equal(verifyInclusion(5, n, reference.leafHash(5), tampered, h.rootHash), false);
    },
  );

  it('refuses ranges outside the newest head with OUT_OF_RANGE', async () => {
    const n = BigInt(published.length);
    await rejectsWithStatus(client.call(Rpc.getInclusionProof, { index: n, treeSize: n }), status.OUT_OF_RANGE);
    await rejectsWithStatus(client.call(Rpc.getInclusionProof, { index: 0n, treeSize: n + 1n }), status.OUT_OF_RANGE);
    await rejectsWithStatus(client.call(Rpc.getInclusionProof, { index: 0n, treeSize: 0n }), status.OUT_OF_RANGE);
    await rejectsWithStatus(client.call(Rpc.getConsistencyProof, { fromSize: 0n, toSize: n }), status.OUT_OF_RANGE);
    await rejectsWithStatus(client.call(Rpc.getConsistencyProof, { fromSize: 3n, toSize: 2n }), status.OUT_OF_RANGE);
    await rejectsWithStatus(
      client.call(Rpc.getConsistencyProof, { fromSize: 1n, toSize: n + 1n }),
      status.OUT_OF_RANGE,
    );
    await rejectsWithStatus(client.call(Rpc.getEntries, { start: n, count: 1 }), status.OUT_OF_RANGE);
    await rejectsWithStatus(
      client.call(Rpc.getInclusionProof, { index: 0n, treeSize: 2n ** 64n - 1n }),
      status.OUT_OF_RANGE,
    );
  });

  it(
    'restarted mid-stream, loses and duplicates no entry and never serves a smaller head',
    { timeout: 120_000 },
    async () => {
      const before = await head();
      // Events keep arriving while the service stops, while it is down and while it starts again.
      const during = Array.from({ length: 600 }, (_, i) => deviceEvent(`restart${i % 20}`));
      const publishing = publish(during);
      await waitFor('part of the events appended', async () => (await head()).treeSize > before.treeSize, 20_000, 5);
      await service!.stop();
      service = undefined;
      await publishing;
      await publish([during[0]!, during[1]!]); // repeats, as a redelivery would be
      await startService();
      const first = await head();
      assert.ok(first.treeSize >= before.treeSize, 'a restarted log serves no smaller head');
      const h = await headReaches(published.length, 30_000);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await head()).treeSize, h.treeSize, 'no entry appended twice');
      assert.equal(h.treeSize, BigInt(published.length), 'every distinct event appended');
      // Messages handed back at the stop come again after newer ones, so the order after `before` may
      // differ from the publish order; the entries must still be exactly the events published.
      const entries = await allEntries(published.length);
      // A device's add and revoke share its id: (device, op) names one event here.
      const byDevice = new Map(published.map((e) => [`${e.deviceId}/${e.op}`, e]));
      const rebuilt = new MerkleTree();
      for (const e of entries) {
        const event = byDevice.get(`${e.deviceId}/${e.op}`);
        assert.ok(event, `entry ${e.index} was published, once`);
        byDevice.delete(`${e.deviceId}/${e.op}`);
        rebuilt.appendLeafHash(leafOf(event));
      }
      assert.equal(byDevice.size, 0, 'no published event is missing');
      assert.ok(verifyTreeHead(h));
      assert.deepEqual(Buffer.from(h.rootHash), Buffer.from(rebuilt.root()), 'head root');
      assert.deepEqual(Buffer.from(rebuilt.root(Number(before.treeSize))), Buffer.from(before.rootHash));
      assert.deepEqual(
        Buffer.from(h.logPublicKey),
        Buffer.from(before.logPublicKey),
        'the same log key after a restart',
      );
      const proof = await client.call(Rpc.getConsistencyProof, { fromSize: before.treeSize, toSize: h.treeSize });
      assert.ok(
        verifyConsistency(Number(before.treeSize), Number(h.treeSize), before.rootHash, h.rootHash, proof.hashes),
      );
    },
  );

  it('proofs verify for random sizes beyond 2^16 (entries appended in bulk)', { timeout: 300_000 }, async () => {
    const { ctx } = service!;
    // The restart above may have reordered entries: rebuild the reference from the log's own order.
    const start = Number((await head()).treeSize);
    const tree = new MerkleTree();
    for (const e of await allEntries(start)) tree.appendLeafHash(leafHash(encodeLogEntry(e)));
    const target = 2 ** 16 + 4321;
    while (tree.size < target) {
      const batch = Array.from({ length: Math.min(5000, target - tree.size) }, () => {
        const e = deviceEvent('bulk');
        return { ...e, timestampMs: e.atMs };
      });
      await appendEntries(ctx.db, batch, ctx.signingKey, Date.now);
      for (const e of batch) tree.appendLeafHash(leafHash(encodeLogEntry(e)));
    }
    const h = await head();
    assert.equal(h.treeSize, BigInt(target));
    assert.deepEqual(Buffer.from(h.rootHash), Buffer.from(tree.root()));
    const random = (below: number) => Math.floor(Math.random() * below);
    for (let k = 0; k < 200; k++) {
      const size = 2 ** 15 + random(target - 2 ** 15) + 1;
      const index = random(size);
      const proof = await client.call(Rpc.getInclusionProof, { index: BigInt(index), treeSize: BigInt(size) });
      assert.ok(verifyInclusion(index, size, tree.leafHash(index), proof.hashes, tree.root(size)), `${index}/${size}`);
      const size1 = 1 + random(size);
      const consistency = await client.call(Rpc.getConsistencyProof, {
        fromSize: BigInt(size1),
        toSize: BigInt(size),
      });
      assert.ok(
        verifyConsistency(size1, size, tree.root(size1), tree.root(size), consistency.hashes),
        `${size1} → ${size}`,
      );
    }
  });
});
