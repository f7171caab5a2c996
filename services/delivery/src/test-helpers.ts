// Shared by this service's tests (not exported from the package).
import { openDatabase } from '@qpq/db';
import { readEnv, type Identity, type RpcClient } from '@qpq/runtime';
import { metricValue, ServiceTestBed } from '@qpq/testnet';
import type { Kysely } from 'kysely';
import type { NatsConnection } from 'nats';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before } from 'node:test';
import { deliveryEnv, envToConfig, type DeliveryConfig } from './config.js';
import type { DeliveryTables } from './db/schema.js';
import { DeliveryService } from './index.js';

/** How often the service under test samples its mailbox backlog gauges (15 s in production). */
export const SAMPLE_INTERVAL_MS = 50;

/** The running delivery service and what its tests reach it with; filled in by the suite's before(). */
export interface DeliveryUnderTest {
  bed: ServiceTestBed;
  cfg: DeliveryConfig;
  /** A test that restarts the service puts the new one (and its `gateway` client) here; after() stops it. */
  service: DeliveryService;
  /** Calls with the gateway's certificate: identity metadata is honoured. */
  gateway: RpcClient;
  /** Calls with another internal certificate: identity metadata must be ignored. */
  stranger: RpcClient;
  nc: NatsConnection;
  /** The service's own schema, to look at what it stored. */
  db: Kysely<DeliveryTables>;
}

/**
 * The delivery service on a ServiceTestBed of its own (sweeping expired rows every 100 ms, sampling
 * its gauges every SAMPLE_INTERVAL_MS) for the
 * calling suite: registers the suite's before() and after() hooks, and returns what they fill in.
 */
export function deliveryUnderTest(): DeliveryUnderTest {
  const delivery: Partial<DeliveryUnderTest> = {};
  // Hooks carry timeouts: a stuck dependency fails the run instead of hanging it.
  before(
    async () => {
      const bed = await ServiceTestBed.create({ service: 'delivery' });
      delivery.bed = bed; // at once: after() destroys the bed even when the service fails to start
      const cfg = envToConfig(readEnv(deliveryEnv, bed.env({ QPQ_GC_INTERVAL: '100ms' })));
      Object.assign(
        delivery,
        { cfg },
        await bed.startService(() => DeliveryService.create(cfg, { sampleIntervalMs: SAMPLE_INTERVAL_MS })),
      );
      delivery.db = await openDatabase<DeliveryTables>({ url: bed.databaseUrl, schema: 'delivery' });
    },
    { timeout: 120_000 },
  );
  after(
    async () => {
      await delivery.db?.destroy();
      await delivery.bed?.destroy(async () => {
        await delivery.service?.stop();
      });
    },
    { timeout: 60_000 },
  );
  // The tests run only after before() has filled in every field.
  return delivery as DeliveryUnderTest;
}

/** A client UUIDv7: 48-bit milliseconds, version 7, variant 10. */
export function uuidv7(): string {
  const b = randomBytes(16);
  b.writeUIntBE(Date.now(), 0, 6);
  b[6] = ((b[6] as number) & 0x0f) | 0x70;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The identity the gateway would vouch for: a fresh account and device. */
export function newDevice(username = 'alice'): Identity {
  return { accountId: randomUUID(), deviceId: randomUUID(), username };
}

export const bytes = (s: string) => new TextEncoder().encode(s);
export const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** Bytes equal by content (decoded protobuf bytes are Buffers, ours are Uint8Arrays). */
export function sameBytes(actual: Uint8Array | undefined, expected: Uint8Array, what = 'bytes'): void {
  assert.ok(actual && Buffer.compare(actual, expected) === 0, `${what} differ`);
}

/** The gRPC error a call was refused with; fails the test when the call succeeded. */
export async function rejection(promise: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await promise;
  } catch (err) {
    return err as { code: number; details: string };
  }
  assert.fail('the call succeeded but should have been refused');
}

/** The value of the series of `name` carrying `labels` (among others) on the service's /metrics, if any. */
export function metric(
  service: DeliveryService,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  return metricValue(service.httpAddress, name, labels);
}
