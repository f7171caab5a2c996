import assert from 'node:assert/strict';
import { createDecipheriv, randomBytes, randomInt } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CryptoFormatError, CryptoUsageError } from './errors.js';
import {
  FILE_CHUNK_BYTES,
  FILE_TAG_BYTES,
  ciphertextOffsetToChunk,
  decryptFileChunks,
  encryptFileChunks,
  fileChunkCount,
  fileCiphertextSize,
  newFileKey,
} from './file-encryption.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SEALED = FILE_CHUNK_BYTES + FILE_TAG_BYTES;

/** Yields `bytes` in pieces of the given size, or of random sizes (0 included) up to `maxPiece`. */
async function* pieces(bytes: Uint8Array, size: number | { maxPiece: number }): AsyncGenerator<Uint8Array> {
  let at = 0;
  while (at < bytes.length) {
    const n = typeof size === 'number' ? size : randomInt(0, size.maxPiece + 1);
    yield bytes.subarray(at, at + n);
    at += n;
  }
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<{ bytes: Buffer; sizes: number[] }> {
  const parts: Uint8Array[] = [];
  for await (const c of chunks) parts.push(c);
  return { bytes: Buffer.concat(parts), sizes: parts.map((p) => p.length) };
}

async function encrypt(key: Uint8Array, plaintext: Uint8Array, pieceSize: number | { maxPiece: number } = 10_000) {
  return (await collect(encryptFileChunks(key, pieces(plaintext, pieceSize), plaintext.length))).bytes;
}

/** Decrypts, keeping what was yielded before a failure. */
async function decryptUntilError(key: Uint8Array, ciphertext: Uint8Array, plaintextBytes: number, pieceSize = 7_000) {
  const yielded: Uint8Array[] = [];
  try {
    for await (const p of decryptFileChunks(key, pieces(ciphertext, pieceSize), plaintextBytes)) yielded.push(p);
  } catch (err) {
    return { yielded, err };
  }
  return { yielded, err: undefined };
}

async function assertRejected(
  key: Uint8Array,
  ciphertext: Uint8Array,
  plaintextBytes: number,
  message: RegExp,
): Promise<Uint8Array[]> {
  const { yielded, err } = await decryptUntilError(key, ciphertext, plaintextBytes);
  assert.ok(err instanceof CryptoFormatError, `expected a CryptoFormatError, got ${String(err)}`);
  assert.match(err.message, message);
  return yielded;
}

describe('file encryption', () => {
  it('round-trips files at and around the chunk boundaries, with ciphertext of the stated size', async () => {
    const key = newFileKey();
    for (const size of [0, 1, FILE_CHUNK_BYTES - 1, FILE_CHUNK_BYTES, FILE_CHUNK_BYTES + 1, 3 * FILE_CHUNK_BYTES]) {
      const plaintext = randomBytes(size);
      const { bytes: ciphertext, sizes } = await collect(encryptFileChunks(key, pieces(plaintext, 4096), size));
      assert.equal(ciphertext.length, fileCiphertextSize(size), `ciphertext of ${size}`);
      assert.equal(sizes.length, fileChunkCount(size), `chunks of ${size}`);
      assert.ok(
        sizes.every((s) => s <= SEALED),
        'no chunk over 64 KiB + tag',
      );
      // A random prefix of 16+ bytes turns up in the ciphertext by chance practically never; one byte
      // would, one time in fifteen.
      if (size >= 16) assert.ok(!ciphertext.includes(plaintext.subarray(0, Math.min(size, 32))), 'not plaintext');
      const { bytes: decrypted } = await collect(decryptFileChunks(key, pieces(ciphertext, 5000), size));
      assert.deepEqual(decrypted, plaintext, `round trip of ${size}`);
    }
  });

  it('round-trips ~5 MiB fed and read back in random piece sizes', async () => {
    const key = newFileKey();
    const plaintext = randomBytes(5 * MiB + randomInt(0, FILE_CHUNK_BYTES));
    const ciphertext = await encrypt(key, plaintext, { maxPiece: 200_000 });
    assert.equal(ciphertext.length, fileCiphertextSize(plaintext.length));
    // The same key and file give the same ciphertext however the source is cut (what resuming relies on).
    assert.deepEqual(await encrypt(key, plaintext, { maxPiece: 3000 }), ciphertext);
    const parts: Uint8Array[] = [];
    let largest = 0;
    for await (const p of decryptFileChunks(key, pieces(ciphertext, { maxPiece: 300_000 }), plaintext.length)) {
      largest = Math.max(largest, p.length);
      parts.push(p);
    }
    assert.ok(largest <= FILE_CHUNK_BYTES, 'yields one chunk at a time');
    assert.deepEqual(Buffer.concat(parts), plaintext);
  });

  it('seals chunks exactly as the format states (nonce = u64 BE index || 0 0 0 || last)', async () => {
    const key = newFileKey();
    const plaintext = randomBytes(2 * FILE_CHUNK_BYTES + 3);
    const c = await encrypt(key, plaintext);
    const open = (index: number, last: number, sealed: Uint8Array) => {
      const nonce = Buffer.alloc(12);
      nonce.writeBigUInt64BE(BigInt(index));
      nonce[11] = last;
      const d = createDecipheriv('aes-256-gcm', key, nonce);
      d.setAuthTag(sealed.subarray(sealed.length - FILE_TAG_BYTES));
      return Buffer.concat([d.update(sealed.subarray(0, sealed.length - FILE_TAG_BYTES)), d.final()]);
    };
    assert.deepEqual(
      open(1, 0, c.subarray(SEALED, 2 * SEALED)),
      plaintext.subarray(FILE_CHUNK_BYTES, 2 * FILE_CHUNK_BYTES),
    );
    assert.deepEqual(open(2, 1, c.subarray(2 * SEALED)), plaintext.subarray(2 * FILE_CHUNK_BYTES));
    assert.throws(() => open(2, 0, c.subarray(2 * SEALED)), 'the last chunk is sealed with last = 1');
  });

  it('uses a fresh 32-byte key each time', () => {
    const a = newFileKey();
    const b = newFileKey();
    assert.equal(a.length, 32);
    assert.notDeepEqual(a, b);
  });

  it('maps ciphertext offsets to the chunk holding them', () => {
    const size = 3 * FILE_CHUNK_BYTES + 100;
    assert.deepEqual(ciphertextOffsetToChunk(size, 0), { chunkIndex: 0, plaintextOffset: 0, skipBytes: 0 });
    assert.deepEqual(ciphertextOffsetToChunk(size, SEALED - 1), {
      chunkIndex: 0,
      plaintextOffset: 0,
      skipBytes: SEALED - 1,
    });
    assert.deepEqual(ciphertextOffsetToChunk(size, 2 * SEALED + 5), {
      chunkIndex: 2,
      plaintextOffset: 2 * FILE_CHUNK_BYTES,
      skipBytes: 5,
    });
    assert.deepEqual(ciphertextOffsetToChunk(size, fileCiphertextSize(size)), {
      chunkIndex: 4,
      plaintextOffset: size,
      skipBytes: 0,
    });
    assert.throws(() => ciphertextOffsetToChunk(size, fileCiphertextSize(size) + 1), CryptoUsageError);
    assert.throws(() => ciphertextOffsetToChunk(size, -1), CryptoUsageError);
  });

  it('resumes at any ciphertext offset with exactly the full ciphertext from there, reading only from that chunk on', async () => {
    const key = newFileKey();
    const size = 5 * FILE_CHUNK_BYTES + 1234;
    const plaintext = randomBytes(size);
    const full = await encrypt(key, plaintext);
    const total = full.length;
    const offsets = [0, 1, SEALED - 1, SEALED, SEALED + 1, 3 * SEALED, 3 * SEALED + 777, 5 * SEALED, total - 1, total];
    for (const offset of offsets) {
      const { plaintextOffset, chunkIndex } = ciphertextOffsetToChunk(size, offset);
      // The source starts where the chunk's plaintext does, as a file opened at that position would.
      const source = pieces(plaintext.subarray(plaintextOffset), 9999);
      const { bytes, sizes } = await collect(encryptFileChunks(key, source, size, { fromCiphertextOffset: offset }));
      assert.deepEqual(bytes, full.subarray(offset), `from offset ${offset}`);
      assert.equal(sizes.length, fileChunkCount(size) - chunkIndex, `chunks made from offset ${offset}`);
    }
  });

  it('resumes from a file opened where the chunk starts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qpq-file-enc-'));
    try {
      const path = join(dir, 'photo.jpg');
      const plaintext = randomBytes(MiB + 4321);
      await writeFile(path, plaintext);
      const key = newFileKey();
      const full = (await collect(encryptFileChunks(key, createReadStream(path), plaintext.length))).bytes;
      const stored = Math.floor(full.length / 2) + 3; // the server kept this much before the cut
      const { plaintextOffset } = ciphertextOffsetToChunk(plaintext.length, stored);
      const source = createReadStream(path, { start: plaintextOffset });
      const rest = await collect(encryptFileChunks(key, source, plaintext.length, { fromCiphertextOffset: stored }));
      assert.deepEqual(Buffer.concat([full.subarray(0, stored), rest.bytes]), full);
      const back = await collect(decryptFileChunks(key, pieces(full, 16 * KiB + 1), plaintext.length));
      assert.deepEqual(back.bytes, plaintext);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a source that yields more or fewer bytes than declared, before yielding the last chunk', async () => {
    const key = newFileKey();
    const plaintext = randomBytes(2 * FILE_CHUNK_BYTES + 10);
    const longer = await collect(encryptFileChunks(key, pieces(plaintext, 1000), plaintext.length - 1)).catch(
      (e: unknown) => e,
    );
    assert.ok(longer instanceof CryptoUsageError);
    assert.match(longer.message, /more than the 131081 bytes declared/);
    const shorter = await collect(encryptFileChunks(key, pieces(plaintext, 1000), plaintext.length + 1)).catch(
      (e: unknown) => e,
    );
    assert.ok(shorter instanceof CryptoUsageError);
    assert.match(shorter.message, /ended after 131082 bytes, not the 131083 declared/);

    let yielded = 0;
    await assert.rejects(async () => {
      for await (const _ of encryptFileChunks(key, pieces(plaintext, 1000), plaintext.length - 1)) yielded++;
    }, CryptoUsageError);
    assert.equal(yielded, 2, 'the last chunk is held back until the source has ended');
  });

  it('names the corrupted chunk and yields nothing from it on', async () => {
    const key = newFileKey();
    const plaintext = randomBytes(6 * FILE_CHUNK_BYTES);
    const ciphertext = await encrypt(key, plaintext);
    const corrupted = Buffer.from(ciphertext);
    corrupted[3 * SEALED + 100]! ^= 0x01;
    const yielded = await assertRejected(
      key,
      corrupted,
      plaintext.length,
      /^file chunk 3 failed authentication \(corrupted or tampered\)$/,
    );
    assert.equal(yielded.length, 3, 'chunks 0, 1 and 2 only');
    assert.deepEqual(Buffer.concat(yielded), plaintext.subarray(0, 3 * FILE_CHUNK_BYTES));

    const badTag = Buffer.from(ciphertext);
    badTag[6 * SEALED - 1]! ^= 0x80;
    await assertRejected(key, badTag, plaintext.length, /^file chunk 5 failed authentication/);
  });

  it('refuses swapped chunks', async () => {
    const key = newFileKey();
    const plaintext = randomBytes(4 * FILE_CHUNK_BYTES);
    const c = await encrypt(key, plaintext);
    const chunk = (i: number) => c.subarray(i * SEALED, (i + 1) * SEALED);
    const swapped = Buffer.concat([chunk(0), chunk(2), chunk(1), chunk(3)]);
    const yielded = await assertRejected(key, swapped, plaintext.length, /^file chunk 1 failed authentication/);
    assert.equal(yielded.length, 1);
  });

  it('refuses a truncated last chunk and extra bytes after it', async () => {
    const key = newFileKey();
    const plaintext = randomBytes(2 * FILE_CHUNK_BYTES + 500);
    const c = await encrypt(key, plaintext);
    const yielded = await assertRejected(
      key,
      c.subarray(0, c.length - 1),
      plaintext.length,
      /^file ends early \(expected 3 chunks, 131620 bytes; got 131619 bytes, ending in chunk 2\)$/,
    );
    assert.equal(yielded.length, 2);
    const extra = await assertRejected(
      key,
      Buffer.concat([c, Buffer.from([0])]),
      plaintext.length,
      /^file has bytes after its last chunk/,
    );
    assert.equal(extra.length, 2, 'the last chunk is held back until the end is checked');
  });

  it('refuses a file whose final chunk was dropped, even when the size is made to match (the last flag)', async () => {
    const key = newFileKey();
    const plaintext = randomBytes(3 * FILE_CHUNK_BYTES);
    const c = await encrypt(key, plaintext);
    const dropped = c.subarray(0, 2 * SEALED);
    // With the size the sender stated, the file is short.
    await assertRejected(key, dropped, plaintext.length, /^file ends early \(expected 3 chunks/);
    // With a size that fits the two chunks left, chunk 1 is read as the last one, which it was not sealed as.
    await assertRejected(key, dropped, 2 * FILE_CHUNK_BYTES, /^file chunk 1 failed authentication/);
  });

  it('refuses another key, and keys of the wrong length', async () => {
    const plaintext = randomBytes(1000);
    const c = await encrypt(newFileKey(), plaintext);
    await assertRejected(newFileKey(), c, plaintext.length, /^file chunk 0 failed authentication/);
    await assert.rejects(collect(encryptFileChunks(new Uint8Array(16), pieces(plaintext, 10), 1000)), CryptoUsageError);
    await assert.rejects(collect(decryptFileChunks(new Uint8Array(31), pieces(c, 10), 1000)), CryptoUsageError);
  });

  it('closes the source when the consumer stops early', async () => {
    let closed = false;
    async function* source() {
      try {
        for (;;) yield new Uint8Array(FILE_CHUNK_BYTES);
      } finally {
        closed = true;
      }
    }
    for await (const _ of encryptFileChunks(newFileKey(), source(), 10 * FILE_CHUNK_BYTES)) break;
    assert.ok(closed);
  });

  it('encrypts and decrypts 50 MiB at a reported speed', async (t) => {
    const key = newFileKey();
    const piece = randomBytes(FILE_CHUNK_BYTES);
    const size = 50 * MiB;
    async function* source() {
      for (let i = 0; i < size / piece.length; i++) yield piece;
    }
    const rate = (started: number) => {
      const seconds = (performance.now() - started) / 1000;
      return `${(size / MiB / seconds).toFixed(0)} MiB/s (${seconds.toFixed(2)} s)`;
    };

    let started = performance.now();
    const ciphertext: Uint8Array[] = [];
    for await (const c of encryptFileChunks(key, source(), size)) ciphertext.push(c);
    t.diagnostic(`encrypt 50 MiB: ${rate(started)}`);
    assert.equal(
      ciphertext.reduce((n, c) => n + c.length, 0),
      fileCiphertextSize(size),
    );

    async function* sealed() {
      yield* ciphertext;
    }
    started = performance.now();
    let plaintextBytes = 0;
    for await (const p of decryptFileChunks(key, sealed(), size)) plaintextBytes += p.length;
    t.diagnostic(`decrypt 50 MiB: ${rate(started)}`);
    assert.equal(plaintextBytes, size);
  });
});
