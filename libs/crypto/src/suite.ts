import { type CiphersuiteImpl, getCiphersuiteFromName, getCiphersuiteImpl } from 'ts-mls';

/**
 * The one MLS ciphersuite qpq speaks: X-Wing (X25519 + ML-KEM-768) KEM, AES-256-GCM, SHA-512, Ed25519.
 * Its numeric code point has changed between ts-mls versions, so compare by name, never by number.
 */
export const CIPHERSUITE_NAME = 'MLS_256_XWING_AES256GCM_SHA512_Ed25519' as const;

let cached: Promise<CiphersuiteImpl> | undefined;

/** The ciphersuite implementation, built once per process (the first call dynamically imports the KEM, ~50 ms). */
export async function cipherSuite(): Promise<CiphersuiteImpl> {
  cached ??= getCiphersuiteImpl(getCiphersuiteFromName(CIPHERSUITE_NAME)).catch((err: unknown) => {
    cached = undefined; // let a later call retry instead of caching the failure forever
    throw err;
  });
  return cached;
}
