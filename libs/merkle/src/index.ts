// RFC 9162 Merkle trees for the key-transparency log: pure functions, no I/O.
//
// Two sides, two ways of refusing:
// - Verifiers (verifyInclusion, rootFromInclusionProof, verifyConsistency) take untrusted input from
//   the network and never throw: every malformed or failing proof gives false (or undefined).
// - Producers (MerkleTree, inclusionProofNodes, consistencyProofNodes, perfectSubtrees) take the
//   arguments of a request and throw MerkleRangeError for one outside the tree.
export { verifyConsistency } from './consistency.js';
export { MerkleRangeError } from './errors.js';
export { EMPTY_ROOT, HASH_SIZE, hashesEqual, leafHash, nodeHash } from './hash.js';
export { rootFromInclusionProof, verifyInclusion } from './inclusion.js';
export {
  consistencyProofNodes,
  hashFromPerfectSubtrees,
  inclusionProofNodes,
  isPerfectSubtree,
  type NodeRange,
  perfectSubtrees,
} from './proof-nodes.js';
export { MerkleTree } from './reference-tree.js';
