// Shared by this service's tests (not exported from the package).
import type { Identity } from '@qpq/runtime';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';

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

/** Polls `get` every 50 ms until it returns something, failing the test after `timeoutMs`. */
export async function waitFor<T>(what: string, get: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
