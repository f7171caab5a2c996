// Typed against Kysely<any> on purpose: a migration must keep compiling when today's schema types change.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // One payload row per message. `message_id` (the client's UUIDv7) makes retries idempotent; the row
  // outlives its payload (set to null once every recipient acked) until it expires, so that a late
  // retry still gets the original answer instead of being delivered twice.
  await db.schema
    .createTable('messages')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('message_id', 'uuid', (c) => c.notNull().unique())
    .addColumn('sender_account_id', 'text', (c) => c.notNull())
    .addColumn('sender_username', 'text', (c) => c.notNull())
    .addColumn('sender_device_id', 'text', (c) => c.notNull())
    .addColumn('group_id', 'bytea')
    .addColumn('payload', 'bytea')
    .addColumn('payload_sha256', 'bytea', (c) => c.notNull())
    // Seqs given to the recipients, in the order of the proof's sorted recipient ids.
    .addColumn('recipient_seqs', sql`bigint[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('accepted_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    // The encoded qpq.v1.DeliveryProof handed back to the sender (and again on a retry).
    .addColumn('proof', 'bytea', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('messages_expires_at_idx').on('messages').column('expires_at').execute();

  // One row per (recipient device, seq). Deleting an expired message takes its mailbox rows with it.
  await db.schema
    .createTable('mailbox')
    .addColumn('device_id', 'uuid', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('message_pk', 'bigint', (c) => c.notNull().references('messages.id').onDelete('cascade'))
    .addPrimaryKeyConstraint('mailbox_pk', ['device_id', 'seq'])
    .execute();
  await db.schema.createIndex('mailbox_message_pk_idx').on('mailbox').column('message_pk').execute();

  // Per device: the last seq handed out (row-locked while a message is enqueued, which keeps seqs
  // gap-free) and the highest seq the device acknowledged.
  await db.schema
    .createTable('device_cursors')
    .addColumn('device_id', 'uuid', (c) => c.primaryKey())
    .addColumn('last_seq', 'bigint', (c) => c.notNull())
    .addColumn('acked_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .addCheckConstraint('device_cursors_acked_le_last', sql`acked_seq <= last_seq`)
    .execute();

  // The proof-signing key when none is configured: generated once by whichever replica starts first.
  await db.schema
    .createTable('signing_keys')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('private_key_pem', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('signing_keys').execute();
  await db.schema.dropTable('device_cursors').execute();
  await db.schema.dropTable('mailbox').execute();
  await db.schema.dropTable('messages').execute();
}
