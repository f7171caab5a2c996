import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createCommit,
  createGroup as mlsCreateGroup,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  encodeMlsMessage,
  generateKeyPackage,
} from 'ts-mls';
import { decodeDeviceKeys, encodeDeviceKeys, generateDeviceKeys } from './device-keys.js';
import { cipherSuite } from './suite.js';
import { CryptoFormatError, CryptoUsageError, MessageRejectedError, NoMatchingKeyPackageError } from './errors.js';
import { addMembers } from './commits.js';
import {
  createGroup,
  encryptMessage,
  groupInfo,
  joinFromWelcome,
  processMessage,
  type GroupStateBytes,
} from './group.js';
import { deviceIdentity } from './identity.js';
import { generateKeyPackages, type KeyPackageBundle } from './key-packages.js';
import { anyKeyPackage, newDevice, twoMemberGroup } from './test-fixtures.js';

const te = new TextEncoder();
const td = new TextDecoder();

/**
 * A device's "disk": everything goes in and comes out as bytes, copied into Node Buffers (which may sit
 * at an offset inside a shared pool), the way the SDK reads them back from storage.
 */
class Disk {
  private readonly files = new Map<string, Buffer>();
  put(name: string, bytes: Uint8Array): void {
    this.files.set(name, Buffer.from(bytes));
  }
  get(name: string): Buffer {
    const bytes = this.files.get(name);
    if (bytes === undefined) throw new Error(`no ${name}`);
    return Buffer.from(bytes);
  }
  delete(name: string): void {
    this.files.delete(name);
  }
  has(name: string): boolean {
    return this.files.has(name);
  }
}

/** What travels between devices: a fresh copy of the bytes, nothing else. */
const wire = (bytes: Uint8Array): Buffer => Buffer.from(bytes);

