// The reference tree against published RFC 6962 values: the Certificate Transparency test leaves and
// the roots of every tree built from them (as kept in transparency-dev/merkle testonly/constants.go,
// Apache-2.0, see ../testdata/LICENSE). Everything else in this package is checked against this tree,
// so it is pinned to numbers computed elsewhere first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MerkleRangeError } from './errors.js';
import { EMPTY_ROOT, leafHash } from './hash.js';
import { MerkleTree } from './reference-tree.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const leafInputs = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
const rootsBySize = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

function ctTree(): MerkleTree {
  const tree = new MerkleTree();
  for (const input of leafInputs) tree.append(hex(input));
  return tree;
}

test('the empty tree and the empty leaf hash to the RFC 6962 values', () => {
  assert.equal(toHex(EMPTY_ROOT), rootsBySize[0]);
  assert.equal(toHex(leafHash(new Uint8Array())), rootsBySize[1]);
  assert.deepEqual(new MerkleTree().root(), EMPTY_ROOT);
});

test('the root of every prefix of the CT test leaves matches the published one', () => {
  const tree = ctTree();
  assert.equal(tree.size, 8);
  // Asked in both directions: memoised subtrees from larger roots must not change smaller ones.
  for (const size of [8, 7, 6, 5, 4, 3, 2, 1, 0, 3, 8]) assert.equal(toHex(tree.root(size)), rootsBySize[size]);
});

test('a tree grown leaf by leaf has the published root at every size', () => {
  const tree = new MerkleTree();
  leafInputs.forEach((input, i) => {
    assert.equal(tree.append(hex(input)), i);
    assert.equal(toHex(tree.root()), rootsBySize[i + 1]);
  });
});

test('the reference tree refuses ranges, proofs and leaves it does not hold', () => {
  const tree = ctTree();
  const refused = { name: 'MerkleRangeError' };
  assert.throws(() => tree.root(9), refused);
  assert.throws(() => tree.leafHash(8), refused);
  assert.throws(() => tree.rangeHash(5, 4), refused);
  assert.throws(() => tree.inclusionProof(8, 8), refused);
  assert.throws(() => tree.inclusionProof(0, 0), refused);
  assert.throws(() => tree.inclusionProof(0, 9), refused);
  assert.throws(() => tree.inclusionProof(-1, 8), refused);
  assert.throws(() => tree.consistencyProof(0, 8), refused);
  assert.throws(() => tree.consistencyProof(5, 4), refused);
  assert.throws(() => tree.consistencyProof(4, 9), refused);
  assert.throws(() => tree.proofFromNodes([{ start: 4, end: 9 }]), refused);
  assert.throws(() => tree.appendLeafHash(new Uint8Array(31)), MerkleRangeError);
  assert.equal(tree.size, 8, 'a refused leaf is not appended');
});
