// Typed against Kysely<any> on purpose: a migration must keep compiling when today's schema types change.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('uploads')
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('upload_id', 'text', (c) => c.notNull())
    .addColumn('storage_key', 'uuid', (c) =>
      c
        .notNull()
        .unique()
        .defaultTo(sql`gen_random_uuid()`),
    )
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('sha256', 'bytea', (c) => c.notNull())
    .addColumn('expires_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('stored', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('blob_id', 'text')
    .addColumn('touched_at_ms', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('uploads_pk', ['account_id', 'upload_id'])
    .execute();
  // The collector finds abandoned uploads by age; DeleteBlob and the collector find a blob's uploads.
  await db.schema.createIndex('uploads_touched_idx').on('uploads').column('touched_at_ms').execute();
  await db.schema.createIndex('uploads_blob_idx').on('uploads').column('blob_id').execute();

  await db.schema
    .createTable('blobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('expires_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('created_at_ms', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('blobs_expires_idx').on('blobs').column('expires_at_ms').execute();

  await db.schema
    .createTable('claims')
    .addColumn('blob_id', 'text', (c) => c.notNull().references('blobs.id').onDelete('cascade'))
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('expires_at_ms', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('claims_pk', ['blob_id', 'account_id'])
    .execute();
  await db.schema.createIndex('claims_expires_idx').on('claims').column('expires_at_ms').execute();

  // The postgres backend's bytes, in parts of at most QPQ_BLOB_PART_BYTES. The fs backend leaves them empty.
  await db.schema
    .createTable('upload_parts')
    .addColumn('storage_key', 'uuid', (c) => c.notNull())
    .addColumn('start', 'bigint', (c) => c.notNull())
    .addColumn('bytes', 'bytea', (c) => c.notNull())
    .addPrimaryKeyConstraint('upload_parts_pk', ['storage_key', 'start'])
    .execute();
  await db.schema
    .createTable('blob_parts')
    .addColumn('blob_id', 'text', (c) => c.notNull())
    .addColumn('start', 'bigint', (c) => c.notNull())
    .addColumn('bytes', 'bytea', (c) => c.notNull())
    .addPrimaryKeyConstraint('blob_parts_pk', ['blob_id', 'start'])
    .execute();
  // Ciphertext does not compress: EXTERNAL spares the attempt (and lets substring reads skip decompression).
  for (const table of ['upload_parts', 'blob_parts']) {
    await sql`alter table ${sql.id(table)} alter column bytes set storage external`.execute(db);
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['blob_parts', 'upload_parts', 'claims', 'blobs', 'uploads']) {
    await db.schema.dropTable(table).execute();
  }
}
