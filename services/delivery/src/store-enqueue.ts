import { DeliveryProof, type RecipientSeq } from '@qpq/proto';
import type { Identity } from '@qpq/runtime';
import { sql, type Insertable, type Transaction } from 'kysely';
import { takeGroupEpoch } from './commit-order.js';
import type { DeliveryTables, MessagesTable } from './db/schema.js';
import type { ValidEnqueue, ValidMessage } from './enqueue-request.js';
import { MessageIdReusedError } from './errors.js';

/** What the sender is told about one stored message. */
export interface Receipt {
  recipients: RecipientSeq[];
  proof: DeliveryProof;
}

export interface StoredEnqueue {
  duplicate: boolean;
  message: Receipt;
  /** The Welcome's receipt when the Commit carried one. */
  welcome: Receipt | undefined;
}

/** Proofs signed before the transaction, with the acceptance time they sign. */
export interface SignedProofs {
  acceptedAtMs: number;
  message: DeliveryProof;
  welcome: DeliveryProof | undefined;
}

/**
 * The body of the Enqueue transaction. In this order: the message row (a message_id already there makes
 * this a retry, answered with the original receipts before anything else is checked, so a retry of a
 * Commit that won is never refused for the epoch it moved on), the group's epoch for a Commit (which
 * may throw CommitConflictError and roll everything back), the Welcome's row, then the recipients' seqs.
 */
export async function storeEnqueue(
  tx: Transaction<DeliveryTables>,
  sender: Identity,
  req: ValidEnqueue,
  proofs: SignedProofs,
): Promise<StoredEnqueue> {
  const acceptedAt = new Date(proofs.acceptedAtMs);
  const expiresAt = new Date(proofs.acceptedAtMs + req.ttlMs);
  const row = { sender, groupId: req.groupId, acceptedAt, expiresAt };
  const messagePk = await insertMessage(tx, req, proofs.message, { ...row, welcomeMessageId: req.welcome?.messageId });
  if (messagePk === undefined) return originalAnswer(tx, sender, req, proofs);

  if (req.commit) await takeGroupEpoch(tx, req.commit);

  const messages: { pk: bigint; msg: ValidMessage; proof: DeliveryProof }[] = [
    { pk: messagePk, msg: req, proof: proofs.message },
  ];
  if (req.welcome && proofs.welcome) {
    // The Welcome goes to the same group id: its recipients learn it when they join anyway.
    const welcomePk = await insertMessage(tx, req.welcome, proofs.welcome, { ...row, welcomeMessageId: undefined });
    // Not a retry (that matched the Commit's id above): another message already has this id.
    if (welcomePk === undefined) throw new MessageIdReusedError(req.welcome.messageId);
    messages.push({ pk: welcomePk, msg: req.welcome, proof: proofs.welcome });
  }

  const seqs = await assignSeqs(
    tx,
    messages.map((m) => m.msg.recipients),
  );
  await writeMailboxes(
    tx,
    messages.map(({ pk }, i) => ({ pk, seqs: seqs[i] as bigint[] })),
    messages.map((m) => m.msg.recipients),
  );
  const receipts = messages.map(({ msg, proof }, i) => receiptOf(msg, seqs[i] as bigint[], proof));
  return { duplicate: false, message: receipts[0] as Receipt, welcome: receipts[1] };
}

/** One Enqueue of a batch: a message that is neither a Commit nor carries a Welcome. */
export interface BatchedEnqueue {
  sender: Identity;
  req: ValidEnqueue;
  proofs: SignedProofs;
}

/**
 * The body of a transaction that stores many plain messages at once, in four statements: the rows (in
 * message_id order, so concurrent batches take the unique index's locks in one order), the seqs
 * (recipients' cursors in one sorted upsert; seqs in the order the requests came within the batch),
 * the mailbox rows, the seqs on the rows. The batch path for when an id is already taken (store-plain.ts
 * is the common one). A request whose message_id was already taken (a retry, or another message reusing
 * it) gets `undefined`: the caller answers it on its own with storeEnqueue, after this transaction
 * committed. A retry racing its original on the other path may deadlock with it: Postgres breaks that,
 * and retryOnConflict runs the loser again.
 */
