import { sql, type Kysely } from 'kysely';

// Typed against Kysely<unknown>: a migration must never depend on today's schema types.

/**
 * The transactional outbox of DeviceEvents (events.proto): a device change and its event commit
 * together; the relay publishes unpublished rows to JetStream in order and marks them published.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('device_events')
    .addColumn('event_id', 'uuid', (c) => c.primaryKey())
    .addColumn('op', 'text', (c) => c.notNull().check(sql`op in ('add', 'revoke')`))
    .addColumn('payload', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('published_at', 'timestamptz')
    .execute();
  // The relay's work list stays small however long the table grows.
  await db.schema
    .createIndex('device_events_unpublished')
    .on('device_events')
    .columns(['created_at', 'event_id'])
    .where(sql.ref('published_at'), 'is', null)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('device_events').ifExists().execute();
}
