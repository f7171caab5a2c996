import { InvalidArgumentError } from '@qpq/runtime';

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,64}$/;
const BLOB_ID = /^[0-9a-f]{64}$/;

/** An upload id as the client chose it (a UUID, or any 1–64 of A–Z a–z 0–9 _ -). */
export function checkUploadId(uploadId: string): string {
  if (!UPLOAD_ID.test(uploadId)) {
    throw new InvalidArgumentError('upload_id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and - (a UUID)');
  }
  return uploadId;
}

/** A blob id: the lowercase hex SHA-256 of the blob's bytes. */
export function checkBlobId(blobId: string): string {
  if (!BLOB_ID.test(blobId)) throw new InvalidArgumentError('blob_id must be a SHA-256 in 64 lowercase hex digits');
  return blobId;
}

/** The blob id of a SHA-256 digest. */
export function blobIdOf(sha256: Uint8Array): string {
  return Buffer.from(sha256.buffer, sha256.byteOffset, sha256.byteLength).toString('hex');
}
