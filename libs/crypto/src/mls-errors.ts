// How ts-mls failures surface from this package: as our own error kinds, never as ts-mls classes.
import { CryptoError, CryptoUsageError } from './errors.js';
import { MlsError, UsageError } from './ts-mls-internals.js';

/**
 * Maps ts-mls errors onto ours: its UsageError is the caller's mistake; its other errors (validation,
 * codec, signature) become `as`. With `everything`, non-ts-mls failures (e.g. a WebCrypto AEAD failure
 * on a tampered ciphertext) become `as` too; our own errors always pass through.
 */
export function rethrowAs(as: new (message: string, options?: { cause?: unknown }) => CryptoError, everything = false) {
  return (err: unknown): never => {
    if (err instanceof CryptoError) throw err;
    if (err instanceof UsageError) throw new CryptoUsageError(err.message, { cause: err });
    if (err instanceof MlsError || everything)
      throw new as(err instanceof Error ? err.message : String(err), { cause: err });
    throw err;
  };
}