export async function storeMessages(
  tx: Transaction<DeliveryTables>,
  items: readonly BatchedEnqueue[],
): Promise<(Receipt | undefined)[]> {
  for (const { req } of items) {
    if (req.commit || req.welcome) throw new Error(`message ${req.messageId} is a Commit: it cannot be batched`);
  }
  const byId = items
    .map((item, index) => ({ item, index }))
    .sort((a, b) =>
      a.item.req.messageId < b.item.req.messageId
        ? -1
        : a.item.req.messageId > b.item.req.messageId
          ? 1
          : a.index - b.index,
    );
  const rows = byId.map(({ item: { sender, req, proofs } }) =>
    messageRow(req, proofs.message, {
      sender,
      groupId: req.groupId,
      acceptedAt: new Date(proofs.acceptedAtMs),
      expiresAt: new Date(proofs.acceptedAtMs + req.ttlMs),
      welcomeMessageId: undefined,
    }),
  );
  const inserted = await tx
    .insertInto('messages')
    .values(rows)
    .onConflict((oc) => oc.column('message_id').doNothing())
    .returning(['id', 'message_id'])
    .execute();
  const pkOf = new Map(inserted.map((r) => [r.message_id, r.id]));
  // An id twice in one batch: the row is the first request's (the sort is stable); the second is its retry.
  const stored: { index: number; pk: bigint }[] = [];
  for (const [index, { req }] of items.entries()) {
    const pk = pkOf.get(req.messageId);
    if (pk === undefined) continue;
    pkOf.delete(req.messageId);
    stored.push({ index, pk });
  }
  if (stored.length === 0) return items.map(() => undefined);
  const recipients = stored.map(({ index }) => (items[index] as BatchedEnqueue).req.recipients);
  const seqs = await assignSeqs(tx, recipients);
  await writeMailboxes(
    tx,
    stored.map(({ pk }, i) => ({ pk, seqs: seqs[i] as bigint[] })),
    recipients,
  );
  const receipts = new Array<Receipt | undefined>(items.length).fill(undefined);
  for (const [i, { index }] of stored.entries()) {
    const { req, proofs } = items[index] as BatchedEnqueue;
    receipts[index] = receiptOf(req, seqs[i] as bigint[], proofs.message);
  }
  return receipts;
}

export interface RowFields {
  sender: Identity;
  groupId: Uint8Array;
  acceptedAt: Date;
  expiresAt: Date;
  welcomeMessageId: string | undefined;
}

/** The message's row, or undefined when its message_id is already taken. */
async function insertMessage(
  tx: Transaction<DeliveryTables>,
  msg: ValidMessage,
  proof: DeliveryProof,
  row: RowFields,
): Promise<bigint | undefined> {
  const inserted = await tx
    .insertInto('messages')
    .values(messageRow(msg, proof, row))
    .onConflict((oc) => oc.column('message_id').doNothing())
    .returning('id')
    .executeTakeFirst();
  return inserted?.id;
}

export function messageRow(msg: ValidMessage, proof: DeliveryProof, row: RowFields): Insertable<MessagesTable> {
  return {
    message_id: msg.messageId,
    sender_account_id: row.sender.accountId,
    sender_username: row.sender.username,
    sender_device_id: row.sender.deviceId,
    group_id: row.groupId.length > 0 ? Buffer.from(row.groupId) : null,
    payload: Buffer.from(msg.payload),
    payload_sha256: Buffer.from(proof.messageHash),
    accepted_at: row.acceptedAt,
    expires_at: row.expiresAt,
    proof: Buffer.from(DeliveryProof.encode(proof).finish()),
    welcome_message_id: row.welcomeMessageId ?? null,
  };
}

/**
 * Each stored message's mailbox rows (one per recipient, at its seq) and the seqs on the message's row
 * (its receipt for retries): two statements for any number of messages.
 */
async function writeMailboxes(
  tx: Transaction<DeliveryTables>,
  stored: { pk: bigint; seqs: bigint[] }[],
  recipients: string[][],
): Promise<void> {
  const devices = recipients.flat();
  const seqs = stored.flatMap((m) => m.seqs);
  const pks = stored.flatMap((m) => m.seqs.map(() => m.pk));
  await sql`
    insert into mailbox (device_id, seq, message_pk)
    select * from unnest(${devices}::uuid[], ${seqs}::bigint[], ${pks}::bigint[])`.execute(tx);
  const rows = stored.map((m) => sql`(${m.pk}::bigint, ${m.seqs.map(String)}::bigint[])`);
  await sql`
    update messages set recipient_seqs = v.seqs
    from (values ${sql.join(rows)}) as v(pk, seqs)
    where messages.id = v.pk`.execute(tx);
}

