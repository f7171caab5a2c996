import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import type { DeliveryProof } from '@qpq/proto';
import { deliveryProofBytes, verifyDeliveryProof } from './delivery-proof.js';
import { CryptoUsageError } from './errors.js';

function serverKey(): { privateKey: KeyObject; publicKey: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return { privateKey, publicKey: new Uint8Array(raw) };
}

/** Signs the way the delivery service does, independently of verifyDeliveryProof. */
function issue(payload: Uint8Array, ids: string[], acceptedAtMs: bigint, key = serverKey()): DeliveryProof {
  const messageHash = new Uint8Array(createHash('sha256').update(payload).digest());
  const recipientDeviceIds = [...ids].sort();
  const signature = sign(null, deliveryProofBytes({ messageHash, recipientDeviceIds, acceptedAtMs }), key.privateKey);
  return { messageHash, recipientDeviceIds, acceptedAtMs, signature, serverPublicKey: key.publicKey };
}

describe('delivery proof', () => {
  const payload = new TextEncoder().encode('an envelope');
  const key = serverKey();
  const proof = issue(payload, ['dev-b', 'dev-a'], 1_700_000_000_123n, key);

  it('encodes the canonical bytes as specified', () => {
    const hash = new Uint8Array(32).fill(0xab);
    const bytes = deliveryProofBytes({ messageHash: hash, recipientDeviceIds: ['b', 'a'], acceptedAtMs: 258n });
    const expected = Buffer.concat([
      Buffer.from('qpq-delivery-proof-v1'),
      hash,
      Buffer.from([0, 0, 0, 2]),
      Buffer.from([0, 1]),
      Buffer.from('a'),
      Buffer.from([0, 1]),
      Buffer.from('b'),
      Buffer.from([0, 0, 0, 0, 0, 0, 1, 2]),
    ]);
    assert.deepEqual(Buffer.from(bytes), expected);
    // Recipient order does not matter; each field does.
    assert.deepEqual(
      bytes,
      deliveryProofBytes({ messageHash: hash, recipientDeviceIds: ['a', 'b'], acceptedAtMs: 258 }),
    );
  });

  it('verifies a genuine proof, with and without the expected server key', () => {
    assert.equal(verifyDeliveryProof(proof, payload, key.publicKey), true);
    assert.equal(verifyDeliveryProof(proof, payload), true);
    assert.equal(verifyDeliveryProof({ ...proof, recipientDeviceIds: ['dev-b', 'dev-a'] }, payload), true);
  });

  it('fails when any field, the payload or the server key is changed', () => {
    const flip = (b: Uint8Array, i = 0) => {
      const c = b.slice();
      c[i]! ^= 1;
      return c;
    };
    const other = serverKey();
    const tampered: [string, DeliveryProof, Uint8Array, Uint8Array?][] = [
      ['payload', proof, new TextEncoder().encode('an envelopE')],
      ['message hash', { ...proof, messageHash: flip(proof.messageHash) }, payload],
      ['recipient changed', { ...proof, recipientDeviceIds: ['dev-a', 'dev-c'] }, payload],
      ['recipient added', { ...proof, recipientDeviceIds: ['dev-a', 'dev-b', 'dev-c'] }, payload],
      ['recipient removed', { ...proof, recipientDeviceIds: ['dev-a'] }, payload],
      ['accepted at', { ...proof, acceptedAtMs: proof.acceptedAtMs + 1n }, payload],
      ['signature', { ...proof, signature: flip(proof.signature, 10) }, payload],
      ['signature truncated', { ...proof, signature: proof.signature.subarray(1) }, payload],
      ['server key swapped', { ...proof, serverPublicKey: other.publicKey }, payload],
      ['server key garbage', { ...proof, serverPublicKey: new Uint8Array(5) }, payload],
      ['unexpected server', proof, payload, other.publicKey],
      [
        're-signed by another server',
        issue(payload, ['dev-a', 'dev-b'], proof.acceptedAtMs, other),
        payload,
        key.publicKey,
      ],
      ['duplicate recipients', { ...proof, recipientDeviceIds: ['dev-a', 'dev-a', 'dev-b'] }, payload],
    ];
    for (const [what, p, body, expected] of tampered) {
      assert.equal(verifyDeliveryProof(p, body, expected), false, what);
    }
  });

  it('refuses fields it cannot encode', () => {
    const messageHash = new Uint8Array(32);
    assert.throws(
      () => deliveryProofBytes({ messageHash: new Uint8Array(31), recipientDeviceIds: [], acceptedAtMs: 0n }),
      CryptoUsageError,
    );
    assert.throws(
      () => deliveryProofBytes({ messageHash, recipientDeviceIds: ['x', 'x'], acceptedAtMs: 0n }),
      CryptoUsageError,
    );
    assert.throws(
      () => deliveryProofBytes({ messageHash, recipientDeviceIds: [], acceptedAtMs: 2n ** 63n }),
      CryptoUsageError,
    );
  });
});
