import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
} from '@qpq/runtime';
import { USERNAME_RULE } from '@qpq/crypto';

// Messages are what a person sees in the client: one clear line each, and never a hint that tells
// an unknown username from a wrong password.

export class UsernameTakenError extends AlreadyExistsError {
  constructor() {
    super('username is taken');
  }
}

export class InvalidUsernameError extends InvalidArgumentError {
  constructor() {
    super(USERNAME_RULE);
  }
}

export class WrongCredentialsError extends UnauthenticatedError {
  constructor() {
    super('wrong username or password');
  }
}

export class LoginExpiredError extends UnauthenticatedError {
  constructor() {
    super('login expired or already used; start again');
  }
}

export class SessionInvalidError extends UnauthenticatedError {
  constructor() {
    super('session expired or revoked; log in again');
  }
}

export class DeviceLimitError extends ResourceExhaustedError {
  constructor(max: number) {
    super(`device limit reached: an account can have at most ${max} devices`);
  }
}

export class UnknownDeviceError extends PermissionDeniedError {
  constructor() {
    super('this device is not registered to the account; log in as a new device');
  }
}

export class RevokedDeviceError extends PermissionDeniedError {
  constructor() {
    super('this device was revoked; log in as a new device');
  }
}

/** Unknown, or another account's: the caller learns nothing about devices that are not its own. */
export class NoSuchDeviceError extends NotFoundError {
  constructor() {
    super('no such device');
  }
}

export class DeviceAlreadyRevokedError extends FailedPreconditionError {
  constructor() {
    super('this device is already revoked');
  }
}

export class NoSuchUserError extends NotFoundError {
  constructor(username: string) {
    super(`no such user: ${username}`);
  }
}

export class MalformedOpaqueMessageError extends InvalidArgumentError {
  constructor(what: string) {
    super(`malformed ${what}`);
  }
}
