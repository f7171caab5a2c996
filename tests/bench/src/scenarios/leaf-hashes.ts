/** Bytes of an RFC 9162 (SHA-256) node hash. */
export const HASH_BYTES = 32;

/**
 * The leaf hashes of a log, appended in order, in one preallocated buffer: a million of them as
 * separate Uint8Arrays would cost several times their 32 MB in object headers.
 */
export class LeafHashes {
  private readonly buffer: Buffer;
  private count = 0;

  constructor(readonly capacity: number) {
    this.buffer = Buffer.alloc(capacity * HASH_BYTES);
  }

  get size(): number {
    return this.count;
  }

  push(hash: Uint8Array): void {
    if (hash.length !== HASH_BYTES) throw new Error(`a leaf hash has ${HASH_BYTES} bytes, not ${hash.length}`);
    if (this.count >= this.capacity) throw new Error(`more than ${this.capacity} leaf hashes`);
    this.buffer.set(hash, this.count * HASH_BYTES);
    this.count++;
  }

  at(index: number): Uint8Array {
    if (!(index >= 0 && index < this.count)) throw new Error(`no leaf hash ${index} (have ${this.count})`);
    return this.buffer.subarray(index * HASH_BYTES, (index + 1) * HASH_BYTES);
  }
}
