import { sql, type Kysely } from 'kysely';

// Typed against Kysely<unknown>: a migration must never depend on today's schema types.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('key_packages')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('data', 'bytea', (c) => c.notNull())
    .addColumn('hash', 'bytea', (c) => c.notNull())
    .addColumn('last_resort', 'boolean', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // At most one last-resort KeyPackage per device: an upload replaces it (ON CONFLICT on this index).
  await db.schema
    .createIndex('key_packages_one_last_resort')
    .on('key_packages')
    .column('device_id')
    .unique()
    .where(sql.ref('last_resort'), '=', true)
    .execute();
  // Claims take a device's oldest one-time KeyPackage; uploads skip ones already stored.
  await db.schema
    .createIndex('key_packages_one_time')
    .on('key_packages')
    .columns(['device_id', 'hash'])
    .unique()
    .where(sql.ref('last_resort'), '=', false)
    .execute();
  await db.schema
    .createIndex('key_packages_one_time_by_age')
    .on('key_packages')
    .columns(['device_id', 'id'])
    .where(sql.ref('last_resort'), '=', false)
    .execute();
  await db.schema.createIndex('key_packages_by_user').on('key_packages').columns(['username', 'device_id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('key_packages').ifExists().execute();
}
