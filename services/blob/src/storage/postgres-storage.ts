import type { Kysely } from 'kysely';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { BlobTables } from '../db/schema.js';
import { BlobBytesMissingError, type BlobStorage } from './blob-storage.js';
import { binaryCopyFields } from './copy-binary.js';

/** Bytes one read returns: one Download chunk at the default QPQ_BLOB_CHUNK_BYTES. */
const READ_SLICE_BYTES = 256 * 1024;
/** Connections of the read pool: each is held while one slice is read, never while it is sent on. */
const READ_POOL_SIZE = 4;
const READ_TIMEOUT_MS = 10_000;

const STORAGE_KEY = /^[0-9a-f-]{36}$/;
const BLOB_ID = /^[0-9a-f]{64}$/;

/**
 * File bytes as rows of the `blob` schema: `upload_parts` while an upload is under way, `blob_parts`
 * once it is a blob, each row at most QPQ_BLOB_PART_BYTES. Bytes are written in the transaction of the
 * metadata that counts them, so both commit together.
 *
 * Reads go through a small pool of their own as binary COPY, slice by slice: a query's bytea arrives as
 * a hex string twice its size and is then decoded, about nine bytes of garbage per byte read (tens of
 * MiB of resident memory while a 50 MiB blob is hashed or sent, measured), where COPY hands over the
 * raw bytes. COPY takes no parameters, so its statement names only checked ids and integers.
 */
export class PostgresBlobStorage implements BlobStorage {
  readonly kind = 'postgres' as const;

  private constructor(
    private readonly db: Kysely<BlobTables>,
    private readonly readPool: pg.Pool,
  ) {}

  /** Writes through `db` (the service's pool); reads through a pool of its own on `url`, in `schema`. */
  static open(db: Kysely<BlobTables>, url: string, schema: string): PostgresBlobStorage {
    const readPool = new pg.Pool({
      connectionString: url,
      max: READ_POOL_SIZE,
      options: `-c search_path=${schema} -c statement_timeout=${READ_TIMEOUT_MS}`,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
    });
    // An idle client's error (e.g. Postgres restarting) must not crash the process; the pool replaces it.
    readPool.on('error', () => undefined);
    return new PostgresBlobStorage(db, readPool);
  }

  async writeUpload(tx: Kysely<BlobTables>, storageKey: string, offset: number, bytes: Uint8Array): Promise<void> {
    await tx
      .deleteFrom('upload_parts')
      .where('storage_key', '=', storageKey)
      .where('start', '>=', BigInt(offset))
      .execute();
    await tx
      .insertInto('upload_parts')
      .values({ storage_key: storageKey, start: offset, bytes: asBuffer(bytes) })
      .execute();
  }

  readUpload(storageKey: string, length: number): AsyncIterable<Uint8Array> {
    if (!STORAGE_KEY.test(storageKey)) throw new Error(`not a storage key: ${storageKey}`);
    return this.readRange('upload_parts', 'storage_key', storageKey, 0, length, (pos) => {
      return new Error(`bytes of upload ${storageKey} from offset ${pos} are not in storage`);
    });
  }

  async discardUpload(tx: Kysely<BlobTables>, storageKey: string): Promise<void> {
    await tx.deleteFrom('upload_parts').where('storage_key', '=', storageKey).execute();
  }

  async promoteUpload(tx: Kysely<BlobTables>, storageKey: string, blobId: string): Promise<void> {
    await tx.deleteFrom('blob_parts').where('blob_id', '=', blobId).execute();
    // Copied inside Postgres: the bytes never pass through this process.
    await tx
      .insertInto('blob_parts')
      .columns(['blob_id', 'start', 'bytes'])
      .expression((eb) =>
        eb
          .selectFrom('upload_parts')
          .select([eb.val(blobId).as('blob_id'), 'start', 'bytes'])
          .where('storage_key', '=', storageKey),
      )
      .execute();
    await this.discardUpload(tx, storageKey);
  }

  async hasBlob(blobId: string, size: number): Promise<boolean> {
    // Parts are contiguous from 0 (each written at the count before it), so the last byte's part tells.
    const last = await this.db
      .selectFrom('blob_parts')
      .select(['start', (eb) => eb.fn<number>('octet_length', ['bytes']).as('length')])
      .where('blob_id', '=', blobId)
      .orderBy('start', 'desc')
      .limit(1)
      .executeTakeFirst();
    return last !== undefined && Number(last.start) + Number(last.length) === size;
  }

  readBlob(blobId: string, offset: number, size: number): AsyncIterable<Uint8Array> {
    if (!BLOB_ID.test(blobId)) throw new Error(`not a blob id: ${blobId}`);
    return this.readRange('blob_parts', 'blob_id', blobId, offset, size, (pos) => {
      return new BlobBytesMissingError(blobId, pos);
    });
  }

  async deleteBlob(tx: Kysely<BlobTables>, blobId: string): Promise<void> {
    await tx.deleteFrom('blob_parts').where('blob_id', '=', blobId).execute();
  }

  async close(): Promise<void> {
    await this.readPool.end();
  }

  /**
   * Bytes [from, to) of the rows keyed `key`, one slice of at most READ_SLICE_BYTES per COPY: the slice
   * at the next byte, cut from the part holding it (the part starting at or before it). A part missing
   * there ends the read with `missing`.
   */
  private async *readRange(
    table: 'upload_parts' | 'blob_parts',
    keyColumn: 'storage_key' | 'blob_id',
    key: string,
    from: number,
    to: number,
    missing: (pos: number) => Error,
  ): AsyncGenerator<Uint8Array> {
    let pos = from;
    while (pos < to) {
      const pieces = await this.copySlice(table, keyColumn, key, pos, Math.min(READ_SLICE_BYTES, to - pos));
      const read = pieces.reduce((sum, piece) => sum + piece.byteLength, 0);
      if (read === 0) throw missing(pos);
      // Handed on only now: a slow reader holds one slice in memory, never a pool connection.
      yield* pieces;
      pos += read;
    }
  }

  /** One slice as the pieces COPY delivered it in. */
  private async copySlice(
    table: string,
    keyColumn: string,
    key: string,
    pos: number,
    length: number,
  ): Promise<Uint8Array[]> {
    const client = await this.readPool.connect();
    let finished = false;
    try {
      // substring counts from 1; EXTERNAL storage (no compression) lets Postgres read just these bytes.
      const statement =
        `copy (select substring(bytes from (${pos} - start + 1)::int for ${length}) from ${table} ` +
        `where ${keyColumn} = ${client.escapeLiteral(key)} and start <= ${pos} order by start desc limit 1) ` +
        `to stdout with (format binary)`;
      const pieces: Uint8Array[] = [];
      for await (const piece of binaryCopyFields(client.query(copyTo(statement)))) pieces.push(piece);
      finished = true;
      return pieces;
    } finally {
      // A COPY that failed half-read leaves the connection unusable: it is closed instead of reused.
      client.release(!finished);
    }
  }
}

/** pg sends a Buffer as binary; any other Uint8Array would go as text. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
