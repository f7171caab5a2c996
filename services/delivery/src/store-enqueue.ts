import { DeliveryProof, type RecipientSeq } from '@qpq/proto';
import type { Identity } from '@qpq/runtime';
import { sql, type Transaction } from 'kysely';
import { takeGroupEpoch } from './commit-order.js';
import type { DeliveryTables } from './db/schema.js';
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
  const receipts: Receipt[] = [];
  for (const [i, { pk, msg, proof }] of messages.entries()) {
    const own = seqs[i] as bigint[];
    await sql`
      insert into mailbox (device_id, seq, message_pk)
      select d, s, ${pk} from unnest(${msg.recipients}::uuid[], ${own}::bigint[]) as t(d, s)`.execute(tx);
    await tx
      .updateTable('messages')
      .set({ recipient_seqs: own.map(String) })
      .where('id', '=', pk)
      .execute();
    receipts.push({ recipients: msg.recipients.map((deviceId, j) => ({ deviceId, seq: own[j] as bigint })), proof });
  }
  return { duplicate: false, message: receipts[0] as Receipt, welcome: receipts[1] };
}

interface RowFields {
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
    .values({
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
    })
    .onConflict((oc) => oc.column('message_id').doNothing())
    .returning('id')
    .executeTakeFirst();
  return inserted?.id;
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
