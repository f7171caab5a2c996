// Files are encrypted before upload with a fresh 32-byte key, in 64 KiB chunks of AES-256-GCM (the
// STREAM construction, as age and Tink's streaming AEAD do): chunk i is sealed under the nonce
// u64 BE i || 0x00 0x00 0x00 || last, where last is 0x01 for the final chunk and 0x00 otherwise.
// Each chunk is checked on its own, so a corrupted chunk is caught where it is, a reordered or dropped
// chunk fails, and a file cut short fails at its end; and any chunk can be made again from (key, i)
// alone, so an upload resumes at any offset without keeping the ciphertext. A key is used for one file
// only, so a nonce never repeats under a key.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CryptoFormatError, CryptoUsageError } from './errors.js';

/** Plaintext bytes per chunk (the last one may be shorter, and is empty for an empty file). */
export const FILE_CHUNK_BYTES = 64 * 1024;
/** The AES-GCM tag each chunk carries. */
export const FILE_TAG_BYTES = 16;
/** Bytes of a file key. */
export const FILE_KEY_BYTES = 32;

/** Chunks a file of `plaintextBytes` is sealed in: at least one (an empty file is one empty chunk). */
export function fileChunkCount(plaintextBytes: number): number {
  if (!Number.isSafeInteger(plaintextBytes) || plaintextBytes < 0) {
    throw new RangeError(`a file size is a non-negative integer, not ${plaintextBytes}`);
  }
  return Math.max(1, Math.ceil(plaintextBytes / FILE_CHUNK_BYTES));
}

/** The ciphertext size of a file of `plaintextBytes`: the plaintext plus one tag per chunk. */
export function fileCiphertextSize(plaintextBytes: number): number {
  return plaintextBytes + FILE_TAG_BYTES * fileChunkCount(plaintextBytes);
}

/** Ciphertext bytes of every chunk but the last (which may be shorter). */
const FULL_CHUNK_CIPHERTEXT_BYTES = FILE_CHUNK_BYTES + FILE_TAG_BYTES;

/** A fresh file key: 32 random bytes, for one file only. */
export function newFileKey(): Uint8Array {
  return new Uint8Array(randomBytes(FILE_KEY_BYTES));
}

/** Where a ciphertext offset falls: the chunk holding it, that chunk's plaintext start, and how far into its ciphertext. */
export interface FileChunkPosition {
  /** The chunk the offset falls in (the chunk count when the offset is the end of the file). */
  chunkIndex: number;
  /** Where that chunk's plaintext starts in the file: open the source here. */
  plaintextOffset: number;
  /** Bytes of that chunk's ciphertext before the offset. */
  skipBytes: number;
}

/**
 * Maps an offset in the ciphertext of a file of `plaintextBytes` to the chunk it falls in. Every chunk
 * but the last is the same size, so this is arithmetic; the end of the file maps to one past the last
 * chunk (nothing left to make).
 */
export function ciphertextOffsetToChunk(plaintextBytes: number, ciphertextOffset: number): FileChunkPosition {
  const total = fileCiphertextSize(plaintextBytes);
  if (!Number.isSafeInteger(ciphertextOffset) || ciphertextOffset < 0 || ciphertextOffset > total) {
    throw new CryptoUsageError(`ciphertext offset ${ciphertextOffset} is outside the file's ${total} bytes`);
  }
  if (ciphertextOffset === total) {
    return { chunkIndex: fileChunkCount(plaintextBytes), plaintextOffset: plaintextBytes, skipBytes: 0 };
  }
  const chunkIndex = Math.floor(ciphertextOffset / FULL_CHUNK_CIPHERTEXT_BYTES);
  return {
    chunkIndex,
    plaintextOffset: chunkIndex * FILE_CHUNK_BYTES,
    skipBytes: ciphertextOffset - chunkIndex * FULL_CHUNK_CIPHERTEXT_BYTES,
  };
}

