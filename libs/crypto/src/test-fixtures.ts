// Shared set-up for this package's tests (not exported from the package).
import { type DeviceKeys, generateDeviceKeys } from './device-keys.js';
import { addMembers } from './commits.js';
import { createGroup, type GroupStateBytes, joinFromWelcome } from './group.js';
import { deviceIdentity } from './identity.js';
import { generateKeyPackages, type KeyPackageBundle } from './key-packages.js';

export interface TestDevice {
  identity: string;
  keys: DeviceKeys;
  /** KeyPackages this device still holds, by ref, as the SDK would keep them. */
  bundles: Map<string, KeyPackageBundle>;
}

export async function newDevice(address: string, deviceId: string, keyPackages = 1): Promise<TestDevice> {
  const identity = deviceIdentity(address, deviceId);
  const keys = await generateDeviceKeys();
  const bundles = new Map((await generateKeyPackages(keys, identity, keyPackages)).map((b) => [b.ref, b]));
  return { identity, keys, bundles };
}

export function anyKeyPackage(device: TestDevice): Uint8Array {
  const first = device.bundles.values().next();
  if (first.done) throw new Error(`${device.identity} has no KeyPackage left`);
  return first.value.publicBytes;
}

/** Alice creates a group and adds Bob, who joins; both states at epoch 1. */
export async function twoMemberGroup(): Promise<{
  alice: TestDevice;
  bob: TestDevice;
  aliceState: GroupStateBytes;
  bobState: GroupStateBytes;
  groupId: Uint8Array;
  addCommit: Uint8Array;
}> {
  const alice = await newDevice('alice@example.org', 'a1');
  const bob = await newDevice('bob@example.org', 'b1');
  const created = await createGroup(alice.keys, alice.identity);
  const added = await addMembers(created.state, [anyKeyPackage(bob)]);
  const joined = await joinFromWelcome(added.welcome, (ref) => bob.bundles.get(ref));
  bob.bundles.delete(joined.usedRef);
  return {
    alice,
    bob,
    aliceState: added.state,
    bobState: joined.state,
    groupId: created.groupId,
    addCommit: added.commit,
  };
}
