/**
 * Errors of the crypto core. They carry no gRPC status on purpose: this library runs in clients and
 * must not depend on the service runtime. A service maps them itself (a CryptoFormatError in a
 * request is INVALID_ARGUMENT; anything else is INTERNAL).
 */
export class CryptoError extends Error {
  override readonly name: string = 'CryptoError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Bytes that do not decode as what they claim to be, or whose contents are not acceptable (suite, identity, signature). */
export class CryptoFormatError extends CryptoError {
  override readonly name: string = 'CryptoFormatError';
}

/** A Welcome names none of the KeyPackages this device still holds. */
export class NoMatchingKeyPackageError extends CryptoError {
  override readonly name: string = 'NoMatchingKeyPackageError';
}

/** The caller asked for something impossible (bad argument, wrong state for the call). */
export class CryptoUsageError extends CryptoError {
  override readonly name: string = 'CryptoUsageError';
}

/**
 * An incoming MLS message that decodes but that MLS refuses: a replay, a message from an epoch this
 * state no longer holds keys for, a bad signature, a commit that does not apply.
 */
export class MessageRejectedError extends CryptoError {
  override readonly name: string = 'MessageRejectedError';
}
