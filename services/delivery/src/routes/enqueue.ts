import { subjects } from '@qpq/bus';
import { payloadHash, signDeliveryProof } from '@qpq/crypto';
import { DeliveryProof, Push, type EnqueueRequest, type EnqueueResponse, type RecipientSeq } from '@qpq/proto';
import { InvalidArgumentError, requireIdentity, type Identity, type UnaryHandler } from '@qpq/runtime';
import { sql, type Transaction } from 'kysely';
import type { AppContext } from '../context.js';
import type { DeliveryTables } from '../db/schema.js';
import { retryOnConflict } from '../db/retry.js';
import { MessageIdReusedError, PayloadTooLargeError, TooManyRecipientsError } from '../errors.js';
import { canonicalUuid } from '../ids.js';

/** MLS group ids are short; anything longer is not one. */
const MAX_GROUP_ID_BYTES = 256;

interface ValidEnqueue {
  messageId: string;
  /** Canonical, distinct, sorted as the proof signs them. */
  recipients: string[];
  payload: Uint8Array;
  groupId: Uint8Array;
}

interface Stored {
  duplicate: boolean;
  recipients: RecipientSeq[];
  proof: DeliveryProof;
}

/**
 * Stores one payload for a set of devices, gives each device its next seq, and answers with a signed
 * delivery proof; a retry with the same message_id gets the original answer and stores nothing.
 * Pushes go out only after the transaction committed, and never fail the call.
 */
export function enqueue(ctx: AppContext): UnaryHandler<EnqueueRequest, EnqueueResponse> {
  return async (request, call) => {
    const sender = requireIdentity(call);
    const msg = validateEnqueue(request, ctx);
    const acceptedAtMs = ctx.now();
    const proof = signDeliveryProof(ctx.signingKey, {
      messageHash: payloadHash(msg.payload),
      recipientDeviceIds: msg.recipients,
      acceptedAtMs: BigInt(acceptedAtMs),
    });
    const stored = await retryOnConflict(() =>
      ctx.db.transaction().execute((tx) => storeMessage(tx, ctx, sender, msg, proof, acceptedAtMs)),
    );
    if (stored.duplicate) {
      ctx.metrics.duplicates.add(1);
    } else {
      ctx.metrics.enqueuedMessages.add(1);
      ctx.metrics.fanoutDevices.record(msg.recipients.length);
      publishPushes(ctx, sender, msg, stored.recipients, acceptedAtMs);
    }
    return { recipients: stored.recipients, duplicate: stored.duplicate, deliveryProof: stored.proof };
  };
}

function validateEnqueue(request: EnqueueRequest, ctx: AppContext): ValidEnqueue {
  const { maxRecipients, maxPayloadBytes } = ctx.cfg;
  const messageId = canonicalUuid(request.messageId, 'message_id');
  const count = request.recipientDeviceIds.length;
  if (count === 0) throw new InvalidArgumentError('recipient_device_ids is empty: name at least one device');
  if (count > maxRecipients) throw new TooManyRecipientsError(count, maxRecipients);
  const canonical = request.recipientDeviceIds.map((id) => canonicalUuid(id, 'each recipient device id'));
  // Canonical UUIDs are ASCII: code-unit order is the byte order the proof signs in.
  const recipients = [...new Set(canonical)].sort();
  if (recipients.length !== canonical.length) {
    const repeated = canonical.find((id, i) => canonical.indexOf(id) !== i);
    throw new InvalidArgumentError(`recipient device ${repeated} is listed more than once`);
  }
  if (request.payload.length === 0) throw new InvalidArgumentError('payload is empty');
  if (request.payload.length > maxPayloadBytes) throw new PayloadTooLargeError(request.payload.length, maxPayloadBytes);
  if (request.groupId.length > MAX_GROUP_ID_BYTES) {
    throw new InvalidArgumentError(`group_id is longer than ${MAX_GROUP_ID_BYTES} bytes`);
  }
  return { messageId, recipients, payload: request.payload, groupId: request.groupId };
}

