/**
 * A proof or tree hash was asked for outside the tree: an index at or past the size, a first size
 * past the second, a consistency proof from the empty tree, a size that is not a safe integer.
 * Thrown by the side that builds proofs (the reference tree, the proof-layout helpers), where the
 * arguments come from a request; the log service maps it to OUT_OF_RANGE. Verifiers never throw:
 * they return false.
 */
export class MerkleRangeError extends RangeError {
  override readonly name = 'MerkleRangeError';
}
