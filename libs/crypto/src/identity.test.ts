import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CryptoFormatError, CryptoUsageError } from './errors.js';
import { deviceIdentity, parseDeviceIdentity } from './identity.js';

describe('device identity', () => {
  it('joins and splits address and device id', () => {
    const identity = deviceIdentity('alice@example.org', '3f2a-9c');
    assert.equal(identity, 'alice@example.org/3f2a-9c');
    assert.deepEqual(parseDeviceIdentity(identity), { address: 'alice@example.org', deviceId: '3f2a-9c' });
  });

  it('refuses malformed identities', () => {
    for (const bad of [
      'alice@example.org',
      'alice/d1',
      '@example.org/d1',
      'alice@/d1',
      'alice@example.org/',
      'a@b@c/d',
      'a@b/c/d',
      'a b@c/d',
      'a@b/d\n',
    ]) {
      assert.throws(() => parseDeviceIdentity(bad), CryptoFormatError, bad);
    }
    assert.throws(() => deviceIdentity('alice', 'd1'), CryptoUsageError);
    assert.throws(() => deviceIdentity('alice@example.org', 'd/1'), CryptoUsageError);
    assert.throws(() => deviceIdentity('alice@example.org', ''), CryptoUsageError);
  });
});
