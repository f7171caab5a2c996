import { InvalidArgumentError, NotFoundError, PermissionDeniedError, ResourceExhaustedError } from '@qpq/runtime';
import { REQUIRED_CIPHER_SUITE } from './key-package-check.js';

export class NotAKeyPackageError extends InvalidArgumentError {
  constructor(which: string) {
    super(`${which} is not an MLS KeyPackage message`);
  }
}

export class WrongCipherSuiteError extends InvalidArgumentError {
  constructor(suite: string) {
    super(`KeyPackage uses cipher suite ${suite}; this server requires ${REQUIRED_CIPHER_SUITE}`);
  }
}

export class BadKeyPackageSignatureError extends InvalidArgumentError {
  constructor(which: string) {
    super(`${which} has an invalid signature`);
  }
}

export class ForeignCredentialError extends PermissionDeniedError {
  constructor(found: string, expected: string) {
    super(`KeyPackage credential names ${JSON.stringify(found)}; this device uploads as ${JSON.stringify(expected)}`);
  }
}

export class TooManyPerUploadError extends InvalidArgumentError {
  constructor(sent: number, max: number) {
    super(`too many KeyPackages in one upload: ${sent}; at most ${max} per upload`);
  }
}

export class KeyPackageTooLargeError extends InvalidArgumentError {
  constructor(which: string, bytes: number, max: number) {
    super(`${which} is ${bytes} bytes; at most ${max} bytes each`);
  }
}

export class DevicePoolFullError extends ResourceExhaustedError {
  constructor(stored: number, max: number) {
    super(`this device already has ${stored} KeyPackages stored; at most ${max}`);
  }
}

export class ClaimRateError extends ResourceExhaustedError {
  constructor(retryAfterMs: number) {
    super(`too many KeyPackage claims; try again in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s`);
  }
}

export class RevokedDeviceError extends PermissionDeniedError {
  constructor() {
    super('this device was revoked; log in as a new device');
  }
}

export class NoKeyPackagesError extends NotFoundError {
  constructor(username: string) {
    super(`no KeyPackages for ${username}`);
  }
}
