import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CryptoFormatError } from './errors.js';
import { peekFraming } from './framing.js';
import { addMembers } from './commits.js';
import { createGroup, encryptMessage } from './group.js';
import { anyKeyPackage, newDevice, twoMemberGroup } from './test-fixtures.js';

describe('peekFraming', () => {
  it('reads group id, epoch and content type of a private application message', async () => {
    const { aliceState, groupId } = await twoMemberGroup();
    const { message } = await encryptMessage(aliceState, new TextEncoder().encode('hi'));
    assert.deepEqual(peekFraming(message), { wireFormat: 'private', groupId, epoch: 1n, contentType: 'application' });
  });

  it('reads a commit as a commit of the epoch it was sent in', async () => {
    const { aliceState, groupId, addCommit } = await twoMemberGroup();
    assert.deepEqual(peekFraming(addCommit), { wireFormat: 'private', groupId, epoch: 0n, contentType: 'commit' });
    const carol = await newDevice('carol@example.org', 'c1');
    const next = await addMembers(aliceState, [anyKeyPackage(carol)]);
    assert.deepEqual(peekFraming(next.commit), { wireFormat: 'private', groupId, epoch: 1n, contentType: 'commit' });
    assert.deepEqual(peekFraming(next.welcome), { wireFormat: 'welcome' });
    assert.deepEqual(peekFraming(anyKeyPackage(carol)), { wireFormat: 'key_package' });
  });

  it('uses the caller-chosen group id', async () => {
    const dana = await newDevice('dana@example.org', 'd1');
    const eve = await newDevice('eve@example.org', 'e1');
    const groupId = new TextEncoder().encode('team-42');
    const created = await createGroup(dana.keys, dana.identity, groupId);
    const added = await addMembers(created.state, [anyKeyPackage(eve)]);
    assert.deepEqual(peekFraming(added.commit).groupId, groupId);
  });

  it('refuses bytes that are not exactly one MLS message', async () => {
    const { addCommit } = await twoMemberGroup();
    assert.throws(() => peekFraming(new Uint8Array(0)), CryptoFormatError);
    assert.throws(() => peekFraming(new Uint8Array([0, 1, 0, 2, 0xff])), CryptoFormatError);
    assert.throws(() => peekFraming(addCommit.subarray(0, addCommit.length - 1)), CryptoFormatError);
    assert.throws(() => peekFraming(new Uint8Array([...addCommit, 0])), CryptoFormatError);
    assert.throws(() => peekFraming(new TextEncoder().encode('hello world')), CryptoFormatError);
  });
});
