// The long-lived MLS signature key pair of one device. Its public half is the device's identity key:
// registered with the server, logged in key transparency, and the signature key of every KeyPackage
// and leaf this device creates.
import { bytesEqual, copyBytes } from './bytes.js';
import { ED25519_KEY_LENGTH, ed25519PublicKey, rawEd25519PrivateKey } from './ed25519.js';
import { CryptoError, CryptoFormatError, CryptoUsageError } from './errors.js';
import { cipherSuite } from './suite.js';

export interface DeviceKeys {
  /** Raw Ed25519 public key, 32 bytes. */
  signaturePublicKey: Uint8Array;
  /** Raw Ed25519 private key (seed), 32 bytes. */
  signaturePrivateKey: Uint8Array;
}

const FORMAT_VERSION = 1;
const ENCODED_LENGTH = 1 + 2 * ED25519_KEY_LENGTH;

/** A fresh device signature key pair. */
export async function generateDeviceKeys(): Promise<DeviceKeys> {
  const { signKey, publicKey } = await (await cipherSuite()).signature.keygen();
  // WebCrypto hands out PKCS#8; store the raw seed so the encoding is fixed-size and provider-neutral
  // (ts-mls signs with either form).
  const seed = rawEd25519PrivateKey(signKey);
  if (seed === undefined || publicKey.length !== ED25519_KEY_LENGTH) {
    throw new CryptoError(`unexpected Ed25519 key sizes from the provider (${signKey.length}, ${publicKey.length})`);
  }
  return { signaturePublicKey: copyBytes(publicKey), signaturePrivateKey: seed };
}

/** version (1) || public key (32) || private key (32). */
export function encodeDeviceKeys(keys: DeviceKeys): Uint8Array {
  if (keys.signaturePublicKey.length !== ED25519_KEY_LENGTH || keys.signaturePrivateKey.length !== ED25519_KEY_LENGTH) {
    throw new CryptoUsageError('device keys must be raw 32-byte Ed25519 keys');
  }
  const out = new Uint8Array(ENCODED_LENGTH);
  out[0] = FORMAT_VERSION;
  out.set(keys.signaturePublicKey, 1);
  out.set(keys.signaturePrivateKey, 1 + ED25519_KEY_LENGTH);
  return out;
}

/** Decodes and checks that the public key belongs to the private key (a mismatch would sign unverifiable packages). */
export function decodeDeviceKeys(bytes: Uint8Array): DeviceKeys {
  if (bytes.length !== ENCODED_LENGTH || bytes[0] !== FORMAT_VERSION) {
    throw new CryptoFormatError('not an encoded device key pair');
  }
  const signaturePublicKey = copyBytes(bytes.subarray(1, 1 + ED25519_KEY_LENGTH));
  const signaturePrivateKey = copyBytes(bytes.subarray(1 + ED25519_KEY_LENGTH));
  if (!bytesEqual(ed25519PublicKey(signaturePrivateKey), signaturePublicKey)) {
    throw new CryptoFormatError('device public key does not match its private key');
  }
  return { signaturePublicKey, signaturePrivateKey };
}
