// Typed against Kysely<any> on purpose: a migration must keep compiling when today's schema types change.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // Per MLS group: the epoch the next Commit must be for (RFC 9750 §5.2.1, a strongly consistent DS).
  // The row (or, for a new group, its primary-key entry) is locked by the Enqueue that advances it, so
  // concurrent Commits for one epoch queue up behind the first and find the epoch already taken.
  await db.schema
    .createTable('group_epochs')
    .addColumn('group_id', 'bytea', (c) => c.primaryKey())
    .addColumn('epoch', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // The Welcome stored with a Commit (its own message row): a retry of the Commit finds it by this id
  // and gets both original answers.
  await db.schema.alterTable('messages').addColumn('welcome_message_id', 'uuid').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('messages').dropColumn('welcome_message_id').execute();
  await db.schema.dropTable('group_epochs').execute();
}
