// Property tests: the proof layout (inclusionProofNodes / consistencyProofNodes, hashed from perfect
// subtrees the way the log service will) must give exactly the proofs of the RFC 9162 definitions
// in the reference tree, those proofs must verify, and any change to them must not.
// Random cases use a seeded generator; set QPQ_MERKLE_SEED to replay a failure.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { verifyConsistency } from './consistency.js';
import { MerkleRangeError } from './errors.js';
import { leafHash } from './hash.js';
import { verifyInclusion } from './inclusion.js';
import { consistencyProofNodes, inclusionProofNodes, perfectSubtrees } from './proof-nodes.js';
import { MerkleTree } from './reference-tree.js';

const seed = Number(process.env.QPQ_MERKLE_SEED ?? Math.floor(Math.random() * 2 ** 32));
const withSeed = (what: string): string => `${what} (QPQ_MERKLE_SEED=${seed})`;

// mulberry32: small, fast, and good enough to pick tree sizes.
function generator(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const random = generator(seed);
const below = (n: number): number => Math.floor(random() * n);
// Sizes spread over every order of magnitude, not bunched near the top.
const sizeUpTo = (max: number): number => Math.max(1, Math.min(max, Math.floor(2 ** (random() * Math.log2(max + 1)))));

// A tree whose leaf i holds the 4 bytes of i: every leaf differs, so a proof for one is no proof for another.
function treeOf(size: number): MerkleTree {
  const tree = new MerkleTree();
  const data = new Uint8Array(4);
  const view = new DataView(data.buffer);
  for (let i = 0; i < size; i++) {
    view.setUint32(0, i);
    tree.append(data);
  }
  return tree;
}

function flipBit(proof: readonly Uint8Array[], at: number, bit: number): Uint8Array[] {
  return proof.map((p, i) => {
    if (i !== at) return p;
    const copy = Uint8Array.from(p);
    copy[bit >> 3]! ^= 1 << (bit & 7);
    return copy;
  });
}

const ceilLog2 = (n: number): number => Math.ceil(Math.log2(n));

// All checks on one inclusion proof; returns how many perfect subtrees the log has to read for it.
function checkInclusion(tree: MerkleTree, index: number, size: number): number {
  const where = withSeed(`leaf ${index} of ${size}`);
  const nodes = inclusionProofNodes(index, size);
  const proof = tree.inclusionProof(index, size);
  assert.deepEqual(tree.proofFromNodes(nodes), proof, `${where}: layout gives the RFC path`);
  assert.ok(proof.length <= ceilLog2(size), `${where}: path of ${proof.length} hashes`);
  const leaf = tree.leafHash(index);
  const root = tree.root(size);
  assert.ok(verifyInclusion(index, size, leaf, proof, root), `${where}: verifies`);

  assert.ok(!verifyInclusion(index, size, leafHash(new Uint8Array([1, 2, 3])), proof, root), `${where}: other leaf`);
  if (size > 1) {
    const other = (index + 1 + below(size - 1)) % size;
    assert.ok(!verifyInclusion(other, size, leaf, proof, root), `${where}: claimed at ${other}`);
    assert.ok(!verifyInclusion(index, size, leaf, proof, tree.root(size - 1)), `${where}: older root`);
  }
  if (proof.length > 0) {
    const at = below(proof.length);
    assert.ok(!verifyInclusion(index, size, leaf, flipBit(proof, at, below(256)), root), `${where}: bit flipped`);
    assert.ok(!verifyInclusion(index, size, leaf, proof.slice(0, -1), root), `${where}: truncated`);
    assert.ok(!verifyInclusion(index, size, leaf, proof.toSpliced(at, 1), root), `${where}: element removed`);
  }
  assert.ok(!verifyInclusion(index, size, leaf, [...proof, leaf], root), `${where}: extended`);
  return nodes.reduce((sum, n) => sum + perfectSubtrees(n.start, n.end).length, 0);
}

// All checks on one consistency proof; returns how many perfect subtrees the log has to read for it.
function checkConsistency(tree: MerkleTree, size1: number, size2: number): number {
  const where = withSeed(`from ${size1} to ${size2}`);
  const nodes = consistencyProofNodes(size1, size2);
  const proof = tree.consistencyProof(size1, size2);
  assert.deepEqual(tree.proofFromNodes(nodes), proof, `${where}: layout gives the RFC proof`);
  assert.ok(proof.length <= ceilLog2(size2) + 1, `${where}: proof of ${proof.length} hashes`);
  const root1 = tree.root(size1);
  const root2 = tree.root(size2);
  assert.ok(verifyConsistency(size1, size2, root1, root2, proof), `${where}: verifies`);

  if (size1 < size2) {
    const at = below(proof.length);
    assert.ok(!verifyConsistency(size1, size2, root1, root2, flipBit(proof, at, below(256))), `${where}: bit flipped`);
    assert.ok(!verifyConsistency(size1, size2, root1, root2, proof.slice(0, -1)), `${where}: truncated`);
    assert.ok(!verifyConsistency(size1, size2, root1, root2, [...proof, root1]), `${where}: extended`);
    assert.ok(!verifyConsistency(size1, size2, root2, root1, proof), `${where}: roots swapped`);
    assert.ok(!verifyConsistency(size2, size1, root2, root1, proof), `${where}: sizes swapped`);
    assert.ok(
      !verifyConsistency(size1, size2, tree.root(size1 === 1 ? 2 : size1 - 1), root2, proof),
      `${where}: other old root`,
    );
    assert.ok(!verifyConsistency(size1, size2, root1, tree.root(size2 - 1), proof), `${where}: other new root`);
  } else {
    assert.ok(!verifyConsistency(size1, size2, root1, root2, [root1]), `${where}: equal sizes, non-empty proof`);
  }
  return nodes.reduce((sum, n) => sum + perfectSubtrees(n.start, n.end).length, 0);
}

describe('every proof in small trees', () => {
  const tree = treeOf(64);

  test('every inclusion proof up to 64 leaves is the RFC path, verifies, and fails once changed', () => {
    let proofs = 0;
    for (let size = 1; size <= 64; size++) {
      for (let index = 0; index < size; index++, proofs++) checkInclusion(tree, index, size);
    }
    assert.equal(proofs, (64 * 65) / 2);
  });

  test('every consistency proof up to 64 leaves is the RFC proof, verifies, and fails once changed', () => {
    let proofs = 0;
    for (let size2 = 1; size2 <= 64; size2++) {
      for (let size1 = 1; size1 <= size2; size1++, proofs++) checkConsistency(tree, size1, size2);
    }
    assert.equal(proofs, (64 * 65) / 2);
  });
});

describe('random proofs in a tree of more than 2^16 leaves', () => {
  const max = 2 ** 16 + 4321;
  const tree = treeOf(max);
  const edges = [1, 2, 3, 2 ** 16 - 1, 2 ** 16, 2 ** 16 + 1, max];

  test('inclusion proofs for random (index, size) verify, fail once changed, and need O(log n) reads', () => {
    const sizes = [...edges, ...Array.from({ length: 1000 }, () => sizeUpTo(max))];
    for (const size of sizes) {
      for (const index of [0, size - 1, below(size)]) {
        const reads = checkInclusion(tree, index, size);
        assert.ok(reads <= 2 * ceilLog2(size) + 1, withSeed(`leaf ${index} of ${size}: ${reads} reads`));
      }
    }
  });

  test('consistency proofs for random (size1, size2) verify, fail once changed, and need O(log n) reads', () => {
    const pairs: [number, number][] = [
      [2 ** 16, max],
      [2 ** 16 - 1, 2 ** 16],
      [1, max],
      [max - 1, max],
      [max, max],
    ];
    for (let i = 0; i < 1000; i++) {
      const size2 = sizeUpTo(max);
      pairs.push([sizeUpTo(size2), size2]);
    }
    for (const [size1, size2] of pairs) {
      const reads = checkConsistency(tree, size1, size2);
      assert.ok(reads <= 2 * ceilLog2(size2) + 2, withSeed(`from ${size1} to ${size2}: ${reads} reads`));
    }
  });

  test('a log that rewrote an entry cannot prove itself consistent with the head before', () => {
    for (let i = 0; i < 20; i++) {
      const size2 = 2 + below(4000);
      const size1 = 1 + below(size2 - 1);
      const changed = below(size1);
      // A second log with the same entries except one before size1.
      const forked = new MerkleTree();
      for (let j = 0; j < size2; j++)
        forked.appendLeafHash(j === changed ? leafHash(new Uint8Array([9])) : tree.leafHash(j));
      const where = withSeed(`entry ${changed} rewritten, ${size1} → ${size2}`);
      assert.ok(
        !verifyConsistency(size1, size2, tree.root(size1), forked.root(size2), forked.consistencyProof(size1, size2)),
        where,
      );
      assert.ok(
        !verifyInclusion(
          changed,
          size2,
          tree.leafHash(changed),
          forked.inclusionProof(changed, size2),
          forked.root(size2),
        ),
        where,
      );
    }
  });
});

describe('out-of-range requests are refused', () => {
  const tree = treeOf(10);
  const proof = tree.inclusionProof(3, 10);
  const leaf = tree.leafHash(3);
  const root = tree.root(10);

  test('the proof layout refuses an index or sizes outside the tree', () => {
    const cases: [string, () => unknown][] = [
      ['index = size', () => inclusionProofNodes(10, 10)],
      ['index > size', () => inclusionProofNodes(11, 10)],
      ['empty tree', () => inclusionProofNodes(0, 0)],
      ['negative index', () => inclusionProofNodes(-1, 10)],
      ['fractional index', () => inclusionProofNodes(1.5, 10)],
      ['NaN size', () => inclusionProofNodes(0, NaN)],
      ['size past 2^53', () => inclusionProofNodes(0, 2 ** 53)],
      ['consistency from the empty tree', () => consistencyProofNodes(0, 10)],
      ['consistency between empty trees', () => consistencyProofNodes(0, 0)],
      ['size1 > size2', () => consistencyProofNodes(11, 10)],
      ['negative size1', () => consistencyProofNodes(-1, 10)],
      ['size2 past 2^53', () => consistencyProofNodes(1, 2 ** 53)],
      ['a range that is not a node', () => perfectSubtrees(1, 4)],
      ['a backwards range', () => perfectSubtrees(4, 2)],
    ];
    for (const [what, request] of cases) assert.throws(request, MerkleRangeError, what);
  });

  test('the verifiers refuse proofs claimed for an index or sizes outside the tree', () => {
    assert.ok(verifyInclusion(3, 10, leaf, proof, root), 'the untouched proof verifies');
    assert.ok(!verifyInclusion(10, 10, leaf, proof, root), 'index = size');
    assert.ok(!verifyInclusion(13, 10, leaf, proof, root), 'index > size');
    assert.ok(!verifyInclusion(0, 0, leaf, [], root), 'empty tree');
    assert.ok(!verifyInclusion(-7, 10, leaf, proof, root), 'negative index');
    assert.ok(!verifyInclusion(3 + 2 ** 53, 2 ** 54, leaf, proof, root), 'sizes past 2^53');
    assert.ok(!verifyInclusion(3.5, 10, leaf, proof, root), 'fractional index');

    const c = tree.consistencyProof(4, 10);
    assert.ok(verifyConsistency(4, 10, tree.root(4), root, c), 'the untouched proof verifies');
    assert.ok(!verifyConsistency(10, 4, tree.root(4), root, c), 'size1 > size2');
    assert.ok(!verifyConsistency(0, 10, tree.root(0), root, c), 'size1 = 0');
    assert.ok(!verifyConsistency(0, 0, tree.root(0), tree.root(0), []), 'both empty');
    assert.ok(!verifyConsistency(4, 2 ** 53, tree.root(4), root, c), 'size2 past 2^53');
    assert.ok(!verifyConsistency(4, 10, tree.root(4).subarray(1), root, c), 'short root1');
  });
});
