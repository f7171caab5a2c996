import type { Kysely } from 'kysely';
import type { StorageKind } from '../config.js';
import type { BlobTables } from '../db/schema.js';

/**
 * Where the bytes of uploads and blobs live. Metadata (uploads, blobs, claims) is in Postgres for every
 * backend; a backend holds only bytes, addressed by an upload's storage key or a blob's id.
 *
 * Methods that change bytes take the transaction that changes the matching metadata (and holds its
 * locks): the postgres backend writes in it, so bytes and metadata commit together; the fs backend
 * writes (and fsyncs) before the transaction commits, so metadata never names bytes that are not on
 * disk. Reads need no transaction: they read what committed metadata says is there.
 */
export interface BlobStorage {
  readonly kind: StorageKind;

  /**
   * Stores `bytes` at `offset` of an upload, dropping anything found at or past `offset` first (left
   * by a write whose transaction never committed). Durable once it resolves.
   */
  writeUpload(tx: Kysely<BlobTables>, storageKey: string, offset: number, bytes: Uint8Array): Promise<void>;

  /** The first `length` bytes of an upload, in order, in pieces of at most a part. */
  readUpload(storageKey: string, length: number): AsyncIterable<Uint8Array>;

  /** Deletes an upload's bytes (none stored is fine). */
  discardUpload(tx: Kysely<BlobTables>, storageKey: string): Promise<void>;

  /** Makes an upload's bytes the blob `blobId`'s, replacing any bytes stored under that id. */
  promoteUpload(tx: Kysely<BlobTables>, storageKey: string, blobId: string): Promise<void>;

  /** Whether all `size` bytes of `blobId` are stored (the metadata says so; this checks the bytes). Size > 0. */
  hasBlob(blobId: string, size: number): Promise<boolean>;

  /**
   * Bytes [offset, size) of a blob in order, in pieces of at most a part. Throws BlobBytesMissingError
   * when they are not (or no longer) there.
   */
  readBlob(blobId: string, offset: number, size: number): AsyncIterable<Uint8Array>;

  /** Deletes a blob's bytes (none stored is fine). */
  deleteBlob(tx: Kysely<BlobTables>, blobId: string): Promise<void>;

  /** Lets go of what the backend holds open (connections); reads in progress end. */
  close(): Promise<void>;
}

/** The bytes a blob's metadata promises are not in storage (deleted meanwhile, or lost). */
export class BlobBytesMissingError extends Error {
  override readonly name = 'BlobBytesMissingError';
  constructor(
    readonly blobId: string,
    readonly offset: number,
    options?: { cause?: unknown },
  ) {
    super(`bytes of blob ${blobId} from offset ${offset} are not in storage`, options);
  }
}
