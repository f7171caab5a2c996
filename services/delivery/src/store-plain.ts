import { executePrepared } from '@qpq/db';
import { sql, type Kysely } from 'kysely';
import type { DeliveryTables } from './db/schema.js';
import { messageRow, receiptOf, type BatchedEnqueue, type Receipt } from './store-enqueue.js';

/** Postgres unique_violation: a message_id already taken (or twice in one batch). */
export const UNIQUE_VIOLATION = '23505';

/**
 * Stores plain messages (no Commit, no Welcome) in ONE statement, its own transaction: the recipients'
 * cursors move in one sorted upsert (row locks in one order: concurrent enqueues to a device queue up,
 * seqs stay gap-free), each recipient entry gets its seq in the order the requests came, the rows are
 * inserted with their seqs, and the mailbox rows refer to them. One round trip instead of six, which is
 * most of what an Enqueue costs the service and the database when requests do not arrive together.
 *
 * A message_id already taken fails the whole statement with unique_violation (UNIQUE_VIOLATION) and
 * stores nothing: the caller then takes the slower path that tells retries from reuse (storeMessages).
 */
export async function storePlainMessages(
  db: Kysely<DeliveryTables>,
  items: readonly BatchedEnqueue[],
): Promise<Receipt[]> {
  const messages = items.map(({ sender, req, proofs }) => {
    if (req.commit || req.welcome) throw new Error(`message ${req.messageId} is a Commit: it is not a plain message`);
    return messageRow(req, proofs.message, {
      sender,
      groupId: req.groupId,
      acceptedAt: new Date(proofs.acceptedAtMs),
      expiresAt: new Date(proofs.acceptedAtMs + req.ttlMs),
      welcomeMessageId: undefined,
    });
  });
  const column = <K extends keyof (typeof messages)[number]>(key: K) => messages.map((m) => m[key]);
  const recipientDevices = items.flatMap(({ req }) => req.recipients);
  const recipientMessage = items.flatMap(({ req }, i) => req.recipients.map(() => i + 1));
  const rows = await executePrepared(
    db,
    'delivery_store_plain_messages',
    sql<{ n: bigint; seqs: string[] }>`
    with msg as (
      select * from unnest(
        ${column('message_id')}::uuid[], ${column('sender_account_id')}::text[], ${column('sender_username')}::text[],
        ${column('sender_device_id')}::text[], ${column('group_id')}::bytea[], ${column('payload')}::bytea[],
        ${column('payload_sha256')}::bytea[], ${column('proof')}::bytea[], ${column('accepted_at')}::timestamptz[],
        ${column('expires_at')}::timestamptz[]
      ) with ordinality as t(message_id, sender_account_id, sender_username, sender_device_id, group_id, payload,
        payload_sha256, proof, accepted_at, expires_at, n)
    ), rcp as (
      select * from unnest(${recipientDevices}::uuid[], ${recipientMessage}::bigint[]) with ordinality as r(device_id, n, ord)
    ), cursors as (
      insert into device_cursors (device_id, last_seq)
      select device_id, count(*) from rcp group by device_id order by device_id
      on conflict (device_id) do update set last_seq = device_cursors.last_seq + excluded.last_seq
      returning device_id, last_seq
    ), seqs as (
      select rcp.n, rcp.ord, rcp.device_id,
        cursors.last_seq - count(*) over (partition by rcp.device_id)
          + row_number() over (partition by rcp.device_id order by rcp.ord) as seq
      from rcp join cursors using (device_id)
    ), own as (
      select n, array_agg(seq order by ord) as seqs from seqs group by n
    ), inserted as (
      insert into messages (message_id, sender_account_id, sender_username, sender_device_id, group_id, payload,
        payload_sha256, proof, accepted_at, expires_at, recipient_seqs)
      select msg.message_id, msg.sender_account_id, msg.sender_username, msg.sender_device_id, msg.group_id,
        msg.payload, msg.payload_sha256, msg.proof, msg.accepted_at, msg.expires_at, own.seqs
      from msg join own using (n)
      order by msg.message_id
      returning id, message_id
    ), boxes as (
      insert into mailbox (device_id, seq, message_pk)
      select seqs.device_id, seqs.seq, inserted.id
      from seqs join msg using (n) join inserted using (message_id)
    )
    select own.n, own.seqs from own`,
  );
  const seqsOf = new Map(rows.map((r) => [Number(r.n), r.seqs.map(BigInt)]));
  return items.map(({ req, proofs }, i) => {
    const seqs = seqsOf.get(i + 1);
    if (seqs === undefined) throw new Error(`no seqs came back for message ${req.messageId}`);
    return receiptOf(req, seqs, proofs.message);
  });
}