export function receiptOf(msg: ValidMessage, seqs: bigint[], proof: DeliveryProof): Receipt {
  return { recipients: msg.recipients.map((deviceId, j) => ({ deviceId, seq: seqs[j] as bigint })), proof };
}

/**
 * Each list's seqs, for every device its next ones. One upsert over all devices, in sorted order: the
 * row lock each takes is held to commit, so concurrent enqueues to a device queue up behind each other
 * (gap-free seqs) and never deadlock. A device in both lists gets the Commit's seq first.
 */
async function assignSeqs(tx: Transaction<DeliveryTables>, lists: string[][]): Promise<bigint[][]> {
  const counts = new Map<string, number>();
  for (const list of lists) for (const id of list) counts.set(id, (counts.get(id) ?? 0) + 1);
  const devices = [...counts.keys()].sort();
  const cursors = await sql<{ device_id: string; last_seq: bigint }>`
    insert into device_cursors (device_id, last_seq)
    select d, n from unnest(${devices}::uuid[], ${devices.map((d) => counts.get(d))}::bigint[]) as t(d, n) order by d
    on conflict (device_id) do update set last_seq = device_cursors.last_seq + excluded.last_seq
    returning device_id, last_seq`.execute(tx);
  const next = new Map(cursors.rows.map((r) => [r.device_id, r.last_seq - BigInt(counts.get(r.device_id) ?? 0) + 1n]));
  return lists.map((list) =>
    list.map((id) => {
      const seq = next.get(id);
      if (seq === undefined) throw new Error(`no seq assigned to ${id}`);
      next.set(id, seq + 1n);
      return seq;
    }),
  );
}

/** The receipts the first attempt got; only an identical retry by the same device deserves them. */
async function originalAnswer(
  tx: Transaction<DeliveryTables>,
  sender: Identity,
  req: ValidEnqueue,
  proofs: SignedProofs,
): Promise<StoredEnqueue> {
  const message = await storedReceipt(tx, sender, req, proofs.message);
  // The sweep deleted it between our insert and this read: rare enough to answer INTERNAL (retryable).
  if (message === undefined) throw new Error(`message ${req.messageId} vanished while answering its retry`);
  if ((message.welcomeMessageId ?? undefined) !== req.welcome?.messageId) throw new MessageIdReusedError(req.messageId);
  let welcome: Receipt | undefined;
  if (req.welcome && proofs.welcome) {
    // Gone only when the sweep deleted it, which it does with its Commit (they expire together).
    welcome = (await storedReceipt(tx, sender, req.welcome, proofs.welcome))?.receipt;
  }
  return { duplicate: true, message: message.receipt, welcome };
}

/**
 * The stored receipt of `msg`'s message_id, if that row is the same message (sender device, payload,
 * recipient set); throws MessageIdReusedError when it is another one, undefined when there is no row.
 */
async function storedReceipt(
  tx: Transaction<DeliveryTables>,
  sender: Identity,
  msg: ValidMessage,
  proof: DeliveryProof,
): Promise<{ receipt: Receipt; welcomeMessageId: string | null } | undefined> {
  const row = await tx
    .selectFrom('messages')
    .select([
      'sender_account_id',
      'sender_device_id',
      'payload_sha256',
      'recipient_seqs',
      'proof',
      'welcome_message_id',
    ])
    .where('message_id', '=', msg.messageId)
    .executeTakeFirst();
  if (!row) return undefined;
  const original = DeliveryProof.decode(row.proof);
  const sameMessage =
    row.sender_account_id === sender.accountId &&
    row.sender_device_id === sender.deviceId &&
    Buffer.compare(row.payload_sha256, proof.messageHash) === 0 &&
    original.recipientDeviceIds.length === msg.recipients.length &&
    original.recipientDeviceIds.every((id, i) => id === msg.recipients[i]);
  if (!sameMessage) throw new MessageIdReusedError(msg.messageId);
  return {
    receipt: {
      recipients: original.recipientDeviceIds.map((deviceId, i) => ({
        deviceId,
        seq: BigInt(row.recipient_seqs[i] ?? 0),
      })),
      proof: original,
    },
    welcomeMessageId: row.welcome_message_id,
  };
}
