import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCommit, encodeMlsMessage } from 'ts-mls';
import { encodeUtf8 } from './bytes.js';
import { addMembers, commitChanges, updateKeys } from './commits.js';
import { CryptoFormatError, CryptoUsageError, MessageRejectedError } from './errors.js';
import {
  createGroup,
  encryptMessage,
  groupEpoch,
  groupInfo,
  type GroupStateBytes,
  joinFromWelcome,
  processMessage,
} from './group.js';
import { decodeState } from './group-state.js';
import { generateKeyPackages } from './key-packages.js';
import { cipherSuite } from './suite.js';
import { anyKeyPackage, newDevice, type TestDevice } from './test-fixtures.js';

const te = new TextEncoder();
const td = new TextDecoder();

async function join(device: TestDevice, welcome: Uint8Array): Promise<GroupStateBytes> {
  const joined = await joinFromWelcome(welcome, (ref) => device.bundles.get(ref));
  device.bundles.delete(joined.usedRef);
  return joined.state;
}

/** Applies a Commit and insists it is one. */
async function applyCommit(state: GroupStateBytes, commit: Uint8Array) {
  const result = await processMessage(state, commit);
  assert.equal(result.kind, 'commit');
  if (result.kind !== 'commit') throw new Error('unreachable');
  return result;
}

async function readText(state: GroupStateBytes, message: Uint8Array): Promise<string> {
  const got = await processMessage(state, message);
  assert.equal(got.kind, 'application');
  return got.kind === 'application' ? td.decode(got.plaintext) : '';
}

/** Alice creates a group and adds Bob and Carol in one Commit; all three at epoch 1. */
async function threeMemberGroup() {
  const alice = await newDevice('alice@example.org', 'a1');
  const bob = await newDevice('bob@example.org', 'b1');
  const carol = await newDevice('carol@example.com', 'c1');
  const created = await createGroup(alice.keys, alice.identity);
  const added = await commitChanges(created.state, { add: [anyKeyPackage(bob), anyKeyPackage(carol)] });
  assert.ok(added.welcome, 'adding devices gives a Welcome');
  return {
    alice,
    bob,
    carol,
    added,
    states: { alice: added.state, bob: await join(bob, added.welcome), carol: await join(carol, added.welcome) },
  };
}

