// file.encrypt: what the client's file encryption costs before an upload. The file format
// (libs/crypto file-encryption.ts: 64 KiB chunks, each its own AES-256-GCM seal with a 16-byte tag)
// over bytes in memory, against one AES-256-GCM pass over the same bytes with node:crypto: the ratio
// is what the format adds to the cipher (a cipher and nonce set up per chunk, a copy per chunk, an
// async generator).
import { decryptFileChunks, encryptFileChunks, FILE_CHUNK_BYTES, fileCiphertextSize, newFileKey } from '@qpq/crypto';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import type { Scenario } from '../scenario.js';
import { percentile } from '../stats.js';
import { piecesOf } from './blob-pieces.js';

const MiB = 1024 * 1024;
/** The same sizes as blob.upload. */
const BYTES = 50 * MiB;
const QUICK_BYTES = 16 * MiB;
/** A pass takes tens of milliseconds: enough runs for a steady median, after one not counted. */
const RUNS = 7;

export const fileEncrypt: Scenario = {
  name: 'file.encrypt',
  description: 'client-side file encryption (64 KiB AES-256-GCM chunks) in memory; baseline: one raw AES-256-GCM pass',
  async run(ctx) {
    const bytes = ctx.quick ? QUICK_BYTES : BYTES;
    const data = randomBytes(bytes);
    const key = newFileKey();
    const format: number[] = [];
    const raw: number[] = [];
    // Run 0 warms both up and is not counted; the two alternate so a slowing machine slows both.
    for (let run = 0; run <= RUNS; run++) {
      ctx.signal.throwIfAborted();
      const rawSeconds = rawPass(key, data);
      // The chunks are dropped as they come, as an upload sends them on: kept, 50 MiB of them would
      // make the collector's work part of the figure.
      let sealed = 0;
      const start = performance.now();
      for await (const chunk of encryptFileChunks(key, piecesOf(data, FILE_CHUNK_BYTES), bytes)) {
        sealed += chunk.length;
      }
      const seconds = (performance.now() - start) / 1000;
      if (sealed !== fileCiphertextSize(bytes)) {
        throw new Error(`file.encrypt gave ${sealed} bytes, not the ${fileCiphertextSize(bytes)} of the format`);
      }
      if (run > 0) {
        raw.push(bytes / MiB / rawSeconds);
        format.push(bytes / MiB / seconds);
      }
    }
    await checkRoundTrip(key, data);

    const params = { bytes, runs: RUNS };
    return [
      {
        name: 'aes256gcm.raw',
        value: percentile(raw, 50),
        unit: 'MiB/s',
        params: { ...params, update_bytes: FILE_CHUNK_BYTES, runs_mib_s: rates(raw) },
      },
      {
        name: 'file.encrypt',
        value: percentile(format, 50),
        unit: 'MiB/s',
        params: {
          ...params,
          chunk_bytes: FILE_CHUNK_BYTES,
          ciphertext_bytes: fileCiphertextSize(bytes),
          runs_mib_s: rates(format),
        },
        baseline: 'aes256gcm.raw',
      },
    ];
  },
};

/**
 * One AES-256-GCM seal of all of `data` (one key, one nonce, one tag), fed in the same 64 KiB pieces:
 * the cipher alone. (A single update of the whole buffer is 2–3× slower here: it allocates and
 * touches a 50 MiB output at once.) Returns its seconds.
 */
function rawPass(key: Uint8Array, data: Buffer): number {
  const start = performance.now();
  const cipher = createCipheriv('aes-256-gcm', key, randomBytes(12));
  let sealed = 0;
  for (let at = 0; at < data.length; at += FILE_CHUNK_BYTES) {
    sealed += cipher.update(data.subarray(at, at + FILE_CHUNK_BYTES)).length;
  }
  cipher.final();
  const tag = cipher.getAuthTag();
  const seconds = (performance.now() - start) / 1000;
  if (sealed !== data.length || tag.length !== 16) throw new Error('the raw AES-256-GCM pass gave the wrong size');
  return seconds;
}

/** A figure for an encryption that does not decrypt to its input would be worthless: check it does (not timed). */
async function checkRoundTrip(key: Uint8Array, data: Buffer): Promise<void> {
  const ciphertext: Uint8Array[] = [];
  for await (const chunk of encryptFileChunks(key, piecesOf(data, FILE_CHUNK_BYTES), data.length)) {
    ciphertext.push(chunk);
  }
  const hash = createHash('sha256');
  for await (const plain of decryptFileChunks(key, piecesOf(Buffer.concat(ciphertext), 256 * 1024), data.length)) {
    hash.update(plain);
  }
  if (!hash.digest().equals(createHash('sha256').update(data).digest())) {
    throw new Error('file.encrypt does not decrypt to the bytes encrypted');
  }
}

const rates = (values: readonly number[]) => values.map((r) => r.toFixed(0)).join('/');