export interface EncryptFileOptions {
  /**
   * Produce the ciphertext from this offset on (a resumed upload: the bytes the server already holds).
   * The source must then start at `ciphertextOffsetToChunk(plaintextBytes, offset).plaintextOffset`;
   * the chunks before it are not encrypted at all, and the part of the first chunk before the offset is
   * dropped here, so the caller gets exactly the ciphertext's bytes from `offset`.
   */
  fromCiphertextOffset?: number;
}

/**
 * Encrypts a file of `plaintextBytes` read from `source` (pieces of any size, e.g. a file's read stream)
 * and yields its ciphertext, one chunk (at most 64 KiB + 16) at a time; the concatenation is
 * `fileCiphertextSize(plaintextBytes)` bytes. The size must be known up front because the last chunk is
 * sealed differently: a source that yields more or fewer bytes (the file changed) throws a
 * CryptoUsageError, and the last chunk is only yielded once the source has ended. Holds one chunk.
 *
 * @example
 * // A new upload, hashing as it goes:
 * const key = newFileKey();
 * const sha = createHash('sha256');
 * for await (const c of encryptFileChunks(key, createReadStream(path), size)) { sha.update(c); send(c); }
 *
 * // Resuming after the server stored `stored` bytes:
 * const { plaintextOffset } = ciphertextOffsetToChunk(size, stored);
 * const source = createReadStream(path, { start: plaintextOffset });
 * for await (const c of encryptFileChunks(key, source, size, { fromCiphertextOffset: stored })) send(c);
 */
export async function* encryptFileChunks(
  key: Uint8Array,
  source: AsyncIterable<Uint8Array>,
  plaintextBytes: number,
  options: EncryptFileOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  checkKey(key);
  const count = fileChunkCount(plaintextBytes);
  const start = ciphertextOffsetToChunk(plaintextBytes, options.fromCiphertextOffset ?? 0);
  const reader = new ExactReader(source);
  try {
    const plaintext = new Uint8Array(FILE_CHUNK_BYTES);
    let read = start.plaintextOffset;
    for (let index = start.chunkIndex; index < count; index++) {
      const length = chunkPlaintextBytes(plaintextBytes, index);
      const got = await reader.fill(plaintext.subarray(0, length));
      read += got;
      if (got < length) {
        throw new CryptoUsageError(`the file ended after ${read} bytes, not the ${plaintextBytes} declared`);
      }
      const last = index === count - 1;
      if (last && !(await reader.atEnd())) {
        throw new CryptoUsageError(`the file has more than the ${plaintextBytes} bytes declared`);
      }
      const sealed = sealChunk(key, index, last, plaintext.subarray(0, length));
      yield index === start.chunkIndex && start.skipBytes > 0 ? sealed.subarray(start.skipBytes) : sealed;
    }
    // Resuming at the very end makes no chunk; the source must still hold nothing more.
    if (start.chunkIndex === count && !(await reader.atEnd())) {
      throw new CryptoUsageError(`the file has more than the ${plaintextBytes} bytes declared`);
    }
  } finally {
    await reader.close();
  }
}

/**
 * Decrypts a file of `plaintextBytes` (as its FileRef states) from its ciphertext in pieces of any size
 * (e.g. network chunks) and yields its plaintext, one verified chunk at a time: nothing of a chunk is
 * yielded before its tag checks. Throws a CryptoFormatError naming the chunk that fails authentication
 * (corrupted, reordered, or from another file or key), when the ciphertext ends early, or when bytes
 * follow the last chunk. Holds one chunk.
 *
 * @example
 * const out = createWriteStream(tmpPath);
 * for await (const plain of decryptFileChunks(ref.key, downloadStream, Number(ref.size))) out.write(plain);
 */
