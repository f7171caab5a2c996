import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeDeviceKeys, encodeDeviceKeys, generateDeviceKeys } from './device-keys.js';
import { CryptoFormatError } from './errors.js';

describe('device keys', () => {
  it('are raw 32-byte Ed25519 keys that round-trip through bytes', async () => {
    const keys = await generateDeviceKeys();
    assert.equal(keys.signaturePublicKey.length, 32);
    assert.equal(keys.signaturePrivateKey.length, 32);
    assert.deepEqual(decodeDeviceKeys(encodeDeviceKeys(keys)), keys);
    assert.notDeepEqual((await generateDeviceKeys()).signaturePublicKey, keys.signaturePublicKey);
  });

  it('refuses bytes whose public key does not belong to the private key, or of the wrong size', async () => {
    const a = await generateDeviceKeys();
    const b = await generateDeviceKeys();
    const mixed = encodeDeviceKeys({
      signaturePublicKey: a.signaturePublicKey,
      signaturePrivateKey: b.signaturePrivateKey,
    });
    assert.throws(() => decodeDeviceKeys(mixed), CryptoFormatError);
    assert.throws(() => decodeDeviceKeys(encodeDeviceKeys(a).subarray(1)), CryptoFormatError);
  });
});