describe('commitChanges', () => {
  it('adds two devices with one Commit whose single Welcome lets both join', async () => {
    const { alice, bob, carol, added, states } = await threeMemberGroup();
    assert.equal(added.epoch, 0n, 'the epoch the Commit was made in');
    const expected = [alice.identity, bob.identity, carol.identity];
    for (const state of Object.values(states)) {
      assert.deepEqual(groupInfo(state).members, expected);
      assert.equal(groupInfo(state).epoch, 1n);
    }
    const fromCarol = await encryptMessage(states.carol, te.encode('hello both'));
    assert.equal(await readText(states.alice, fromCarol.message), 'hello both');
    assert.equal(await readText(states.bob, fromCarol.message), 'hello both');
  });

  it('removes a member: the others agree on epoch and members, the removed device is told and reads nothing more', async () => {
    const { alice, bob, carol, states } = await threeMemberGroup();
    const removal = await commitChanges(states.alice, { remove: [carol.identity] });
    assert.equal(removal.epoch, 1n);
    assert.equal(removal.welcome, undefined, 'a removal welcomes nobody');

    const atBob = await applyCommit(states.bob, removal.commit);
    assert.deepEqual(
      { epoch: atBob.epoch, added: atBob.added, removed: atBob.removed, removedSelf: atBob.removedSelf },
      { epoch: 2n, added: [], removed: [carol.identity], removedSelf: false },
    );
    for (const state of [removal.state, atBob.state]) {
      assert.deepEqual(groupInfo(state).members, [alice.identity, bob.identity]);
      assert.equal(groupInfo(state).epoch, 2n);
    }

    const atCarol = await applyCommit(states.carol, removal.commit);
    assert.equal(atCarol.removedSelf, true);
    assert.deepEqual(atCarol.removed, [carol.identity]);
    assert.equal(atCarol.epoch, 2n);
    // Her state stays readable (the epoch she was removed from) but is dead for sending and committing.
    assert.equal(groupInfo(atCarol.state).epoch, 1n);
    await assert.rejects(encryptMessage(atCarol.state, te.encode('still here?')), CryptoUsageError);
    await assert.rejects(updateKeys(atCarol.state), CryptoUsageError);

    const secret = await encryptMessage(removal.state, te.encode('carol is gone'));
    assert.equal(await readText(atBob.state, secret.message), 'carol is gone');
    await assert.rejects(processMessage(atCarol.state, secret.message), MessageRejectedError);
    await assert.rejects(processMessage(states.carol, secret.message), MessageRejectedError);
  });

  it('adds and removes in one Commit', async () => {
    const { alice, bob, carol, states } = await threeMemberGroup();
    const dave = await newDevice('dave@example.net', 'd1');
    const change = await commitChanges(states.alice, { add: [anyKeyPackage(dave)], remove: [bob.identity] });
    assert.ok(change.welcome);

    const atCarol = await applyCommit(states.carol, change.commit);
    assert.deepEqual(
      { added: atCarol.added, removed: atCarol.removed, removedSelf: atCarol.removedSelf },
      { added: [dave.identity], removed: [bob.identity], removedSelf: false },
    );
    const daveState = await join(dave, change.welcome);
    const members = groupInfo(change.state).members;
    assert.deepEqual(new Set(members), new Set([alice.identity, carol.identity, dave.identity]));
    for (const state of [atCarol.state, daveState]) {
      assert.deepEqual(groupInfo(state).members, members);
      assert.equal(groupInfo(state).epoch, 2n);
    }
    // Dave took Bob's leaf: Bob is still told he is out, and reads nothing of the new epoch.
    const atBob = await applyCommit(states.bob, change.commit);
    assert.deepEqual([atBob.removedSelf, atBob.added, atBob.removed], [true, [dave.identity], [bob.identity]]);

    const fromDave = await encryptMessage(daveState, te.encode('hi, I am new'));
    assert.equal(await readText(change.state, fromDave.message), 'hi, I am new');
    assert.equal(await readText(atCarol.state, fromDave.message), 'hi, I am new');
    await assert.rejects(processMessage(atBob.state, fromDave.message), MessageRejectedError);
  });

  it('removes a device and adds it back with new keys in one Commit (a reset device)', async () => {
    const { bob, carol, states } = await threeMemberGroup();
    const resetBob = await newDevice('bob@example.org', 'b1');
    const change = await commitChanges(states.alice, { add: [anyKeyPackage(resetBob)], remove: [bob.identity] });
    const atCarol = await applyCommit(states.carol, change.commit);
    assert.deepEqual([atCarol.added, atCarol.removed], [[bob.identity], [bob.identity]]);
    const bobState = await join(resetBob, change.welcome!);
    const fromBob = await encryptMessage(bobState, te.encode('back'));
    assert.equal(await readText(atCarol.state, fromBob.message), 'back');
    assert.ok(groupInfo(atCarol.state).members.includes(carol.identity));
  });

  it('refuses removing itself or a non-member, adding a present device, naming someone twice, or no change', async () => {
    const { alice, bob, states } = await threeMemberGroup();
    const stranger = await newDevice('erin@example.org', 'e1');
    const bobAgain = (await generateKeyPackages(bob.keys, bob.identity, 1))[0]!;
    const refusals: [string, Parameters<typeof commitChanges>[1]][] = [
      ['remove itself', { remove: [alice.identity] }],
      ['remove a non-member', { remove: [stranger.identity] }],
      ['add a present device', { add: [bobAgain.publicBytes] }],
      ['add the same device twice', { add: [anyKeyPackage(stranger), anyKeyPackage(stranger)] }],
      ['remove the same device twice', { remove: [bob.identity, bob.identity] }],
      ['change nothing', {}],
      ['change nothing, explicitly', { add: [], remove: [] }],
    ];
    for (const [what, changes] of refusals) {
      await assert.rejects(commitChanges(states.alice, changes), CryptoUsageError, what);
    }
    await assert.rejects(commitChanges(states.alice, { add: [new Uint8Array([0, 1, 0, 5])] }), CryptoFormatError);
    await assert.rejects(addMembers(states.alice, []), CryptoUsageError);
  });
});