export async function* decryptFileChunks(
  key: Uint8Array,
  source: AsyncIterable<Uint8Array>,
  plaintextBytes: number,
): AsyncGenerator<Uint8Array, void, undefined> {
  checkKey(key);
  const count = fileChunkCount(plaintextBytes);
  const total = fileCiphertextSize(plaintextBytes);
  const reader = new ExactReader(source);
  try {
    const ciphertext = new Uint8Array(FULL_CHUNK_CIPHERTEXT_BYTES);
    let read = 0;
    for (let index = 0; index < count; index++) {
      const length = chunkPlaintextBytes(plaintextBytes, index) + FILE_TAG_BYTES;
      const got = await reader.fill(ciphertext.subarray(0, length));
      read += got;
      if (got < length) {
        throw new CryptoFormatError(
          `file ends early (expected ${count} chunks, ${total} bytes; got ${read} bytes, ending in chunk ${index})`,
        );
      }
      const last = index === count - 1;
      const plaintext = openChunk(key, index, last, ciphertext.subarray(0, length));
      if (last && !(await reader.atEnd())) {
        throw new CryptoFormatError(`file has bytes after its last chunk (expected ${total} bytes)`);
      }
      yield plaintext;
    }
  } finally {
    await reader.close();
  }
}

function checkKey(key: Uint8Array): void {
  if (key.length !== FILE_KEY_BYTES) {
    throw new CryptoUsageError(`a file key is ${FILE_KEY_BYTES} bytes, not ${key.length}`);
  }
}

function chunkPlaintextBytes(plaintextBytes: number, index: number): number {
  return Math.min(FILE_CHUNK_BYTES, plaintextBytes - index * FILE_CHUNK_BYTES);
}

function chunkNonce(index: number, last: boolean): Uint8Array {
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setBigUint64(0, BigInt(index));
  nonce[11] = last ? 1 : 0;
  return nonce;
}

function sealChunk(key: Uint8Array, index: number, last: boolean, plaintext: Uint8Array): Uint8Array {
  const cipher = createCipheriv('aes-256-gcm', key, chunkNonce(index, last));
  const body = cipher.update(plaintext);
  cipher.final(); // GCM holds nothing back: final() only computes the tag
  const sealed = new Uint8Array(plaintext.length + FILE_TAG_BYTES);
  sealed.set(body);
  sealed.set(cipher.getAuthTag(), plaintext.length);
  return sealed;
}

function openChunk(key: Uint8Array, index: number, last: boolean, sealed: Uint8Array): Uint8Array {
  const bodyLength = sealed.length - FILE_TAG_BYTES;
  const decipher = createDecipheriv('aes-256-gcm', key, chunkNonce(index, last));
  decipher.setAuthTag(sealed.subarray(bodyLength));
  const plaintext = new Uint8Array(bodyLength);
  plaintext.set(decipher.update(sealed.subarray(0, bodyLength)));
  try {
    decipher.final();
  } catch (err) {
    // The plaintext decrypted so far is unauthenticated: drop it rather than hand it out.
    plaintext.fill(0);
    throw new CryptoFormatError(`file chunk ${index} failed authentication (corrupted or tampered)`, { cause: err });
  }
  return plaintext;
}

/**
 * Reads exact byte counts out of a stream of arbitrarily sized pieces, holding one piece at most, and
 * closes the stream (e.g. a file handle) when the reader is done, whether or not it was read to the end.
 */
class ExactReader {
  private readonly pieces: AsyncIterator<Uint8Array>;
  private piece: Uint8Array = new Uint8Array(0);
  private at = 0;
  private ended = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.pieces = source[Symbol.asyncIterator]();
  }

  /** Fills `into` from the stream; returns how many bytes it got (fewer only when the stream ended). */
  async fill(into: Uint8Array): Promise<number> {
    let filled = 0;
    while (filled < into.length) {
      if (this.at === this.piece.length && !(await this.nextPiece())) break;
      const n = Math.min(into.length - filled, this.piece.length - this.at);
      into.set(this.piece.subarray(this.at, this.at + n), filled);
      this.at += n;
      filled += n;
    }
    return filled;
  }

  /** Whether the stream has no bytes left (empty pieces do not count). */
  async atEnd(): Promise<boolean> {
    return this.at === this.piece.length && !(await this.nextPiece());
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.pieces.return?.();
  }

  /** Moves to the next non-empty piece; false at the end of the stream. */
  private async nextPiece(): Promise<boolean> {
    while (!this.ended) {
      const next = await this.pieces.next();
      if (next.done) {
        this.ended = true;
        return false;
      }
      this.piece = next.value;
      this.at = 0;
      if (this.piece.length > 0) return true;
    }
    return false;
  }
}
