// Which subtree hashes make up a proof, as leaf ranges, so that the log can answer from stored hashes
// with O(log n) reads instead of rebuilding the tree. Worked out bottom-up from the leaf (or node)
// being proven, independently of the recursive PATH/PROOF definitions that the reference tree
// follows; the tests check that the two agree.
//
// Every range returned is a node of the tree: either a perfect subtree [j·2^h, (j+1)·2^h), or the
// rightmost, incomplete one [j·2^h, size). A perfect one can be stored once and for all (appends never
// change it); a rightmost one is hashed from the perfect subtrees that cover it (perfectSubtrees +
// hashFromPerfectSubtrees), at most log2(n) of them.
import { MerkleRangeError } from './errors.js';
import { EMPTY_ROOT, nodeHash } from './hash.js';
import { isPowerOfTwo, lowestSetBit, requireTreeSize } from './sizes.js';

/** The leaves [start, end) under one node of the tree. */
export interface NodeRange {
  readonly start: number;
  readonly end: number;
}

/**
 * The nodes whose hashes, in this order, form the inclusion proof (RFC 9162 PATH) of leaf `index`
 * in the tree of `size` leaves. Throws MerkleRangeError unless 0 ≤ index < size.
 *
 * @example
 * inclusionProofNodes(2, 7) // [{start:3,end:4}, {start:0,end:2}, {start:4,end:7}]
 */
export function inclusionProofNodes(index: number, size: number): NodeRange[] {
  requireTreeSize(index, 'leaf index');
  requireTreeSize(size, 'tree size');
  if (index >= size) throw new MerkleRangeError(`leaf index ${index} is not in a tree of size ${size}`);
  return siblingsUpToRoot(index, 1, size);
}

/**
 * The nodes whose hashes, in this order, form the consistency proof (RFC 9162 PROOF) from the tree
 * of `size1` leaves to the tree of `size2` leaves; empty when the sizes are equal. Throws
 * MerkleRangeError unless 0 < size1 ≤ size2 (a proof from the empty tree means nothing, and
 * verifyConsistency refuses it).
 */
export function consistencyProofNodes(size1: number, size2: number): NodeRange[] {
  requireTreeSize(size1, 'first tree size');
  requireTreeSize(size2, 'second tree size');
  if (size1 === 0) throw new MerkleRangeError('no consistency proof from the empty tree');
  if (size1 > size2) throw new MerkleRangeError(`first tree size ${size1} is past second tree size ${size2}`);
  if (size1 === size2) return [];
  // The highest node that the old tree's last leaf shares with the new tree is the perfect subtree
  // of width lowestSetBit(size1) ending at size1. The proof is that node (left out when it is the
  // whole old tree, whose root the verifier already holds) and its path up to the new root.
  const width = lowestSetBit(size1);
  const start = size1 - width;
  const path = siblingsUpToRoot(start, width, size2);
  return start === 0 ? path : [{ start, end: size1 }, ...path];
}

/**
 * The perfect subtrees that cover the node [start, end), left to right: one range when the node is
 * perfect, else one per set bit of end − start. Throws MerkleRangeError when [start, end) is not a
 * node of a tree (start must be a multiple of the power of two at or above end − start), as only for
 * nodes does hashFromPerfectSubtrees give the node's hash.
 */
export function perfectSubtrees(start: number, end: number): NodeRange[] {
  requireTreeSize(start, 'range start');
  requireTreeSize(end, 'range end');
  if (start > end) throw new MerkleRangeError(`range start ${start} is past its end ${end}`);
  let span = 1;
  while (span < end - start) span *= 2;
  if (start % span !== 0) throw new MerkleRangeError(`[${start}, ${end}) is not a node of a Merkle tree`);
  const out: NodeRange[] = [];
  let at = start;
  while (at < end) {
    let width = span;
    while (width > end - at) width /= 2;
    out.push({ start: at, end: at + width });
    at += width;
  }
  return out;
}

/**
 * The hash of a node from the hashes of its perfectSubtrees, in the same order: MTH splits a node at
 * its largest power of two, which is its first perfect subtree, so the hashes fold from the right.
 * The empty list gives the empty tree's root.
 */
export function hashFromPerfectSubtrees(hashes: readonly Uint8Array[]): Uint8Array {
  let acc = hashes.at(-1);
  if (acc === undefined) return EMPTY_ROOT;
  for (let i = hashes.length - 2; i >= 0; i--) acc = nodeHash(hashes[i] as Uint8Array, acc);
  return acc;
}

/** Whether [start, end) is a perfect subtree: a power-of-two width, aligned to it. */
export function isPerfectSubtree(range: NodeRange): boolean {
  const width = range.end - range.start;
  return isPowerOfTwo(width) && range.start % width === 0;
}

// The siblings met on the way from the node [start, start + width) (width a power of two, start a
// multiple of it) up to the root of the tree of `size` leaves, lowest first. At each level a node
// with an even position has its sibling on the right (cut off at `size`, and absent when the node is
// the rightmost: it then moves up unchanged); a node with an odd position has a perfect one on the left.
function siblingsUpToRoot(start: number, width: number, size: number): NodeRange[] {
  const out: NodeRange[] = [];
  let at = start;
  let w = width;
  while (!(at === 0 && w >= size)) {
    if ((at / w) % 2 === 0) {
      const right = at + w;
      if (right < size) out.push({ start: right, end: Math.min(right + w, size) });
    } else {
      out.push({ start: at - w, end: at });
      at -= w;
    }
    w *= 2;
  }
  return out;
}
