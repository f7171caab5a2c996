// Typed against Kysely<any> on purpose: a migration must keep compiling when today's schema types change.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('entries')
    .addColumn('index', 'bigint', (c) => c.primaryKey())
    .addColumn('event_id', 'uuid', (c) => c.notNull().unique())
    .addColumn('op', 'smallint', (c) => c.notNull())
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('device_id', 'uuid', (c) => c.notNull())
    .addColumn('identity_key', 'bytea', (c) => c.notNull())
    .addColumn('timestamp_ms', 'bigint', (c) => c.notNull())
    .addColumn('leaf_hash', 'bytea', (c) => c.notNull())
    .execute();
  // LookupUser reads one user's entries, by address or by the user part of it (any domain).
  await db.schema.createIndex('entries_address_idx').on('entries').columns(['address', 'index']).execute();
  await db.schema
    .createIndex('entries_user_idx')
    .on('entries')
    .expression(sql`split_part(address, '@', 1), index`)
    .execute();

  // Perfect subtrees are written once, as the append that completes them commits: a proof for any
  // size then reads O(log n) of them instead of rebuilding the tree.
  await db.schema
    .createTable('nodes')
    .addColumn('level', 'smallint', (c) => c.notNull())
    .addColumn('position', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'bytea', (c) => c.notNull())
    .addPrimaryKeyConstraint('nodes_pk', ['level', 'position'])
    .execute();

  // Every head ever signed; the newest (largest) one is served, so a restart never serves a smaller one.
  await db.schema
    .createTable('tree_heads')
    .addColumn('tree_size', 'bigint', (c) => c.primaryKey())
    .addColumn('root_hash', 'bytea', (c) => c.notNull())
    .addColumn('timestamp_ms', 'bigint', (c) => c.notNull())
    .addColumn('signature', 'bytea', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('signing_keys')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('private_key_pem', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['signing_keys', 'tree_heads', 'nodes', 'entries']) await db.schema.dropTable(table).execute();
}
