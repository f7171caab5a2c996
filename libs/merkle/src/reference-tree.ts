// An in-memory Merkle tree that follows the RFC 9162 §2.1 definitions literally: MTH (§2.1.1), PATH
// (§2.1.3.1) and PROOF/SUBPROOF (§2.1.4.1), as recursions over leaf ranges. It is the independent
// yardstick for the log's proofs in tests, and small enough to audit against the RFC text. Hashes of
// perfect subtrees are memoised (they never change once their leaves exist), so after the first root
// a proof costs O(log² n) hashes even at 2^16 leaves and more.
import { MerkleRangeError } from './errors.js';
import { EMPTY_ROOT, HASH_SIZE, leafHash, nodeHash } from './hash.js';
import { hashFromPerfectSubtrees, isPerfectSubtree, type NodeRange, perfectSubtrees } from './proof-nodes.js';
import { largestPowerOfTwoBelow, requireTreeSize } from './sizes.js';

export class MerkleTree {
  readonly #leaves: Uint8Array[] = [];
  // width → j → MTH of the perfect subtree [j·width, (j+1)·width), for widths of 2 and up.
  readonly #perfect = new Map<number, Uint8Array[]>();

  /** The number of leaves appended so far. */
  get size(): number {
    return this.#leaves.length;
  }

  /** Appends a leaf holding `data`; returns its index. */
  append(data: Uint8Array): number {
    return this.appendLeafHash(leafHash(data));
  }

  /** Appends a leaf by its hash (as a log that stores leaf hashes does); returns its index. */
  appendLeafHash(hash: Uint8Array): number {
    if (hash.length !== HASH_SIZE) throw new MerkleRangeError(`a leaf hash has ${HASH_SIZE} bytes, not ${hash.length}`);
    this.#leaves.push(hash);
    return this.#leaves.length - 1;
  }

  /** The hash of leaf `index`. */
  leafHash(index: number): Uint8Array {
    this.#requireRange(index, index + 1);
    return this.#leaves[index] as Uint8Array;
  }

  /** MTH(D[0:size]): the root of the tree when it held its first `size` leaves. */
  root(size: number = this.size): Uint8Array {
    this.#requireRange(0, size);
    return this.rangeHash(0, size);
  }

  /** MTH(D[start:end]), by the RFC 9162 §2.1.1 recursion; MTH({}) for an empty range. */
  rangeHash(start: number, end: number): Uint8Array {
    this.#requireRange(start, end);
    const n = end - start;
    if (n === 0) return EMPTY_ROOT;
    if (n === 1) return this.#leaves[start] as Uint8Array;
    if (isPerfectSubtree({ start, end })) return this.#perfectHash(n, start / n);
    const k = largestPowerOfTwoBelow(n);
    return nodeHash(this.rangeHash(start, start + k), this.rangeHash(start + k, end));
  }

  /** PATH(index, D[0:size]): the inclusion proof of leaf `index` in the tree of `size` leaves. */
  inclusionProof(index: number, size: number = this.size): Uint8Array[] {
    this.#requireRange(0, size);
    requireTreeSize(index, 'leaf index');
    if (index >= size) throw new MerkleRangeError(`leaf index ${index} is not in a tree of size ${size}`);
    return this.#path(index, 0, size);
  }

  /** PROOF(size1, D[0:size2]): the consistency proof between the trees of `size1` and `size2` leaves. */
  consistencyProof(size1: number, size2: number = this.size): Uint8Array[] {
    this.#requireRange(0, size2);
    requireTreeSize(size1, 'first tree size');
    if (size1 === 0) throw new MerkleRangeError('no consistency proof from the empty tree');
    if (size1 > size2) throw new MerkleRangeError(`first tree size ${size1} is past second tree size ${size2}`);
    return this.#subproof(size1, 0, size2, true);
  }

  /**
   * The hashes of `nodes` (from inclusionProofNodes / consistencyProofNodes), each built only from
   * perfect-subtree hashes, the way the log service answers from its stored subtrees.
   */
  proofFromNodes(nodes: readonly NodeRange[]): Uint8Array[] {
    return nodes.map(({ start, end }) => {
      this.#requireRange(start, end);
      return hashFromPerfectSubtrees(
        perfectSubtrees(start, end).map((p) => this.#perfectHash(p.end - p.start, p.start / (p.end - p.start))),
      );
    });
  }

  // MTH of the perfect subtree of `width` leaves at position `j`: its two halves' hashes joined
  // (memoised).
  #perfectHash(width: number, j: number): Uint8Array {
    if (width === 1) return this.#leaves[j] as Uint8Array;
    let row = this.#perfect.get(width);
    if (row === undefined) this.#perfect.set(width, (row = []));
    let hash = row[j];
    if (hash === undefined) {
      hash = nodeHash(this.#perfectHash(width / 2, 2 * j), this.#perfectHash(width / 2, 2 * j + 1));
      row[j] = hash;
    }
    return hash;
  }

  // PATH(m, D[start:end]) of RFC 9162 §2.1.3.1, with m relative to start.
  #path(m: number, start: number, end: number): Uint8Array[] {
    const n = end - start;
    if (n === 1) return [];
    const k = largestPowerOfTwoBelow(n);
    if (m < k) return [...this.#path(m, start, start + k), this.rangeHash(start + k, end)];
    return [...this.#path(m - k, start + k, end), this.rangeHash(start, start + k)];
  }

  // SUBPROOF(m, D[start:end], b) of RFC 9162 §2.1.4.1, with m relative to start.
  #subproof(m: number, start: number, end: number, b: boolean): Uint8Array[] {
    const n = end - start;
    if (m === n) return b ? [] : [this.rangeHash(start, end)];
    const k = largestPowerOfTwoBelow(n);
    if (m <= k) return [...this.#subproof(m, start, start + k, b), this.rangeHash(start + k, end)];
    return [...this.#subproof(m - k, start + k, end, false), this.rangeHash(start, start + k)];
  }

  #requireRange(start: number, end: number): void {
    requireTreeSize(start, 'range start');
    requireTreeSize(end, 'range end');
    if (start > end || end > this.size) {
      throw new MerkleRangeError(`[${start}, ${end}) is not within the ${this.size} leaves of the tree`);
    }
  }
}
