// RFC 9162 §2.1.1 hashing with SHA-256. The 0x00 / 0x01 prefixes keep a leaf from ever being
// taken for an interior node (second-preimage resistance), so a proof cannot pass a node off as a leaf.
//
// Why by hand and not a library: no well-kept npm package offers RFC 9162 verification and proof
// layout as a public API. @sigstore/verify checks Rekor inclusion only, internally, on its own entry
// type, and has no consistency proofs; the popular Merkle packages (@openzeppelin/merkle-tree,
// merkletreejs, …) hash differently (sorted pairs, keccak, no domain separation). The algorithms are
// short and pinned here by the transparency-dev/merkle vectors (testdata/) and by property tests.
import { createHash } from 'node:crypto';

const LEAF_PREFIX = new Uint8Array([0x00]);
const NODE_PREFIX = new Uint8Array([0x01]);

/** Bytes in every hash of the tree (SHA-256). */
export const HASH_SIZE = 32;

/** MTH({}): the root of the empty tree, SHA-256 of no bytes. */
export const EMPTY_ROOT: Uint8Array = new Uint8Array(createHash('sha256').digest());

/** The hash of a leaf holding `data`: SHA-256(0x00 ‖ data). */
export function leafHash(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(LEAF_PREFIX).update(data).digest());
}

/** The hash of an interior node: SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest());
}

/** Byte equality (hashes here are public, so no constant-time compare is needed). */
export function hashesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
