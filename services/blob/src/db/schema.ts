import type { ColumnType, Generated } from 'kysely';

/** Postgres `bigint`: read as bigint (libs/db sets the parser), written as bigint or number. */
type Int8 = ColumnType<bigint, bigint | number, bigint | number>;

/**
 * An upload of one account, finished or not. `upload_id` is the client's; `storage_key` is ours, so
 * that two accounts choosing the same id never share bytes and file names never come from a client.
 */
export interface UploadsTable {
  account_id: string;
  upload_id: string;
  storage_key: Generated<string>;
  /** Declared ciphertext bytes. */
  size: Int8;
  /** Declared SHA-256 of the ciphertext. */
  sha256: Buffer;
  /** The expiry the uploader's claim gets (ms since the epoch, already capped). */
  expires_at_ms: Int8;
  /** Bytes stored so far (written in the same transaction as the part that adds them). */
  stored: Int8;
  /** Set when complete: the blob the bytes became (or already were). */
  blob_id: string | null;
  /** Last begin or stored part; an unfinished upload untouched for QPQ_BLOB_UPLOAD_TTL is collected. */
  touched_at_ms: Int8;
}

/** A complete blob: `id` is the hex SHA-256 of its bytes. */
export interface BlobsTable {
  id: string;
  size: Int8;
  /** The latest expiry among its claims; the blob is collected once it passed. */
  expires_at_ms: Int8;
  created_at_ms: Int8;
}

/** An uploader's claim on a blob: the blob lives while one claim has not expired or been deleted. */
export interface ClaimsTable {
  blob_id: string;
  account_id: string;
  expires_at_ms: Int8;
}

/** Bytes of an unfinished upload (postgres backend): `start` is the offset of `bytes` in the upload. */
export interface UploadPartsTable {
  storage_key: string;
  start: Int8;
  bytes: Buffer;
}

/** Bytes of a complete blob (postgres backend). */
export interface BlobPartsTable {
  blob_id: string;
  start: Int8;
  bytes: Buffer;
}

export interface BlobTables {
  uploads: UploadsTable;
  blobs: BlobsTable;
  claims: ClaimsTable;
  upload_parts: UploadPartsTable;
  blob_parts: BlobPartsTable;
}
