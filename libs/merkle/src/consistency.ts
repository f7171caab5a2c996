// Consistency proof verification, RFC 9162 §2.1.4.2, step by step. As with inclusion, every input is
// untrusted and nothing throws: every malformed or failing proof yields false.
import { HASH_SIZE, hashesEqual, nodeHash } from './hash.js';
import { half, isOdd, isPowerOfTwo, isTreeSize } from './sizes.js';

/**
 * Whether `proof` shows that the tree of `size2` leaves with root `root2` extends (appends only to)
 * the tree of `size1` leaves with root `root1`.
 *
 * Beyond the RFC algorithm, which covers 0 < size1 < size2:
 * - size1 = size2 > 0: consistent exactly when the proof is empty and the roots are the same bytes.
 * - size1 = 0 is refused, even against another empty tree: every tree extends the empty one, so
 *   such a "proof" proves nothing, and a client with no earlier head simply has nothing to check.
 * - size1 > size2, sizes that are not safe integers, hashes that are not 32 bytes: refused.
 *
 * @example
 * if (!verifyConsistency(kept.size, head.size, kept.root, head.root, proof)) warn('log forked');
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  root1: Uint8Array,
  root2: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!isTreeSize(size1) || !isTreeSize(size2)) return false;
  if (size1 === 0 || size1 > size2) return false;
  if (size1 === size2) return proof.length === 0 && hashesEqual(root1, root2);
  if (root1.length !== HASH_SIZE || root2.length !== HASH_SIZE) return false;
  if (proof.some((p) => p.length !== HASH_SIZE)) return false;
  // 1. An empty path fails.
  if (proof.length === 0) return false;
  // 2. When the old tree is perfect its root is itself a node of the new tree, and the log leaves it
  //    out of the path: put it back in front.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  // 3. fn = first − 1, sn = second − 1.
  let fn = size1 - 1;
  let sn = size2 - 1;
  // 4. Skip the levels where the old tree's last leaf is a right child: its subtree is complete there.
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  // 5. fr and sr start at the first value of the path.
  let fr = path[0] as Uint8Array;
  let sr = fr;
  // 6. Fold the rest: fr rebuilds the old root, sr the new one.
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // 7. Both roots rebuilt, and the path used up exactly.
  return sn === 0 && hashesEqual(fr, root1) && hashesEqual(sr, root2);
}
