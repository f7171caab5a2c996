// Inclusion proof verification, RFC 9162 §2.1.3.2, step by step. Every input is untrusted (it comes
// from the log over the network), so nothing here throws: a malformed or failing proof yields
// undefined / false.
import { HASH_SIZE, hashesEqual, nodeHash } from './hash.js';
import { half, isOdd, isTreeSize } from './sizes.js';

/**
 * The root that `proof` (an audit path, lowest level first) leads to from the leaf hash `leaf` at
 * `leafIndex` in a tree of `treeSize` leaves, or undefined when the proof cannot be one: an index
 * not below the size, a size or index that is not a safe integer, a hash that is not 32 bytes, or a
 * path of the wrong length for that (index, size).
 *
 * @example
 * const root = rootFromInclusionProof(3, 7, leafHash(entry), proof);
 * if (root === undefined || !hashesEqual(root, signedHead.root)) warn();
 */
export function rootFromInclusionProof(
  leafIndex: number,
  treeSize: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array | undefined {
  if (!isTreeSize(leafIndex) || !isTreeSize(treeSize)) return undefined;
  // 1. leaf_index ≥ tree_size fails (this also refuses every proof in the empty tree).
  if (leafIndex >= treeSize) return undefined;
  if (leaf.length !== HASH_SIZE || proof.some((p) => p.length !== HASH_SIZE)) return undefined;
  // 2. fn = leaf_index, sn = tree_size − 1.  3. r = hash.
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leaf;
  // 4. Walk up the path.
  for (const p of proof) {
    // A path longer than the tree is high.
    if (sn === 0) return undefined;
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      // Where our node is the rightmost and has no sibling at this level, it moves up unchanged.
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // 5. A path shorter than the tree is high leaves sn above 0.
  if (sn !== 0) return undefined;
  return r;
}

/**
 * Whether `proof` proves that the leaf hash `leaf` sits at `leafIndex` in the tree of `treeSize`
 * leaves whose root is `root`. False for every malformed input (see rootFromInclusionProof).
 */
export function verifyInclusion(
  leafIndex: number,
  treeSize: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  const computed = rootFromInclusionProof(leafIndex, treeSize, leaf, proof);
  return computed !== undefined && hashesEqual(computed, root);
}
