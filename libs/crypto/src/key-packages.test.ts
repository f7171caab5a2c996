import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  defaultCapabilities,
  defaultLifetime,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type CiphersuiteImpl,
} from 'ts-mls';
import { decodeDeviceKeys, encodeDeviceKeys, generateDeviceKeys } from './device-keys.js';
import { CryptoFormatError, CryptoUsageError } from './errors.js';
import { deviceIdentity } from './identity.js';
import { decodePrivateKeyPackage, generateKeyPackages, inspectKeyPackage } from './key-packages.js';
import { CIPHERSUITE_NAME, cipherSuite } from './suite.js';

const te = new TextEncoder();

async function foreignKeyPackage(cs: CiphersuiteImpl, identity: string): Promise<Uint8Array> {
  const { publicPackage } = await generateKeyPackage(
    { credentialType: 'basic', identity: te.encode(identity) },
    defaultCapabilities(),
    defaultLifetime,
    [],
    cs,
  );
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: publicPackage });
}

describe('key packages', () => {
  it('generates KeyPackages signed by the device key that the server-side inspection accepts', async () => {
    const keys = decodeDeviceKeys(encodeDeviceKeys(await generateDeviceKeys()));
    const identity = deviceIdentity('alice@example.org', 'a1');
    const bundles = await generateKeyPackages(keys, identity, 3);
    assert.equal(bundles.length, 3);
    assert.equal(new Set(bundles.map((b) => b.ref)).size, 3);
    for (const bundle of bundles) {
      const seen = await inspectKeyPackage(bundle.publicBytes);
      assert.equal(seen.cipherSuite, CIPHERSUITE_NAME);
      assert.equal(seen.identity, identity);
      assert.deepEqual(seen.signaturePublicKey, keys.signaturePublicKey);
      assert.equal(seen.ref, bundle.ref);
      assert.match(bundle.ref, /^[0-9a-f]{128}$/); // SHA-512 KeyPackageRef
      const priv = decodePrivateKeyPackage(bundle.privateBytes);
      assert.deepEqual(priv.signaturePrivateKey, keys.signaturePrivateKey);
    }
  });

  it('rejects a KeyPackage of another ciphersuite', async () => {
    const other = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'));
    const bytes = await foreignKeyPackage(other, 'mallory@example.org/m1');
    await assert.rejects(inspectKeyPackage(bytes), (err: Error) => {
      assert.ok(err instanceof CryptoFormatError);
      assert.match(err.message, /MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519/);
      return true;
    });
  });

  it('rejects a credential that names no device', async () => {
    const bytes = await foreignKeyPackage(await cipherSuite(), 'alice');
    await assert.rejects(inspectKeyPackage(bytes), CryptoFormatError);
  });

  it('rejects undecodable bytes, trailing bytes, other wire formats and a bad signature', async () => {
    const [bundle] = await generateKeyPackages(await generateDeviceKeys(), deviceIdentity('bob@example.org', 'b1'), 1);
    const good = bundle!.publicBytes;
    await assert.rejects(inspectKeyPackage(new Uint8Array(0)), CryptoFormatError);
    await assert.rejects(inspectKeyPackage(good.subarray(0, good.length - 1)), CryptoFormatError);
    await assert.rejects(inspectKeyPackage(new Uint8Array([...good, 0])), CryptoFormatError);
    const badSignature = good.slice();
    badSignature[badSignature.length - 1]! ^= 0x80;
    await assert.rejects(inspectKeyPackage(badSignature), (err: Error) => {
      assert.ok(err instanceof CryptoFormatError);
      assert.match(err.message, /signature/);
      return true;
    });
    const otherWireFormat = good.slice();
    otherWireFormat[3] = 2; // private message
    await assert.rejects(inspectKeyPackage(otherWireFormat), CryptoFormatError);
  });

  it('refuses a bad count or identity', async () => {
    const keys = await generateDeviceKeys();
    const identity = deviceIdentity('bob@example.org', 'b1');
    await assert.rejects(generateKeyPackages(keys, identity, 0), CryptoUsageError);
    await assert.rejects(generateKeyPackages(keys, identity, 1.5), CryptoUsageError);
    await assert.rejects(generateKeyPackages(keys, 'bob@example.org', 1), CryptoUsageError);
  });
});
