import { sql, type Kysely } from 'kysely';
import type { DeliveryTables } from './db/schema.js';

/** What waits in the mailboxes, across every device (the gauges' sample). */
export interface MailboxBacklog {
  /** Envelopes stored for a device and not acknowledged by it (one per recipient device). */
  pending: number;
  /** Acceptance time (ms since the epoch) of the oldest of them; undefined when there is none. */
  oldestAcceptedAtMs: number | undefined;
}

/**
 * Reads the backlog in one statement: a count of the mailbox rows, and the acceptance time of the
 * message with the lowest id still in a mailbox, found through the message_pk index (ids follow the
 * order of acceptance, so that is the oldest pending one without scanning the messages).
 */
export async function mailboxBacklog(db: Kysely<DeliveryTables>): Promise<MailboxBacklog> {
  const { rows } = await sql<{ pending: string; oldest: Date | null }>`
    select
      (select count(*) from mailbox) as pending,
      (select accepted_at from messages where id = (select min(message_pk) from mailbox)) as oldest`.execute(db);
  const row = rows[0];
  return { pending: Number(row?.pending ?? 0), oldestAcceptedAtMs: row?.oldest?.getTime() };
}
