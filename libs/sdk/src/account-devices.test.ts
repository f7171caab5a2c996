import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commitChanges, createGroup, deviceIdentity, generateDeviceKeys, generateKeyPackages } from '@qpq/crypto';
import { workFor } from './account-devices.js';

const A = 'alice@example.org';
const B = 'bob@example.org';
const ids = {
  a1: '00000000-0000-7000-8000-00000000000a',
  a2: '00000000-0000-7000-8000-00000000000b',
  a3: '00000000-0000-7000-8000-00000000000c',
  b1: '00000000-0000-7000-8000-0000000000b1',
};

async function keyPackage(address: string, deviceId: string): Promise<Uint8Array> {
  const [bundle] = await generateKeyPackages(await generateDeviceKeys(), deviceIdentity(address, deviceId), 1);
  return bundle!.publicBytes;
}

/** A group made by a1 holding a1, a2 and b1; returns a1's state (and a2's id in the tree). */
async function group(creator = ids.a1): Promise<Uint8Array> {
  const created = await createGroup(await generateDeviceKeys(), deviceIdentity(A, creator));
  const others = [ids.a1, ids.a2].filter((d) => d !== creator);
  const added = await commitChanges(created.state, {
    add: [...(await Promise.all(others.map((d) => keyPackage(A, d)))), await keyPackage(B, ids.b1)],
  });
  return added.state;
}

describe('workFor: what a device does to keep a group in step with its account', () => {
  it('nothing when every active device is in and nobody is leaving', async () => {
    assert.equal(workFor(await group(), A, new Set([ids.a1, ids.a2]), []), undefined);
  });

  it('adds a new device of this account; the lowest device id acts first', async () => {
    const work = workFor(await group(), A, new Set([ids.a1, ids.a2, ids.a3]), []);
    assert.deepEqual(work, { missing: [ids.a3], remove: [], rank: 0 });
    const seenByA2 = workFor(await group(ids.a2), A, new Set([ids.a1, ids.a2, ids.a3]), []);
    assert.equal(seenByA2?.rank, 1, 'a2 waits for a1');
  });

  it('removes a revoked device of this account, and every device of an account that left', async () => {
    const revoked = workFor(await group(), A, new Set([ids.a1]), []);
    assert.deepEqual(revoked?.remove, [deviceIdentity(A, ids.a2)]);
    assert.equal(revoked?.rank, 0, 'the revoked device is not a candidate');
    const left = workFor(await group(), A, new Set([ids.a1, ids.a2]), [B]);
    assert.deepEqual(left?.remove, [deviceIdentity(B, ids.b1)]);
  });
});
