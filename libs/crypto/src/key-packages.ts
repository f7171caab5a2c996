// MLS KeyPackages: what a device publishes so others can add it to groups, and the server-side check
// of what is uploaded.
import {
  type CiphersuiteImpl,
  defaultCapabilities,
  defaultLifetime,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  type KeyPackage,
  type PrivateKeyPackage,
} from 'ts-mls';
import { bytesEqual, copyBytes, encodeUtf8, toHex } from './bytes.js';
import { credentialIdentity } from './client-config.js';
import type { DeviceKeys } from './device-keys.js';
import { CryptoFormatError, CryptoUsageError } from './errors.js';
import { parseDeviceIdentity } from './identity.js';
import { decodeMlsMessageExact } from './mls-message.js';
import { CIPHERSUITE_NAME, cipherSuite } from './suite.js';
import { makeKeyPackageRef, verifyKeyPackage, verifyLeafNodeSignatureKeyPackage } from './ts-mls-internals.js';

export interface KeyPackageBundle {
  /** Hex KeyPackageRef: how a Welcome names the KeyPackage it was made for. */
  ref: string;
  /** MLSMessage(mls_key_package): what is uploaded to the server. */
  publicBytes: Uint8Array;
  /** The package's private keys (init, leaf HPKE, device signature key); never leaves the device. */
  privateBytes: Uint8Array;
}

/** A bound on one call, so a bad argument cannot spin for minutes. */
const MAX_KEY_PACKAGES_PER_CALL = 1000;

/**
 * Fresh KeyPackages for this device, all signed with the device's signature key so that every one of
 * them is tied to the identity key registered with the server.
 * @example const bundles = await generateKeyPackages(keys, deviceIdentity('alice@example.org', 'd1'), 10)
 */
export async function generateKeyPackages(
  keys: DeviceKeys,
  identity: string,
  count: number,
): Promise<KeyPackageBundle[]> {
  if (!Number.isInteger(count) || count < 1 || count > MAX_KEY_PACKAGES_PER_CALL) {
    throw new CryptoUsageError(`count must be an integer from 1 to ${MAX_KEY_PACKAGES_PER_CALL}`);
  }
  try {
    parseDeviceIdentity(identity);
  } catch (err) {
    throw new CryptoUsageError(`not a device identity: ${JSON.stringify(identity)}`, { cause: err });
  }
  const cs = await cipherSuite();
  const credential = { credentialType: 'basic' as const, identity: encodeUtf8(identity) };
  const signatureKeyPair = { signKey: keys.signaturePrivateKey, publicKey: keys.signaturePublicKey };
  const bundles: KeyPackageBundle[] = [];
  for (let i = 0; i < count; i++) {
    const { publicPackage, privatePackage } = await generateKeyPackageWithKey(
      credential,
      defaultCapabilities(),
      defaultLifetime,
      [],
      signatureKeyPair,
      cs,
    );
    bundles.push({
      ref: toHex(await makeKeyPackageRef(publicPackage, cs.hash)),
      publicBytes: encodeKeyPackageMessage(publicPackage),
      privateBytes: encodePrivateKeyPackage(privatePackage),
    });
  }
  return bundles;
}

/**
 * Decodes an uploaded KeyPackage and checks everything that can be checked without a group: exact
 * encoding, the qpq ciphersuite, a basic credential naming a device, both self-signatures, and
 * distinct init and leaf keys. Throws CryptoFormatError otherwise.
 */
export async function inspectKeyPackage(
  bytes: Uint8Array,
): Promise<{ cipherSuite: string; identity: string; signaturePublicKey: Uint8Array; ref: string }> {
  const { keyPackage, identity, ref } = await readKeyPackage(bytes, await cipherSuite());
  return {
    cipherSuite: keyPackage.cipherSuite,
    identity,
    signaturePublicKey: copyBytes(keyPackage.leafNode.signaturePublicKey),
    ref,
  };
}

/** The checks of inspectKeyPackage, returning the decoded package for callers inside this package. */
export async function readKeyPackage(
  bytes: Uint8Array,
  cs: CiphersuiteImpl,
): Promise<{ keyPackage: KeyPackage; identity: string; ref: string }> {
  const message = decodeMlsMessageExact(bytes);
  if (message.wireformat !== 'mls_key_package') {
    throw new CryptoFormatError(`expected a KeyPackage, got ${message.wireformat}`);
  }
  const keyPackage = message.keyPackage;
  // Unknown suite ids decode to their number as a string, so only an exact name match is safe.
  if (keyPackage.cipherSuite !== CIPHERSUITE_NAME) {
    throw new CryptoFormatError(`KeyPackage uses ciphersuite ${keyPackage.cipherSuite}, expected ${CIPHERSUITE_NAME}`);
  }
  const identity = credentialIdentity(keyPackage.leafNode.credential);
  if (identity === undefined) throw new CryptoFormatError('KeyPackage credential does not name a device');
  const signed =
    (await verifyKeyPackage(keyPackage, cs.signature)) &&
    (await verifyLeafNodeSignatureKeyPackage(keyPackage.leafNode, cs.signature));
  if (!signed) throw new CryptoFormatError('KeyPackage signature does not verify');
  if (bytesEqual(keyPackage.initKey, keyPackage.leafNode.hpkePublicKey)) {
    throw new CryptoFormatError('KeyPackage reuses its leaf key as init key');
  }
  return { keyPackage, identity, ref: toHex(await makeKeyPackageRef(keyPackage, cs.hash)) };
}

export function encodeKeyPackageMessage(keyPackage: KeyPackage): Uint8Array {
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage });
}

// ts-mls has no codec for PrivateKeyPackage: version (1) || 3 x (u16 BE length || bytes).
const PRIVATE_FORMAT_VERSION = 1;

export function encodePrivateKeyPackage(p: PrivateKeyPackage): Uint8Array {
  const fields = [p.initPrivateKey, p.hpkePrivateKey, p.signaturePrivateKey];
  const out = new Uint8Array(1 + fields.reduce((n, f) => n + 2 + f.length, 0));
  const view = new DataView(out.buffer);
  out[0] = PRIVATE_FORMAT_VERSION;
  let offset = 1;
  for (const field of fields) {
    view.setUint16(offset, field.length);
    out.set(field, offset + 2);
    offset += 2 + field.length;
  }
  return out;
}

export function decodePrivateKeyPackage(bytes: Uint8Array): PrivateKeyPackage {
  if (bytes[0] !== PRIVATE_FORMAT_VERSION) throw new CryptoFormatError('not an encoded private KeyPackage');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fields: Uint8Array[] = [];
  let offset = 1;
  for (let i = 0; i < 3; i++) {
    if (offset + 2 > bytes.length) throw new CryptoFormatError('truncated private KeyPackage');
    const length = view.getUint16(offset);
    if (length === 0 || offset + 2 + length > bytes.length) throw new CryptoFormatError('truncated private KeyPackage');
    fields.push(copyBytes(bytes.subarray(offset + 2, offset + 2 + length)));
    offset += 2 + length;
  }
  if (offset !== bytes.length) throw new CryptoFormatError('trailing bytes after private KeyPackage');
  const [initPrivateKey, hpkePrivateKey, signaturePrivateKey] = fields as [Uint8Array, Uint8Array, Uint8Array];
  return { initPrivateKey, hpkePrivateKey, signaturePrivateKey };
}
