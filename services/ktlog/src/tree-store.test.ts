import { MerkleTree, nodeHash, perfectSubtrees } from '@qpq/merkle';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { appendToFrontier, levelOf } from './tree-store.js';

const leaf = (i: number) => new Uint8Array(createHash('sha256').update(`leaf ${i}`).digest());
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('appendToFrontier (the nodes an append stores)', () => {
  it('stores exactly the perfect subtrees each batch completes, with the reference hashes and root', () => {
    const reference = new MerkleTree();
    const stored = new Map<string, string>();
    let frontier: Uint8Array[] = [];
    let size = 0;
    // Batches of many lengths, crossing powers of two in every way, up to a few thousand leaves.
    for (let batch = 0; size < 5000; batch++) {
      const n = batch % 7 === 0 ? 1 : (batch * 37) % 300;
      const leaves = Array.from({ length: n }, (_, i) => leaf(size + i));
      const result = appendToFrontier(size, frontier, leaves, nodeHash);
      for (const l of leaves) reference.appendLeafHash(l);
      for (const node of result.nodes) {
        const key = `${node.level}/${node.position}`;
        assert.ok(!stored.has(key), `node ${key} stored twice`);
        const start = node.position * 2 ** node.level;
        assert.ok(start + 2 ** node.level <= size + n, `node ${key} is complete`);
        assert.equal(hex(node.hash), hex(reference.rangeHash(start, start + 2 ** node.level)), key);
        stored.set(key, hex(node.hash));
      }
      size += n;
      assert.equal(hex(result.root), hex(reference.root(size)), `root at ${size}`);
      frontier = result.frontier;
      assert.deepEqual(
        frontier.map(hex),
        perfectSubtrees(0, size).map((r) => hex(reference.rangeHash(r.start, r.end))),
      );
    }
    // Every perfect subtree of level ≥ 1 inside the tree was stored.
    let expected = 0;
    for (let w = 2; w <= size; w *= 2) expected += Math.floor(size / w);
    assert.equal(stored.size, expected);
  });

  it('levelOf gives log2 of powers of two beyond 32 bits', () => {
    assert.equal(levelOf(1), 0);
    assert.equal(levelOf(2), 1);
    assert.equal(levelOf(2 ** 40), 40);
  });
});
