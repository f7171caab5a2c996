import { status as GrpcStatus } from '@grpc/grpc-js';
import { FailedPreconditionError, QpqError, ResourceExhaustedError } from '@qpq/runtime';

const MiB = 1024 * 1024;

/** "52,428,800 bytes (50 MiB)": a size as a person reads it in an error. */
export function formatBytes(bytes: number): string {
  return `${bytes.toLocaleString('en-US')} bytes (${Number((bytes / MiB).toFixed(2))} MiB)`;
}

/** A declared size over the ciphertext limit: refused before a byte is stored. */
export class FileTooLargeError extends ResourceExhaustedError {
  constructor(maxFileBytes: number, maxBlobBytes: number, declared: bigint) {
    super(
      `file too large: the limit is ${formatBytes(maxFileBytes)} ` +
        `(this upload declares ${declared.toLocaleString('en-US')} bytes of ciphertext, over the ` +
        `${maxBlobBytes.toLocaleString('en-US')} allowed)`,
    );
  }
}

/** An upload whose bytes ran past its declared size: refused, and nothing of it kept. */
export class UploadOverrunError extends ResourceExhaustedError {
  constructor(size: number) {
    super(`upload sent more than its declared ${size.toLocaleString('en-US')} bytes; nothing of it was kept`);
  }
}

/** The complete bytes do not hash to the declared SHA-256: nothing of the upload is kept. */
export class HashMismatchError extends QpqError {
  override readonly name = 'HashMismatchError';
  constructor() {
    super(GrpcStatus.DATA_LOSS, 'the uploaded bytes do not match their declared SHA-256; nothing of them was kept');
  }
}

/** begin.offset is not where the stored bytes end: the client resumes from `stored`. */
export class OffsetMismatchError extends FailedPreconditionError {
  constructor(uploadId: string, stored: number, offset: bigint) {
    super(`upload ${uploadId} has ${stored} bytes stored, not ${offset}: continue from offset ${stored}`);
  }
}

/** An offset or range outside a blob. */
export class OutOfRangeError extends QpqError {
  override readonly name = 'OutOfRangeError';
  constructor(message: string) {
    super(GrpcStatus.OUT_OF_RANGE, message);
  }
}

/** Bytes a blob's metadata promises are gone from storage while the blob still exists. */
export class BlobDataLossError extends QpqError {
  override readonly name = 'BlobDataLossError';
  constructor(blobId: string) {
    super(GrpcStatus.DATA_LOSS, `the bytes of blob ${blobId} are missing from storage`);
  }
}
