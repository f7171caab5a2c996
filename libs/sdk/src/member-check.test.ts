import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  addMembers,
  createGroup,
  generateDeviceKeys,
  generateKeyPackages,
  groupMembers,
  inspectKeyPackage,
  joinFromWelcome,
  type DeviceKeys,
} from '@qpq/crypto';
import { dmWelcomeProblem, keyPackageProblem, type KnownAccount } from './member-check.js';

// Real MLS groups built with @qpq/crypto; the directory is what auth's ResolveUser would answer.

interface Device {
  address: string;
  deviceId: string;
  identity: string;
  keys: DeviceKeys;
}

async function device(address: string, deviceId: string): Promise<Device> {
  return { address, deviceId, identity: `${address}/${deviceId}`, keys: await generateDeviceKeys() };
}

function account(address: string, ...devices: Device[]): KnownAccount {
  return { address, devices: devices.map((d) => ({ deviceId: d.deviceId, identityKey: d.keys.signaturePublicKey })) };
}

/** `creator` makes a group under `name` (its own identity unless forged) and adds `joiner`, who joins. */
async function welcomeFrom(creator: Device, joiner: Device, name = creator.identity) {
  const [kp] = await generateKeyPackages(joiner.keys, joiner.identity, 1);
  const group = await createGroup(creator.keys, name, new Uint8Array(32));
  const added = await addMembers(group.state, [kp!.publicBytes]);
  const joined = await joinFromWelcome(added.welcome, (ref) => (ref === kp!.ref ? kp : undefined));
  return groupMembers(joined.state);
}

describe('dmWelcomeProblem', async () => {
  const alice = await device('alice@example.org', '11111111-1111-4111-8111-111111111111');
  const bob = await device('bob@example.org', '22222222-2222-4222-8222-222222222222');
  const mallory = await device('mallory@example.org', '33333333-3333-4333-8333-333333333333');
  const dir = {
    alice: account(alice.address, alice),
    bob: account(bob.address, bob),
    mallory: account(mallory.address, mallory),
  };

  it('accepts a group from its real sender whose members are who auth says', async () => {
    const members = await welcomeFrom(alice, bob);
    assert.equal(dmWelcomeProblem(members, alice.identity, dir.bob, dir.alice), undefined);
  });

  it('refuses a group whose creator named herself alice with her own device id (the forged Welcome)', async () => {
    const members = await welcomeFrom(mallory, bob, `${alice.address}/${mallory.deviceId}`);
    // The envelope says mallory sent it: she is not a member under her own name.
    assert.match(dmWelcomeProblem(members, mallory.identity, dir.bob, dir.mallory)!, /sender .* is not a member/);
    // Had the check looked only for the sender's device id under any name, the account check still refuses.
    assert.match(
      dmWelcomeProblem(members, `${alice.address}/${mallory.deviceId}`, dir.bob, dir.mallory)!,
      /belongs to neither bob@example.org nor mallory@example.org/,
    );
  });

  it("refuses a member named as alice's real device but signing with another key", async () => {
    const members = await welcomeFrom(mallory, bob, alice.identity);
    assert.match(
      dmWelcomeProblem(members, alice.identity, dir.bob, dir.alice)!,
      /alice@example.org\/.* signs with another key than that device's identity key/,
    );
  });

  it('refuses a member that is not an active device of the account', async () => {
    const members = await welcomeFrom(alice, bob);
    const noDevices = { address: alice.address, devices: [] };
    assert.match(
      dmWelcomeProblem(members, alice.identity, dir.bob, noDevices)!,
      /is not a device of alice@example.org/,
    );
  });
});

describe('keyPackageProblem', async () => {
  const bob = await device('bob@example.org', '22222222-2222-4222-8222-222222222222');
  const mallory = await device('mallory@example.org', '33333333-3333-4333-8333-333333333333');
  const bobs = account(bob.address, bob);
  const inspect = async (d: Device, identity = d.identity) =>
    inspectKeyPackage((await generateKeyPackages(d.keys, identity, 1))[0]!.publicBytes);

  it("accepts bob's own KeyPackage for his device", async () => {
    assert.equal(keyPackageProblem(await inspect(bob), bob.deviceId, bobs), undefined);
  });

  it('refuses a KeyPackage that names another device or account than it was given for', async () => {
    assert.match(keyPackageProblem(await inspect(mallory), bob.deviceId, bobs)!, /names mallory@example.org/);
  });

  it("refuses a KeyPackage under bob's name signed by another key", async () => {
    assert.match(
      keyPackageProblem(await inspect(mallory, bob.identity), bob.deviceId, bobs)!,
      /signs with another key/,
    );
  });
});
