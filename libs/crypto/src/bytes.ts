// Small byte helpers shared by the modules of this package (not exported from the package).
import { CryptoFormatError } from './errors.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const utf8 = new TextEncoder();

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function encodeUtf8(s: string): Uint8Array {
  return utf8.encode(s);
}

/** Decodes UTF-8, refusing invalid sequences instead of replacing them (identities must round-trip). */
export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch (err) {
    throw new CryptoFormatError(`${what} is not valid UTF-8`, { cause: err });
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A private copy of caller-owned bytes. ts-mls decoders return views into their input and we zero the
 * secrets an operation consumes, so decoding the caller's buffer directly would scribble on it.
 */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  // Not bytes.slice(): on a Buffer that returns a Buffer, and callers should get plain Uint8Arrays back.
  return new Uint8Array(bytes);
}
