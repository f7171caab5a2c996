// Raw-key Ed25519 over node:crypto (OpenSSL): MLS and the delivery proofs both use raw 32-byte keys,
// while node:crypto and WebCrypto speak PKCS#8 / SPKI. These helpers convert at the edge.
import { createPrivateKey, createPublicKey, verify, type KeyObject } from 'node:crypto';

// DER prefixes of an Ed25519 key wrapped as PKCS#8 (RFC 8410) and as SubjectPublicKeyInfo.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export const ED25519_KEY_LENGTH = 32;
export const ED25519_SIGNATURE_LENGTH = 64;

/** The raw 32-byte seed inside a PKCS#8 Ed25519 key, or the key itself when it already is raw. */
export function rawEd25519PrivateKey(key: Uint8Array): Uint8Array | undefined {
  if (key.length === ED25519_KEY_LENGTH) return new Uint8Array(key);
  if (key.length === PKCS8_PREFIX.length + ED25519_KEY_LENGTH && PKCS8_PREFIX.equals(key.subarray(0, 16))) {
    return new Uint8Array(key.subarray(PKCS8_PREFIX.length));
  }
  return undefined;
}

function privateKeyObject(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The raw public key belonging to a raw 32-byte private key (seed). */
export function ed25519PublicKey(seed: Uint8Array): Uint8Array {
  const spki = createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(SPKI_PREFIX.length));
}

/** Verifies an Ed25519 signature with a raw public key; malformed keys or signatures verify false. */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== ED25519_KEY_LENGTH || signature.length !== ED25519_SIGNATURE_LENGTH) return false;
  try {
    const key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    return verify(null, message, key, signature);
  } catch {
    return false; // e.g. a public key that is not a curve point
  }
}
