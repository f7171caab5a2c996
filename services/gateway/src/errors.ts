import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  InvalidArgumentError,
  isServiceError,
  QpqError,
  ResourceExhaustedError,
  toGrpcStatus,
  UnauthenticatedError,
  UnavailableError,
} from '@qpq/runtime';

// Messages are what a person sees in the client: one clear line each.

export class UnknownMethodError extends QpqError {
  override readonly name = 'UnknownMethodError';
  constructor(method: string) {
    super(GrpcStatus.UNIMPLEMENTED, `unknown method ${printable(method)}`);
  }
}

export class NotAttachedError extends UnauthenticatedError {
  constructor() {
    super('attach a session first');
  }
}

/** The session ran out while auth could not be asked (the same words auth uses). */
export class SessionExpiredError extends UnauthenticatedError {
  constructor() {
    super('session expired or revoked; log in again');
  }
}

/** The attached device was revoked (auth's SessionRevoked push); auth uses the same words at login. */
export class DeviceRevokedError extends UnauthenticatedError {
  constructor() {
    super('this device was revoked; log in as a new device');
  }
}

export class TooManyRequestsError extends ResourceExhaustedError {
  constructor(limit: number) {
    super(`too many requests in flight on this connection (at most ${limit})`);
  }
}

export class TooManyFileStreamsError extends ResourceExhaustedError {
  constructor(limit: number) {
    super(`too many file transfers at once on this connection (at most ${limit})`);
  }
}

export class AnswerTooLargeError extends ResourceExhaustedError {
  constructor(bytes: number, limit: number) {
    super(`the answer (${bytes} bytes) is larger than the frame limit of ${limit} bytes`);
  }
}

export class MalformedAttachError extends InvalidArgumentError {
  constructor() {
    super('malformed AttachRequest');
  }
}

export class ShuttingDownError extends UnavailableError {
  constructor() {
    super('this gateway is shutting down; reconnect');
  }
}

const backendNames: Record<string, string> = {
  auth: 'the account service',
  keypackage: 'the key service',
  delivery: 'the message service',
  ktlog: 'the key transparency log',
  blob: 'the file service',
};

/**
 * The status a client is answered with. Expected errors keep theirs. A backend's own answer keeps
 * its code and message, except where grpc-js wrote the message itself (UNAVAILABLE, DEADLINE_EXCEEDED,
 * CANCELLED): those name internal addresses, so the client gets a plain sentence instead.
 */
export function toClientStatus(err: unknown, backend?: string): { code: GrpcStatus; message: string } {
  if (!(err instanceof QpqError) && isServiceError(err)) {
    const who = (backend && backendNames[backend]) ?? 'a service';
    if (err.code === GrpcStatus.UNAVAILABLE) return { code: err.code, message: `${who} is unavailable; try again` };
    if (err.code === GrpcStatus.DEADLINE_EXCEEDED) {
      return { code: err.code, message: `${who} did not answer in time; try again` };
    }
    if (err.code === GrpcStatus.CANCELLED)
      return { code: GrpcStatus.UNAVAILABLE, message: `${who} is unavailable; try again` };
  }
  const { code, details } = toGrpcStatus(err);
  return { code, message: details };
}

/** A method name as it may appear in a message or log: printable ASCII, at most 100 characters. */
export function printable(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 100 ? `${clean.slice(0, 100)}…` : clean;
}
