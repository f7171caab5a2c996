import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { CryptoUsageError } from './errors.js';
import { signTreeHead, treeHeadBytes, verifyTreeHead } from './tree-head.js';

describe('signed tree head', () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  const root = new Uint8Array(32).fill(0xab);
  const head = signTreeHead(privateKey, { treeSize: 5, rootHash: root, timestampMs: 1_700_000_000_000n });

  it('encodes the canonical bytes as specified in ktlog.proto', () => {
    const bytes = treeHeadBytes({ treeSize: 258n, rootHash: root, timestampMs: 3 });
    const expected = Buffer.concat([
      Buffer.from('qpq-kt-tree-head-v1'),
      Buffer.from([0, 0, 0, 0, 0, 0, 1, 2]),
      root,
      Buffer.from([0, 0, 0, 0, 0, 0, 0, 3]),
    ]);
    assert.deepEqual(Buffer.from(bytes), expected);
  });

  it('verifies as signed, also against the pinned log key', () => {
    assert.equal(verifyTreeHead(head), true);
    assert.equal(verifyTreeHead(head, head.logPublicKey), true);
  });

  it('rejects a head with any field changed', () => {
    assert.equal(verifyTreeHead({ ...head, treeSize: 6n }), false);
    assert.equal(verifyTreeHead({ ...head, timestampMs: head.timestampMs + 1n }), false);
    const otherRoot = new Uint8Array(root);
    otherRoot[0] = 0xac;
    assert.equal(verifyTreeHead({ ...head, rootHash: otherRoot }), false);
    assert.equal(verifyTreeHead({ ...head, rootHash: root.subarray(1) }), false);
  });

  it('rejects a head signed by another key than the pinned one', () => {
    const other = signTreeHead(generateKeyPairSync('ed25519').privateKey, head);
    assert.equal(verifyTreeHead(other), true);
    assert.equal(verifyTreeHead(other, head.logPublicKey), false);
  });

  it('refuses to sign with a key that is not Ed25519 or a root that is not 32 bytes', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    assert.throws(() => signTreeHead(ec, head), CryptoUsageError);
    assert.throws(() => treeHeadBytes({ ...head, rootHash: new Uint8Array(31) }), CryptoUsageError);
  });
});
