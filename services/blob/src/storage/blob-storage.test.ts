/**
 * The BlobStorage contract, the same tests for each backend: postgres (rows in the `blob` schema of a
 * real Postgres) and fs (files in a temp directory). What a backend must do: keep an upload's parts in
 * order (dropping leftovers past a rewritten offset), turn an upload into a blob, read any range back,
 * tell whether a blob's bytes are there, and delete.
 */
import { migrateToLatest, openDatabase } from '@qpq/db';
import { startPostgres, type PostgresHandle } from '@qpq/testnet';
import type { Kysely } from 'kysely';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { migrations } from '../db/migrations/index.js';
import type { BlobTables } from '../db/schema.js';
import { BlobBytesMissingError, type BlobStorage } from './blob-storage.js';
import { FsBlobStorage } from './fs-storage.js';
import { PostgresBlobStorage } from './postgres-storage.js';

const READ_BYTES = 64 * 1024;

let postgres: PostgresHandle;
let db: Kysely<BlobTables>;
let url: string;
let dir: string;

before(
  async () => {
    postgres = await startPostgres();
    url = await postgres.createDatabase(`blob_storage_test_${randomBytes(4).toString('hex')}`);
    db = await openDatabase<BlobTables>({ url, schema: 'blob' });
    await migrateToLatest(db as Kysely<unknown>, 'blob', migrations);
    dir = await mkdtemp(join(tmpdir(), 'qpq-blob-storage-'));
  },
  { timeout: 60_000 },
);

after(
  async () => {
    await db?.destroy();
    await postgres?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  },
  { timeout: 30_000 },
);

async function collect(pieces: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const all: Uint8Array[] = [];
  for await (const piece of pieces) all.push(piece);
  return Buffer.concat(all);
}

const blobIdOf = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

const backends: Record<string, () => Promise<BlobStorage>> = {
  postgres: async () => PostgresBlobStorage.open(db, url, 'blob'),
  fs: () => FsBlobStorage.open(dir, READ_BYTES),
};

for (const [name, open] of Object.entries(backends)) {
  describe(`BlobStorage contract: ${name}`, () => {
    let storage: BlobStorage;
    before(async () => {
      storage = await open();
    });
    after(() => storage?.close());

    /** Writes `bytes` as parts of `partBytes`, each in its own transaction as the service does. */
    async function writeAll(key: string, bytes: Buffer, partBytes: number, from = 0): Promise<void> {
      for (let at = from; at < bytes.length; at += partBytes) {
        await db.transaction().execute((tx) => storage.writeUpload(tx, key, at, bytes.subarray(at, at + partBytes)));
      }
    }

    it('reads an upload back as written, part after part', async () => {
      const key = randomUUID();
      const bytes = randomBytes(300_001);
      await writeAll(key, bytes, 100_000);
      assert.ok((await collect(storage.readUpload(key, bytes.length))).equals(bytes));
      assert.ok((await collect(storage.readUpload(key, 150_000))).equals(bytes.subarray(0, 150_000)), 'a prefix');
      await db.transaction().execute((tx) => storage.discardUpload(tx, key));
    });

    it('drops what lies at or past a rewritten offset (a write whose metadata never committed)', async () => {
      const key = randomUUID();
      const first = randomBytes(200_000);
      await writeAll(key, first, 100_000);
      // The count committed says 100,000: the second part is rewritten with other bytes, shorter.
      const other = randomBytes(50_000);
      await db.transaction().execute((tx) => storage.writeUpload(tx, key, 100_000, other));
      const expected = Buffer.concat([first.subarray(0, 100_000), other]);
      assert.ok((await collect(storage.readUpload(key, expected.length))).equals(expected));
      await assert.rejects(collect(storage.readUpload(key, 200_000)), 'nothing past the rewrite is left');
      // Rewriting from 0 starts over.
      await db.transaction().execute((tx) => storage.writeUpload(tx, key, 0, other));
      assert.ok((await collect(storage.readUpload(key, other.length))).equals(other));
      await db.transaction().execute((tx) => storage.discardUpload(tx, key));
    });

    it('makes an upload a blob, readable from any offset in pieces of at most a read', async () => {
      const key = randomUUID();
      const bytes = randomBytes(1_000_003);
      await writeAll(key, bytes, 262_144);
      const blobId = blobIdOf(bytes);
      assert.equal(await storage.hasBlob(blobId, bytes.length), false);
      await db.transaction().execute((tx) => storage.promoteUpload(tx, key, blobId));
      assert.equal(await storage.hasBlob(blobId, bytes.length), true);
      assert.equal(await storage.hasBlob(blobId, bytes.length + 1), false, 'a size that is not the bytes');
      for (const offset of [0, 1, 262_143, 262_144, 999_999, bytes.length]) {
        const pieces: Uint8Array[] = [];
        for await (const piece of storage.readBlob(blobId, offset, bytes.length)) pieces.push(piece);
        assert.ok(Buffer.concat(pieces).equals(bytes.subarray(offset)), `from ${offset}`);
        assert.ok(
          pieces.every((p) => p.byteLength > 0 && p.byteLength <= 262_144),
          'pieces of at most a part',
        );
      }
      await assert.rejects(collect(storage.readUpload(key, 1)), 'the upload is gone');
      await db.transaction().execute((tx) => storage.deleteBlob(tx, blobId));
    });

    it('replaces a blob whose bytes are promoted again', async () => {
      const bytes = randomBytes(70_000);
      const blobId = blobIdOf(bytes);
      for (let round = 0; round < 2; round++) {
        const key = randomUUID();
        await writeAll(key, bytes, 30_000);
        await db.transaction().execute((tx) => storage.promoteUpload(tx, key, blobId));
      }
      assert.ok((await collect(storage.readBlob(blobId, 0, bytes.length))).equals(bytes));
      await db.transaction().execute((tx) => storage.deleteBlob(tx, blobId));
    });

    it('deletes blobs and uploads, and says so when bytes are missing', async () => {
      const bytes = randomBytes(100_000);
      const blobId = blobIdOf(bytes);
      const key = randomUUID();
      await writeAll(key, bytes, 100_000);
      await db.transaction().execute((tx) => storage.promoteUpload(tx, key, blobId));
      await db.transaction().execute((tx) => storage.deleteBlob(tx, blobId));
      assert.equal(await storage.hasBlob(blobId, bytes.length), false);
      await assert.rejects(collect(storage.readBlob(blobId, 0, bytes.length)), BlobBytesMissingError);
      // Deleting what is not there is fine (a retry, or a blob that never had bytes).
      await db.transaction().execute((tx) => storage.deleteBlob(tx, blobId));
      await db.transaction().execute((tx) => storage.discardUpload(tx, randomUUID()));
      assert.equal(await storage.hasBlob(blobIdOf(randomBytes(8)), 10), false, 'a blob never stored');
    });

    it('leaves nothing behind once everything is discarded or deleted', async () => {
      if (name === 'postgres') {
        for (const table of ['upload_parts', 'blob_parts'] as const) {
          const { n } = await db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll<string>().as('n'))
            .executeTakeFirstOrThrow();
          assert.equal(Number(n), 0, `${table} is empty`);
        }
      } else {
        assert.deepEqual(await readdir(join(dir, 'uploads')), []);
        assert.deepEqual(await readdir(join(dir, 'blobs')), []);
      }
    });
  });
}