describe('updateKeys', () => {
  it("makes a Commit the others apply: the epoch advances, the committer's keys change, members stay", async () => {
    const { alice, bob, carol, states } = await threeMemberGroup();
    const treeBefore = decodeState(states.bob).ratchetTree;
    const rotated = await updateKeys(states.alice);
    assert.equal(rotated.epoch, 1n);

    const atBob = await applyCommit(states.bob, rotated.commit);
    const atCarol = await applyCommit(states.carol, rotated.commit);
    for (const r of [atBob, atCarol]) {
      assert.deepEqual([r.epoch, r.added, r.removed, r.removedSelf], [2n, [], [], false]);
      assert.deepEqual(groupInfo(r.state).members, [alice.identity, bob.identity, carol.identity]);
    }
    assert.equal(groupEpoch(rotated.state), 2n);

    // Alice's leaf (leaf 0, node 0) and the root now hold fresh encryption keys; her signature key is unchanged.
    const treeAfter = decodeState(atBob.state).ratchetTree;
    const root = 2 ** Math.floor(Math.log2(treeAfter.length)) - 1;
    const leafBefore = treeBefore[0];
    const leafAfter = treeAfter[0];
    assert.ok(leafBefore?.nodeType === 'leaf' && leafAfter?.nodeType === 'leaf');
    assert.notDeepEqual(leafAfter.leaf.hpkePublicKey, leafBefore.leaf.hpkePublicKey);
    assert.deepEqual(leafAfter.leaf.signaturePublicKey, leafBefore.leaf.signaturePublicKey);
    const rootAfter = treeAfter[root];
    assert.ok(rootAfter?.nodeType === 'parent');
    assert.notDeepEqual(
      rootAfter.parent.hpkePublicKey,
      treeBefore[root]?.nodeType === 'parent' ? treeBefore[root].parent.hpkePublicKey : undefined,
    );

    // Whoever holds only the old epoch's secrets cannot read the new epoch.
    const after = await encryptMessage(rotated.state, te.encode('new keys'));
    assert.equal(await readText(atCarol.state, after.message), 'new keys');
    await assert.rejects(processMessage(states.bob, after.message), MessageRejectedError);
  });
});

describe('competing commits', () => {
  it('accepts only the first of two Commits made in the same epoch: why the delivery service orders them', async () => {
    const { alice, bob, carol, states } = await threeMemberGroup();
    const fromAlice = await updateKeys(states.alice);
    const fromBob = await commitChanges(states.bob, { remove: [carol.identity] });
    assert.equal(fromAlice.epoch, fromBob.epoch);

    // The server took Alice's. Carol applies it, then Bob's arrives and cannot apply any more.
    const atCarol = await applyCommit(states.carol, fromAlice.commit);
    await assert.rejects(processMessage(atCarol.state, fromBob.commit), MessageRejectedError);
    await assert.rejects(processMessage(fromAlice.state, fromBob.commit), MessageRejectedError);

    // Bob drops his Commit's state, applies the winner from his old state, and is in step again.
    const atBob = await applyCommit(states.bob, fromAlice.commit);
    for (const state of [atBob.state, atCarol.state]) {
      assert.equal(groupInfo(state).epoch, groupInfo(fromAlice.state).epoch);
      assert.deepEqual(groupInfo(state).members, [alice.identity, bob.identity, carol.identity]);
    }
    const retry = await commitChanges(atBob.state, { remove: [carol.identity] });
    assert.equal((await applyCommit(fromAlice.state, retry.commit)).removed[0], carol.identity);
  });
});

describe('processMessage on commits', () => {
  it("refuses a Commit whose UpdatePath renames the committer's leaf", async () => {
    const { bob, states } = await threeMemberGroup();
    // Bob's client, altered: its own leaf now claims to be Mallory's device, so the path it signs does too.
    const cs = await cipherSuite();
    const bobState = decodeState(states.bob);
    const tree = bobState.ratchetTree.slice();
    const bobLeaf = 2 * bobState.privatePath.leafIndex;
    const node = tree[bobLeaf];
    assert.ok(node?.nodeType === 'leaf');
    const mallory = 'mallory@example.org/m1';
    tree[bobLeaf] = {
      nodeType: 'leaf',
      leaf: { ...node.leaf, credential: { credentialType: 'basic', identity: encodeUtf8(mallory) } },
    };
    const forged = await createCommit({ state: { ...bobState, ratchetTree: tree }, cipherSuite: cs }, {});
    const commit = encodeMlsMessage(forged.commit);
    await assert.rejects(processMessage(states.alice, commit), MessageRejectedError);
    // An honest update by Bob goes through.
    assert.deepEqual((await applyCommit(states.alice, (await updateKeys(states.bob)).commit)).removed, []);
    assert.ok(
      !groupInfo(states.alice).members.includes(mallory) && groupInfo(states.alice).members.includes(bob.identity),
    );
  });
});

describe('groupEpoch', () => {
  it('gives the same epoch as groupInfo without decoding the whole state, and refuses what is no state', async () => {
    const { states } = await threeMemberGroup();
    assert.equal(groupEpoch(states.bob), 1n);
    const rotated = await updateKeys(states.bob);
    assert.equal(groupEpoch(rotated.state), groupInfo(rotated.state).epoch);
    assert.throws(() => groupEpoch(new Uint8Array([9, 0, 1])), CryptoFormatError);
    assert.throws(() => groupEpoch(states.bob.subarray(0, 6)), CryptoFormatError);
  });
});
