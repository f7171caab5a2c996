/**
 * Errors the client shows a person: each carries one line fit for a terminal (no stack, no internals)
 * and, when it came from the server, the gRPC status code it arrived with.
 */

import { StatusCode } from '@qpq/wire';

/** gRPC status codes (the numbers travel in Response.status.code); the same table as libs/wire's. */
export const GrpcCode = StatusCode;

export class QpqClientError extends Error {
  override readonly name: string = 'QpqClientError';
  constructor(
    message: string,
    /** The gRPC status the server answered with, when the error came from the server. */
    readonly code?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Bad input from the person (flags, names, text). */
export class UsageError extends QpqClientError {
  override readonly name = 'UsageError';
}

export class WrongCredentialsError extends QpqClientError {
  override readonly name = 'WrongCredentialsError';
  constructor() {
    super('wrong username or password', GrpcCode.UNAUTHENTICATED);
  }
}

export class SessionExpiredError extends QpqClientError {
  override readonly name = 'SessionExpiredError';
  constructor(message = 'session expired: run qpq login') {
    super(message, GrpcCode.UNAUTHENTICATED);
  }
}

export class NoSuchUserError extends QpqClientError {
  override readonly name = 'NoSuchUserError';
  constructor(readonly username: string) {
    super(`no such user: ${username}`, GrpcCode.NOT_FOUND);
  }
}

export class ServerUnreachableError extends QpqClientError {
  override readonly name = 'ServerUnreachableError';
  constructor(
    readonly server: string,
    options?: { cause?: unknown; detail?: string; message?: string },
  ) {
    super(
      options?.message ?? `cannot reach the server at ${server}${options?.detail ? ` (${options.detail})` : ''}`,
      GrpcCode.UNAVAILABLE,
      options,
    );
  }
}

/** The data dir holds no account yet. */
export class NotLoggedInError extends QpqClientError {
  override readonly name = 'NotLoggedInError';
  constructor(dataDir: string) {
    super(`no account in ${dataDir}: run qpq register or qpq login first`);
  }
}

/** Any failure reading, decrypting or locking the local store. */
export class StoreError extends QpqClientError {
  override readonly name: string = 'StoreError';
}

export class PassphraseRequiredError extends StoreError {
  override readonly name = 'PassphraseRequiredError';
  constructor() {
    super('this data dir is passphrase-protected: set QPQ_PASSPHRASE');
  }
}

/** The delivery service's signed receipt did not match what was sent. */
export class DeliveryProofError extends QpqClientError {
  override readonly name = 'DeliveryProofError';
}

/** The shape of an error answered by the gateway (RpcError in @qpq/wire). */
export interface RpcFailure {
  code: number;
  message: string;
}

export function isRpcFailure(err: unknown): err is RpcFailure {
  return (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as { code?: unknown }).code === 'number' &&
    typeof (err as { message?: unknown }).message === 'string' &&
    !(err instanceof QpqClientError)
  );
}

/** Codes after which the same request may be sent again unchanged. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof ServerUnreachableError) return true;
  return isRpcFailure(err) && (err.code === GrpcCode.UNAVAILABLE || err.code === GrpcCode.DEADLINE_EXCEEDED);
}

/**
 * A refusal for now, not for good: too many requests (the gateway's in-flight limit, a claim rate).
 * RESOURCE_EXHAUSTED also means "too large" or "too many recipients", which waiting cannot fix, so the
 * message tells them apart.
 */
export function isRateLimit(err: unknown): boolean {
  return (
    isRpcFailure(err) &&
    err.code === GrpcCode.RESOURCE_EXHAUSTED &&
    /too many requests|rate limit|try again/i.test(err.message)
  );
}

export interface ErrorContext {
  /** host:port, for "cannot reach the server at …". */
  server: string;
  /** The user a NOT_FOUND refers to, when the call named one. */
  username?: string;
}

/**
 * Turns a server answer into the one line a person sees. The services already phrase their messages
 * for people (auth's "device limit reached…", "username is taken"), so those pass through; the codes
 * whose text a client should own are rewritten here.
 */
export function toClientError(err: unknown, ctx: ErrorContext): QpqClientError {
  if (err instanceof QpqClientError) return err;
  if (isRpcFailure(err)) {
    switch (err.code) {
      case GrpcCode.UNAVAILABLE:
        return new ServerUnreachableError(ctx.server, { cause: err });
      case GrpcCode.DEADLINE_EXCEEDED:
        return new ServerUnreachableError(ctx.server, { cause: err, detail: 'timed out' });
      case GrpcCode.NOT_FOUND:
        if (ctx.username !== undefined) return new NoSuchUserError(ctx.username);
        break;
      case GrpcCode.INTERNAL:
      case GrpcCode.UNKNOWN:
        return new QpqClientError('the server failed to handle the request; try again later', err.code, { cause: err });
    }
    return new QpqClientError(oneLine(err.message) || `request failed (gRPC status ${err.code})`, err.code, {
      cause: err,
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new QpqClientError(oneLine(message) || 'unexpected error', undefined, { cause: err });
}

/** Collapses a message to one line so a caller's stderr stays one line per failure. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ').trim();
}

/**
 * The key-transparency log does not vouch for an account's keys (a proof that does not verify, a tree
 * head that forks from one this device kept, a key auth hands out that the log lacks or revoked): the
 * keys are not used. Names the account whose keys failed.
 */
export class KeyTransparencyError extends QpqClientError {
  override readonly name = 'KeyTransparencyError';
  constructor(
    readonly address: string,
    readonly problem: string,
    /** The account is this device's own: the log holds a key of it that none of its devices has. */
    own = false,
  ) {
    super(
      own
        ? `key transparency: ${problem} — someone may be posing as you (${address})`
        : `key transparency: not using the keys of ${address}: ${problem}`,
    );
  }
}
