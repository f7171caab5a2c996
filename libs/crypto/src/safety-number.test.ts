import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateDeviceKeys } from './device-keys.js';
import { CryptoUsageError } from './errors.js';
import { safetyNumber } from './safety-number.js';

const key = (byte: number): Uint8Array => new Uint8Array(32).fill(byte);
const FORMAT = /^\d{5}( \d{5}){11}$/;

describe('safetyNumber', () => {
  it('matches the pinned vector for fixed keys (the format is a contract between clients)', () => {
    // Also reproduced by an independent Python implementation of the format in safety-number.ts.
    const alice = { address: 'alice@example.org', identityKeys: [key(1), key(2)] };
    const bob = { address: 'bob@example.net', identityKeys: [key(3)] };
    assert.equal(safetyNumber(alice, bob), '54904 12537 48572 70955 95602 13270 90548 17412 05297 88214 16939 02542');
  });

  it('is 60 digits in 12 groups of 5, the same on both sides and whatever the key order', async () => {
    const alice = {
      address: 'alice@example.org',
      identityKeys: [(await generateDeviceKeys()).signaturePublicKey, (await generateDeviceKeys()).signaturePublicKey],
    };
    const bob = { address: 'bob@example.net', identityKeys: [(await generateDeviceKeys()).signaturePublicKey] };
    const number = safetyNumber(alice, bob);
    assert.match(number, FORMAT);
    assert.equal(safetyNumber(bob, alice), number);
    const reordered = { ...alice, identityKeys: [...alice.identityKeys].reverse() };
    assert.equal(safetyNumber(reordered, bob), number);
    // The half of the account whose address sorts first comes first: Alice's half stays put.
    const carol = { address: 'carol@example.com', identityKeys: [key(9)] };
    assert.equal(safetyNumber(alice, carol).slice(0, 35), number.slice(0, 35));
  });

  it('changes when any identity key of either side changes, or a device is added', () => {
    const alice = { address: 'alice@example.org', identityKeys: [key(1), key(2)] };
    const bob = { address: 'bob@example.net', identityKeys: [key(3)] };
    const number = safetyNumber(alice, bob);
    const variants = [
      safetyNumber({ ...alice, identityKeys: [key(1), key(4)] }, bob),
      safetyNumber(alice, { ...bob, identityKeys: [key(5)] }),
      safetyNumber(alice, { ...bob, identityKeys: [key(3), key(6)] }),
      safetyNumber({ ...alice, identityKeys: [key(1)] }, bob),
      // Same keys, another account name: the address is bound in too.
      safetyNumber(alice, { ...bob, address: 'bob@example.org' }),
    ];
    for (const variant of variants) {
      assert.match(variant, FORMAT);
      assert.notEqual(variant, number);
    }
    // A duplicate key is the same set of devices.
    assert.equal(safetyNumber({ ...alice, identityKeys: [key(1), key(2), key(1)] }, bob), number);
  });

  it('refuses accounts without keys, keys that are not 32 bytes, and bad addresses', () => {
    const bob = { address: 'bob@example.net', identityKeys: [key(3)] };
    const bad = [
      { address: 'alice@example.org', identityKeys: [] },
      { address: 'alice@example.org', identityKeys: [new Uint8Array(33)] },
      { address: 'alice', identityKeys: [key(1)] },
      { address: 'alice@example.org/d1', identityKeys: [key(1)] },
    ];
    for (const account of bad) assert.throws(() => safetyNumber(account, bob), CryptoUsageError);
  });
});
