import { status as GrpcStatus } from '@grpc/grpc-js';

/**
 * An expected failure that the caller should see: it carries the gRPC status code to answer with and
 * a message fit to show a person. Anything else becomes INTERNAL without leaking its details.
 */
export class QpqError extends Error {
  override readonly name: string = 'QpqError';
  constructor(
    readonly code: GrpcStatus,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class InvalidArgumentError extends QpqError {
  override readonly name = 'InvalidArgumentError';
  constructor(message: string) {
    super(GrpcStatus.INVALID_ARGUMENT, message);
  }
}
export class NotFoundError extends QpqError {
  override readonly name = 'NotFoundError';
  constructor(message: string) {
    super(GrpcStatus.NOT_FOUND, message);
  }
}
export class AlreadyExistsError extends QpqError {
  override readonly name = 'AlreadyExistsError';
  constructor(message: string) {
    super(GrpcStatus.ALREADY_EXISTS, message);
  }
}
export class UnauthenticatedError extends QpqError {
  override readonly name = 'UnauthenticatedError';
  constructor(message: string) {
    super(GrpcStatus.UNAUTHENTICATED, message);
  }
}
export class PermissionDeniedError extends QpqError {
  override readonly name = 'PermissionDeniedError';
  constructor(message: string) {
    super(GrpcStatus.PERMISSION_DENIED, message);
  }
}
export class ResourceExhaustedError extends QpqError {
  override readonly name = 'ResourceExhaustedError';
  constructor(message: string) {
    super(GrpcStatus.RESOURCE_EXHAUSTED, message);
  }
}
export class FailedPreconditionError extends QpqError {
  override readonly name = 'FailedPreconditionError';
  constructor(message: string) {
    super(GrpcStatus.FAILED_PRECONDITION, message);
  }
}
/** A conflict the client resolves by fetching and retrying (e.g. a competing MLS Commit). */
export class ConflictError extends QpqError {
  override readonly name = 'ConflictError';
  constructor(message: string) {
    super(GrpcStatus.ABORTED, message);
  }
}
export class UnavailableError extends QpqError {
  override readonly name = 'UnavailableError';
  constructor(message: string) {
    super(GrpcStatus.UNAVAILABLE, message);
  }
}

/** The status to answer with for any thrown value: expected errors keep theirs, the rest is INTERNAL. */
export function toGrpcStatus(err: unknown): { code: GrpcStatus; details: string } {
  if (err instanceof QpqError) return { code: err.code, details: err.message };
  // A downstream gRPC error keeps its code (e.g. UNAVAILABLE, DEADLINE_EXCEEDED) but not its text
  // when that text could describe internals.
  if (isServiceError(err) && err.code !== GrpcStatus.INTERNAL && err.code !== GrpcStatus.UNKNOWN) {
    return { code: err.code, details: err.details };
  }
  return { code: GrpcStatus.INTERNAL, details: 'internal error' };
}

export function isServiceError(err: unknown): err is Error & { code: GrpcStatus; details: string } {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'number' &&
    typeof (err as { details?: unknown }).details === 'string'
  );
}