describe('group', () => {
  it('alice and bob chat through bytes only, with every state persisted between steps', async () => {
    const aliceDisk = new Disk();
    const bobDisk = new Disk();
    const aliceId = deviceIdentity('alice@example.org', 'laptop');
    const bobId = deviceIdentity('bob@example.net', 'phone');

    aliceDisk.put('device.keys', encodeDeviceKeys(await generateDeviceKeys()));
    bobDisk.put('device.keys', encodeDeviceKeys(await generateDeviceKeys()));

    // Bob publishes KeyPackages; his device keeps the bundles, the server gets the public bytes.
    const bobBundles = await generateKeyPackages(decodeDeviceKeys(bobDisk.get('device.keys')), bobId, 3);
    for (const b of bobBundles) {
      bobDisk.put(`kp/${b.ref}.pub`, b.publicBytes);
      bobDisk.put(`kp/${b.ref}.priv`, b.privateBytes);
    }
    const serverKeyPackage = wire(bobBundles[1]!.publicBytes);

    // Alice creates the group and adds Bob from the KeyPackage bytes.
    const created = await createGroup(decodeDeviceKeys(aliceDisk.get('device.keys')), aliceId);
    aliceDisk.put('group', created.state);
    assert.equal(groupInfo(aliceDisk.get('group')).epoch, 0n);
    assert.deepEqual(groupInfo(aliceDisk.get('group')).members, [aliceId]);

    const added = await addMembers(aliceDisk.get('group'), [serverKeyPackage]);
    aliceDisk.put('group', added.state);

    // Bob joins from the Welcome bytes, finding his KeyPackage by ref on his disk.
    const findKeyPackage = (ref: string): KeyPackageBundle | undefined =>
      bobDisk.has(`kp/${ref}.priv`)
        ? { ref, publicBytes: bobDisk.get(`kp/${ref}.pub`), privateBytes: bobDisk.get(`kp/${ref}.priv`) }
        : undefined;
    const joined = await joinFromWelcome(wire(added.welcome), findKeyPackage);
    assert.equal(joined.usedRef, bobBundles[1]!.ref);
    assert.deepEqual(joined.groupId, created.groupId);
    bobDisk.put('group', joined.state);
    bobDisk.delete(`kp/${joined.usedRef}.priv`);

    const aliceView = groupInfo(aliceDisk.get('group'));
    const bobView = groupInfo(bobDisk.get('group'));
    assert.deepEqual(aliceView.members, [aliceId, bobId]);
    assert.deepEqual(bobView.members, [aliceId, bobId]);
    assert.equal(aliceView.ownIdentity, aliceId);
    assert.equal(bobView.ownIdentity, bobId);
    assert.equal(aliceView.epoch, 1n);
    assert.equal(bobView.epoch, 1n);
    assert.deepEqual(aliceView.groupId, created.groupId);
    assert.deepEqual(bobView.groupId, created.groupId);

    // Messages both ways, several in a row, each step reloading state from disk.
    const send = async (disk: Disk, text: string) => {
      const sent = await encryptMessage(disk.get('group'), te.encode(text));
      disk.put('group', sent.state);
      return wire(sent.message);
    };
    const receive = async (disk: Disk, message: Uint8Array) => {
      const got = await processMessage(disk.get('group'), message);
      disk.put('group', got.state);
      assert.equal(got.kind, 'application');
      return got.kind === 'application' ? { text: td.decode(got.plaintext), from: got.senderIdentity } : undefined;
    };
    assert.deepEqual(await receive(bobDisk, await send(aliceDisk, 'hello bob')), { text: 'hello bob', from: aliceId });
    assert.deepEqual(await receive(aliceDisk, await send(bobDisk, 'hi alice')), { text: 'hi alice', from: bobId });
    const m1 = await send(bobDisk, 'one');
    const m2 = await send(bobDisk, 'two');
    assert.deepEqual(await receive(aliceDisk, m1), { text: 'one', from: bobId });
    assert.deepEqual(await receive(aliceDisk, m2), { text: 'two', from: bobId });

    // The persisted states still describe the same group after all that.
    assert.deepEqual(groupInfo(aliceDisk.get('group')).members, [aliceId, bobId]);
    assert.equal(groupInfo(bobDisk.get('group')).epoch, 1n);
  });

  it('never changes the state bytes it is given, so a failed step can be retried from the old state', async () => {
    const { aliceState, bobState } = await twoMemberGroup();
    const aliceBefore = aliceState.slice();
    const bobBefore = bobState.slice();
    const sent = await encryptMessage(aliceState, te.encode('once'));
    const first = await processMessage(bobState, sent.message);
    assert.deepEqual(aliceState, aliceBefore);
    assert.deepEqual(bobState, bobBefore);
    // Bob "crashed" before saving: processing again from the old state gives the same message.
    const again = await processMessage(bobState, sent.message);
    assert.equal(first.kind, 'application');
    assert.equal(again.kind, 'application');
    if (first.kind === 'application' && again.kind === 'application')
      assert.deepEqual(again.plaintext, first.plaintext);
  });

  it('rejects a replayed message', async () => {
    const { aliceState, bobState } = await twoMemberGroup();
    const sent = await encryptMessage(aliceState, te.encode('only once'));
    const first = await processMessage(bobState, sent.message);
    await assert.rejects(processMessage(first.state, sent.message), MessageRejectedError);
  });

  it('rejects a tampered message and a message for another group', async () => {
    const { aliceState, bobState } = await twoMemberGroup();
    const sent = await encryptMessage(aliceState, te.encode('integrity'));
    const tampered = sent.message.slice();
    tampered[tampered.length - 5]! ^= 0x01;
    await assert.rejects(processMessage(bobState, tampered), MessageRejectedError);

    const other = await twoMemberGroup();
    const foreign = await encryptMessage(other.aliceState, te.encode('wrong group'));
    await assert.rejects(processMessage(bobState, foreign.message), MessageRejectedError);
  });

  it('applies a commit from another member and decrypts the new member in the next epoch', async () => {
    const { alice, bob, aliceState, bobState } = await twoMemberGroup();
    const carol = await newDevice('carol@example.com', 'c1');
    const added = await addMembers(aliceState, [anyKeyPackage(carol)]);
    const bobAfter = await processMessage(bobState, added.commit);
    assert.equal(bobAfter.kind, 'commit');
    assert.equal(bobAfter.kind === 'commit' ? bobAfter.epoch : undefined, 2n);
    const carolJoined = await joinFromWelcome(added.welcome, (ref) => carol.bundles.get(ref));

    const expected = [alice.identity, bob.identity, carol.identity];
    assert.deepEqual(groupInfo(bobAfter.state).members, expected);
    assert.deepEqual(groupInfo(carolJoined.state).members, expected);

    const fromCarol = await encryptMessage(carolJoined.state, te.encode('hi all'));
    for (const state of [added.state, bobAfter.state]) {
      const got = await processMessage(state, fromCarol.message);
      assert.equal(got.kind === 'application' ? got.senderIdentity : got.kind, carol.identity);
    }
  });

  it('throws NoMatchingKeyPackageError when the Welcome is for none of the held KeyPackages', async () => {
    const alice = await newDevice('alice@example.org', 'a1');
    const bob = await newDevice('bob@example.org', 'b1');
    const created = await createGroup(alice.keys, alice.identity);
    const added = await addMembers(created.state, [anyKeyPackage(bob)]);
    await assert.rejects(
      joinFromWelcome(added.welcome, () => undefined),
      NoMatchingKeyPackageError,
    );
  });

  it('refuses to add undecodable KeyPackages, members already present, or nobody', async () => {
    const { bob, aliceState } = await twoMemberGroup();
    await assert.rejects(addMembers(aliceState, [new Uint8Array([0, 1, 0, 5, 1, 2, 3])]), CryptoFormatError);
    const bobAgain = (await generateKeyPackages(bob.keys, bob.identity, 1))[0]!;
    await assert.rejects(addMembers(aliceState, [bobAgain.publicBytes]), CryptoUsageError);
    await assert.rejects(addMembers(aliceState, []), CryptoUsageError);
  });

  it('refuses to join a group whose members do not present device credentials', async () => {
    const bob = await newDevice('bob@example.org', 'b1');
    const cs = await cipherSuite();
    // A group made with ts-mls directly, by a member whose credential names no device.
    const mallory = await generateKeyPackage(
      { credentialType: 'basic', identity: te.encode('mallory') },
      defaultCapabilities(),
      defaultLifetime,
      [],
      cs,
    );
    const group = await mlsCreateGroup(te.encode('g'), mallory.publicPackage, mallory.privatePackage, [], cs);
    const kp = decodeMlsMessage(anyKeyPackage(bob), 0)![0];
    assert.equal(kp.wireformat, 'mls_key_package');
    if (kp.wireformat !== 'mls_key_package') return;
    const commit = await createCommit(
      { state: group, cipherSuite: cs },
      { extraProposals: [{ proposalType: 'add', add: { keyPackage: kp.keyPackage } }], ratchetTreeExtension: true },
    );
    const welcome = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: commit.welcome! });
    await assert.rejects(
      joinFromWelcome(welcome, (ref) => bob.bundles.get(ref)),
      MessageRejectedError,
    );
  });

  it('refuses corrupt state bytes and bad identities', async () => {
    const keys = await generateDeviceKeys();
    const { state } = await createGroup(keys, deviceIdentity('dana@example.org', 'd1'));
    assert.throws(() => groupInfo(state.subarray(0, state.length - 1)), CryptoFormatError);
    assert.throws(() => groupInfo(new Uint8Array([9, ...state.subarray(1)])), CryptoFormatError);
    await assert.rejects(encryptMessage(new Uint8Array(0) as GroupStateBytes, te.encode('x')), CryptoFormatError);
    await assert.rejects(createGroup(keys, 'dana@example.org'), CryptoUsageError);
  });
});
