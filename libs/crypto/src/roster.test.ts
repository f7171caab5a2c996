import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { groupMembers } from './group.js';
import { twoMemberGroup } from './test-fixtures.js';

describe('groupMembers', () => {
  it("gives each member's identity with the signature key of its leaf, as every member sees it", async () => {
    const { alice, bob, aliceState, bobState } = await twoMemberGroup();
    const expected = [
      { identity: alice.identity, signaturePublicKey: alice.keys.signaturePublicKey },
      { identity: bob.identity, signaturePublicKey: bob.keys.signaturePublicKey },
    ];
    assert.deepEqual(groupMembers(aliceState), expected);
    assert.deepEqual(groupMembers(bobState), expected);
  });
});
