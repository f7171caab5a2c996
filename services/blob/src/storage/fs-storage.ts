import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import type { BlobTables } from '../db/schema.js';
import { BlobBytesMissingError, type BlobStorage } from './blob-storage.js';

const BLOB_ID = /^[0-9a-f]{64}$/;
const STORAGE_KEY = /^[0-9a-f-]{36}$/;

/**
 * File bytes as files under one directory (e.g. a Kubernetes volume): `uploads/<storage key>` grows
 * part by part, each write fsync'ed before its metadata commits, and is renamed to `blobs/<hex sha256>`
 * when the upload completes. Names never come from a client: storage keys are server-made UUIDs and
 * blob ids are checked hex digests.
 */
export class FsBlobStorage implements BlobStorage {
  readonly kind = 'fs' as const;
  private readonly uploadsDir: string;
  private readonly blobsDir: string;

  private constructor(
    dir: string,
    /** Bytes per piece a read yields. */
    private readonly readBytes: number,
  ) {
    this.uploadsDir = join(dir, 'uploads');
    this.blobsDir = join(dir, 'blobs');
  }

  /** Creates `dir/uploads` and `dir/blobs` when missing. */
  static async open(dir: string, readBytes: number): Promise<FsBlobStorage> {
    const storage = new FsBlobStorage(dir, readBytes);
    await mkdir(storage.uploadsDir, { recursive: true });
    await mkdir(storage.blobsDir, { recursive: true });
    return storage;
  }

  async writeUpload(_tx: Kysely<BlobTables>, storageKey: string, offset: number, bytes: Uint8Array): Promise<void> {
    const path = this.uploadPath(storageKey);
    // A new upload's file starts empty ('w'); a later part must find the file it continues ('r+').
    const file = await open(path, offset === 0 ? 'w' : 'r+');
    try {
      await file.truncate(offset);
      await file.write(bytes, 0, bytes.byteLength, offset);
      await file.datasync();
    } finally {
      await file.close();
    }
    if (offset === 0) await syncDirectory(this.uploadsDir);
  }

  readUpload(storageKey: string, length: number): AsyncIterable<Uint8Array> {
    return this.readFile(this.uploadPath(storageKey), 0, length, (pos, cause) => {
      return new Error(`bytes of upload ${storageKey} from offset ${pos} are not in storage`, { cause });
    });
  }

  async discardUpload(_tx: Kysely<BlobTables>, storageKey: string): Promise<void> {
    await rm(this.uploadPath(storageKey), { force: true });
  }

  async promoteUpload(_tx: Kysely<BlobTables>, storageKey: string, blobId: string): Promise<void> {
    await rename(this.uploadPath(storageKey), this.blobPath(blobId));
    await syncDirectory(this.blobsDir);
    await syncDirectory(this.uploadsDir);
  }

  async hasBlob(blobId: string, size: number): Promise<boolean> {
    try {
      return (await stat(this.blobPath(blobId))).size === size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  readBlob(blobId: string, offset: number, size: number): AsyncIterable<Uint8Array> {
    return this.readFile(this.blobPath(blobId), offset, size, (pos, cause) => {
      return new BlobBytesMissingError(blobId, pos, { cause });
    });
  }

  async deleteBlob(_tx: Kysely<BlobTables>, blobId: string): Promise<void> {
    await rm(this.blobPath(blobId), { force: true });
  }

  async close(): Promise<void> {
    // Nothing is held open between calls.
  }

  /** Bytes [from, to) of a file; a file missing or shorter than `to` is `missing`. */
  private async *readFile(
    path: string,
    from: number,
    to: number,
    missing: (pos: number, cause?: unknown) => Error,
  ): AsyncGenerator<Uint8Array> {
    if (from >= to) return;
    // Opened first, so a blob deleted while it is read is still read to its end (Linux keeps the inode).
    let file;
    try {
      file = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missing(from, err);
      throw err;
    }
    const stream = file.createReadStream({ autoClose: false, start: from, end: to - 1, highWaterMark: this.readBytes });
    let pos = from;
    try {
      for await (const piece of stream as AsyncIterable<Buffer>) {
        pos += piece.length;
        yield piece;
      }
    } finally {
      stream.destroy();
      await file.close();
    }
    if (pos < to) throw missing(pos);
  }

  private uploadPath(storageKey: string): string {
    if (!STORAGE_KEY.test(storageKey)) throw new Error(`not a storage key: ${storageKey}`);
    return join(this.uploadsDir, storageKey);
  }

  private blobPath(blobId: string): string {
    if (!BLOB_ID.test(blobId)) throw new Error(`not a blob id: ${blobId}`);
    return join(this.blobsDir, blobId);
  }
}

/** fsync of a directory: makes a file's creation or rename in it durable. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
