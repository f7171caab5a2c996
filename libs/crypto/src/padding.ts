// Size buckets for envelopes, so the server and the network see only a coarse size: 256 B … 16 KiB in
// powers of two, then multiples of 16 KiB. Encoding: u32 BE real length || bytes || zero fill.
import { CryptoFormatError, CryptoUsageError } from './errors.js';

const LENGTH_PREFIX = 4;
const SMALLEST_BUCKET = 256;
const LARGE_STEP = 16 * 1024;
const MAX_CONTENT_LENGTH = 0xffffffff;

/** The padded size for content of this length (length prefix included). */
export function bucketSize(contentLength: number): number {
  const needed = LENGTH_PREFIX + contentLength;
  if (needed > LARGE_STEP) return Math.ceil(needed / LARGE_STEP) * LARGE_STEP;
  let bucket = SMALLEST_BUCKET;
  while (bucket < needed) bucket *= 2;
  return bucket;
}

/** Pads to the smallest bucket that holds the 4-byte length prefix and the bytes. */
export function padToBucket(bytes: Uint8Array): Uint8Array {
  if (bytes.length > MAX_CONTENT_LENGTH) throw new CryptoUsageError('too large to pad');
  const out = new Uint8Array(bucketSize(bytes.length)); // zero filled
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, LENGTH_PREFIX);
  return out;
}

/**
 * Whether `bytes` has the shape of padToBucket's output (its length prefix fits and names this
 * bucket), checked without throwing: a cheap first look for code that meets opaque bytes too.
 */
export function looksPadded(bytes: Uint8Array): boolean {
  if (bytes.length < SMALLEST_BUCKET) return false;
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  return LENGTH_PREFIX + length <= bytes.length && bucketSize(length) === bytes.length;
}

/**
 * Removes padding. Only the exact output of padToBucket is accepted (right bucket, zero fill), so a
 * padded message has one encoding and nothing can hide in the fill.
 */
export function unpad(bytes: Uint8Array): Uint8Array {
  if (bytes.length < SMALLEST_BUCKET) throw new CryptoFormatError('padded message shorter than the smallest bucket');
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  if (LENGTH_PREFIX + length > bytes.length) throw new CryptoFormatError('padded length exceeds the message');
  if (bucketSize(length) !== bytes.length) throw new CryptoFormatError('padded message is not in its size bucket');
  for (let i = LENGTH_PREFIX + length; i < bytes.length; i++) {
    if (bytes[i] !== 0) throw new CryptoFormatError('padding is not zero');
  }
  return new Uint8Array(bytes.subarray(LENGTH_PREFIX, LENGTH_PREFIX + length));
}