async function storeMessage(
  tx: Transaction<DeliveryTables>,
  ctx: AppContext,
  sender: Identity,
  msg: ValidEnqueue,
  proof: DeliveryProof,
  acceptedAtMs: number,
): Promise<Stored> {
  const inserted = await tx
    .insertInto('messages')
    .values({
      message_id: msg.messageId,
      sender_account_id: sender.accountId,
      sender_username: sender.username,
      sender_device_id: sender.deviceId,
      group_id: msg.groupId.length > 0 ? Buffer.from(msg.groupId) : null,
      payload: Buffer.from(msg.payload),
      payload_sha256: Buffer.from(proof.messageHash),
      accepted_at: new Date(acceptedAtMs),
      expires_at: new Date(acceptedAtMs + ctx.cfg.messageTtlMs),
      proof: Buffer.from(DeliveryProof.encode(proof).finish()),
    })
    .onConflict((oc) => oc.column('message_id').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (!inserted) return originalAnswer(tx, sender, msg, proof);

  // One upsert per device, in sorted order: the row lock each takes is held to commit, so concurrent
  // enqueues to a device queue up behind each other (gap-free seqs) and never deadlock.
  const cursors = await sql<{ device_id: string; last_seq: bigint }>`
    insert into device_cursors (device_id, last_seq)
    select d, 1 from unnest(${msg.recipients}::uuid[]) as d order by d
    on conflict (device_id) do update set last_seq = device_cursors.last_seq + 1
    returning device_id, last_seq`.execute(tx);
  const seqOf = new Map(cursors.rows.map((r) => [r.device_id, r.last_seq]));
  const seqs = msg.recipients.map((id) => {
    const seq = seqOf.get(id);
    if (seq === undefined) throw new Error(`no seq assigned to ${id}`);
    return seq;
  });
  await sql`
    insert into mailbox (device_id, seq, message_pk)
    select d, s, ${inserted.id} from unnest(${msg.recipients}::uuid[], ${seqs}::bigint[]) as t(d, s)`.execute(tx);
  await tx
    .updateTable('messages')
    .set({ recipient_seqs: seqs.map(String) })
    .where('id', '=', inserted.id)
    .execute();
  return {
    duplicate: false,
    recipients: msg.recipients.map((deviceId, i) => ({ deviceId, seq: seqs[i] as bigint })),
    proof,
  };
}

/** The answer the first attempt got; only an identical retry by the same device deserves it. */
async function originalAnswer(
  tx: Transaction<DeliveryTables>,
  sender: Identity,
  msg: ValidEnqueue,
  proof: DeliveryProof,
): Promise<Stored> {
  const row = await tx
    .selectFrom('messages')
    .select(['sender_account_id', 'sender_device_id', 'payload_sha256', 'recipient_seqs', 'proof'])
    .where('message_id', '=', msg.messageId)
    .executeTakeFirstOrThrow();
  const original = DeliveryProof.decode(row.proof);
  const sameMessage =
    row.sender_account_id === sender.accountId &&
    row.sender_device_id === sender.deviceId &&
    Buffer.compare(row.payload_sha256, proof.messageHash) === 0 &&
    original.recipientDeviceIds.length === msg.recipients.length &&
    original.recipientDeviceIds.every((id, i) => id === msg.recipients[i]);
  if (!sameMessage) throw new MessageIdReusedError(msg.messageId);
  return {
    duplicate: true,
    recipients: original.recipientDeviceIds.map((deviceId, i) => ({
      deviceId,
      seq: BigInt(row.recipient_seqs[i] ?? 0),
    })),
    proof: original,
  };
}

/** A hint with the data attached: a device that misses it fetches by seq, so failures only get logged. */
function publishPushes(
  ctx: AppContext,
  sender: Identity,
  msg: ValidEnqueue,
  recipients: RecipientSeq[],
  acceptedAtMs: number,
): void {
  for (const { deviceId, seq } of recipients) {
    try {
      const push = Push.encode({
        kind: {
          $case: 'envelope',
          value: {
            seq,
            messageId: msg.messageId,
            senderUser: sender.username,
            senderDeviceId: sender.deviceId,
            payload: msg.payload,
            acceptedAtMs: BigInt(acceptedAtMs),
            groupId: msg.groupId,
          },
        },
      }).finish();
      ctx.bus.publish(subjects.push(deviceId), push);
    } catch (err) {
      ctx.metrics.pushFailures.add(1);
      ctx.logger.warn({ err, device: deviceId }, 'push not published; the device will fetch');
    }
  }
}
