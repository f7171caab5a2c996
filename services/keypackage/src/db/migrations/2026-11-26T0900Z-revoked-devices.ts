import { sql, type Kysely } from 'kysely';

// Typed against Kysely<unknown>: a migration must never depend on today's schema types.

/**
 * Devices auth revoked (from DeviceEvents): their KeyPackages are deleted, and the row stays so a
 * late upload from the device is refused and a claim never offers it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('revoked_devices')
    .addColumn('device_id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('revoked_at', 'timestamptz', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('revoked_devices').ifExists().execute();
}
