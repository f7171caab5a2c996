// The delivery service's signed receipt (qpq.v1.DeliveryProof): it accepted this payload, for these
// devices, at this time. A sender keeps it to show the server took responsibility for delivery.
import { createHash, createPublicKey, sign, type KeyObject } from 'node:crypto';
import type { DeliveryProof } from '@qpq/proto';
import { bytesEqual, encodeUtf8 } from './bytes.js';
import { ed25519Verify } from './ed25519.js';
import { CryptoUsageError } from './errors.js';

const DOMAIN_SEPARATOR = encodeUtf8('qpq-delivery-proof-v1');
const SHA256_LENGTH = 32;
const MAX_ID_BYTES = 0xffff;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

export interface DeliveryProofFields {
  /** SHA-256 of the payload as stored. */
  messageHash: Uint8Array;
  /** In any order: the encoding sorts them. */
  recipientDeviceIds: readonly string[];
  acceptedAtMs: bigint | number;
}

/**
 * The bytes the delivery service signs: utf8 "qpq-delivery-proof-v1" || message hash (32) ||
 * u32 BE count || per recipient id, sorted by UTF-8 bytes: u16 BE length || utf8 || i64 BE accepted_at_ms.
 * Throws CryptoUsageError for a hash that is not 32 bytes, duplicate or oversized ids, or a time out of range.
 */
export function deliveryProofBytes({ messageHash, recipientDeviceIds, acceptedAtMs }: DeliveryProofFields): Uint8Array {
  if (messageHash.length !== SHA256_LENGTH) throw new CryptoUsageError('message hash must be 32 bytes');
  const acceptedAt = BigInt(acceptedAtMs);
  if (acceptedAt < I64_MIN || acceptedAt > I64_MAX) throw new CryptoUsageError('accepted_at_ms out of range');
  // Sort by bytes, not UTF-16 code units, so a signer in any language produces the same order.
  const ids = recipientDeviceIds.map((id) => Buffer.from(encodeUtf8(id))).sort(Buffer.compare);
  for (const [i, id] of ids.entries()) {
    if (id.length > MAX_ID_BYTES) throw new CryptoUsageError('recipient device id too long');
    if (i > 0 && id.equals(ids[i - 1]!)) throw new CryptoUsageError('duplicate recipient device id');
  }
  const size = DOMAIN_SEPARATOR.length + SHA256_LENGTH + 4 + ids.reduce((n, id) => n + 2 + id.length, 0) + 8;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let offset = 0;
  out.set(DOMAIN_SEPARATOR, offset);
  offset += DOMAIN_SEPARATOR.length;
  out.set(messageHash, offset);
  offset += SHA256_LENGTH;
  view.setUint32(offset, ids.length);
  offset += 4;
  for (const id of ids) {
    view.setUint16(offset, id.length);
    out.set(id, offset + 2);
    offset += 2 + id.length;
  }
  view.setBigInt64(offset, acceptedAt);
  return out;
}

/**
 * True when the proof is for exactly this payload and its signature verifies under the proof's server
 * key, which must equal expectedServerKey when given (pass it: otherwise anyone can sign a proof).
 * Never throws: a malformed proof is simply false.
 */
export function verifyDeliveryProof(
  proof: DeliveryProof,
  payload: Uint8Array,
  expectedServerKey?: Uint8Array,
): boolean {
  try {
    if (expectedServerKey !== undefined && !bytesEqual(proof.serverPublicKey, expectedServerKey)) return false;
    const payloadHash = createHash('sha256').update(payload).digest();
    if (!bytesEqual(proof.messageHash, payloadHash)) return false;
    return ed25519Verify(proof.serverPublicKey, deliveryProofBytes(proof), proof.signature);
  } catch {
    return false;
  }
}

/** Raw public keys already derived, per key object: a proof carries it, and deriving it costs more than signing. */
const rawPublicKeys = new WeakMap<KeyObject, Uint8Array>();

/** The raw 32-byte public key of an Ed25519 key object (private or public). */
export function ed25519RawPublicKey(key: KeyObject): Uint8Array {
  let raw = rawPublicKeys.get(key);
  if (raw === undefined) {
    raw = deriveRawPublicKey(key);
    rawPublicKeys.set(key, raw);
  }
  return new Uint8Array(raw);
}

function deriveRawPublicKey(key: KeyObject): Uint8Array {
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || !jwk.x) throw new CryptoUsageError('not an Ed25519 key');
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'));
}

/** SHA-256 of a payload, as a proof's message hash. */
export function payloadHash(payload: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(payload).digest());
}

/**
 * Signs a delivery proof with the delivery service's Ed25519 key. The proof lists the recipients in
 * their canonical (signed) order.
 */
export function signDeliveryProof(privateKey: KeyObject, fields: DeliveryProofFields): DeliveryProof {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new CryptoUsageError('delivery proofs are signed with Ed25519');
  const recipientDeviceIds = [...fields.recipientDeviceIds].sort((a, b) =>
    Buffer.compare(encodeUtf8(a), encodeUtf8(b)),
  );
  const acceptedAtMs = BigInt(fields.acceptedAtMs);
  const bytes = deliveryProofBytes({ messageHash: fields.messageHash, recipientDeviceIds, acceptedAtMs });
  return {
    messageHash: new Uint8Array(fields.messageHash),
    recipientDeviceIds,
    acceptedAtMs,
    signature: new Uint8Array(sign(null, bytes, privateKey)),
    serverPublicKey: ed25519RawPublicKey(privateKey),
  };
}
