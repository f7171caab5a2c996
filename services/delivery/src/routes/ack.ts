import { subjects } from '@qpq/bus';
import { Push, type AckRequest, type AckResponse } from '@qpq/proto';
import { requireIdentity, type UnaryHandler } from '@qpq/runtime';
import { sql } from 'kysely';
import type { AppContext } from '../context.js';
import { retryOnConflict } from '../db/retry.js';
import { callerDeviceId, toInt8 } from '../ids.js';

/**
 * Cumulative ack: everything of the calling device up to `up_to_seq` (never beyond what was assigned,
 * never backwards) is acknowledged and its mailbox rows deleted. A payload every recipient has
 * acknowledged is deleted too; its message row stays as the idempotency record until it expires, and
 * its sender gets a MessageDelivered push (after commit; best effort like every push).
 */
export function ack(ctx: AppContext): UnaryHandler<AckRequest, AckResponse> {
  return async (request, call) => {
    const deviceId = callerDeviceId(requireIdentity(call));
    const upTo = toInt8(request.upToSeq);
    const { ackedUpToSeq, acked, delivered } = await retryOnConflict(() =>
      ctx.db.transaction().execute(async (tx) => {
        const cursor = await tx
          .updateTable('device_cursors')
          .set({ acked_seq: sql<bigint>`greatest(acked_seq, least(${upTo}::bigint, last_seq))` })
          .where('device_id', '=', deviceId)
          .returning('acked_seq')
          .executeTakeFirst();
        if (!cursor) return { ackedUpToSeq: 0n, acked: 0, delivered: [] };
        const deleted = await tx
          .deleteFrom('mailbox')
          .where('device_id', '=', deviceId)
          .where('seq', '<=', cursor.acked_seq)
          .returning('message_pk')
          .execute();
        // As one array parameter: an ack can cover more rows than a statement may have parameters.
        const messagePks = [...new Set(deleted.map((r) => String(r.message_pk)))];
        const ofThese = sql<boolean>`id = any(${messagePks}::bigint[])`;
        let delivered: { message_id: string; sender_device_id: string }[] = [];
        if (messagePks.length > 0) {
          // Lock the messages first (in id order), so that the check below runs on a fresh snapshot that
          // sees every other recipient's committed ack: two last acks racing each other cannot both miss it.
          await tx
            .selectFrom('messages')
            .select('id')
            .where(ofThese)
            .where('payload', 'is not', null)
            .orderBy('id')
            .forUpdate()
            .execute();
          delivered = await tx
            .updateTable('messages')
            .set({ payload: null })
            .where(ofThese)
            .where('payload', 'is not', null)
            .where(({ not, exists, selectFrom }) =>
              not(
                exists(selectFrom('mailbox').select('mailbox.seq').whereRef('mailbox.message_pk', '=', 'messages.id')),
              ),
            )
            .returning(['message_id', 'sender_device_id'])
            .execute();
        }
        return { ackedUpToSeq: cursor.acked_seq, acked: deleted.length, delivered };
      }),
    );
    // After commit: a transaction retried on conflict counts once.
    ctx.metrics.ackedMessages.add(acked);
    for (const { message_id: messageId, sender_device_id: sender } of delivered) {
      try {
        const push = Push.encode({ kind: { $case: 'messageDelivered', value: { messageId } } }).finish();
        ctx.bus.publish(subjects.push(sender), push);
      } catch (err) {
        ctx.metrics.pushFailures.add(1);
        ctx.logger.warn({ err, device: sender }, 'delivered notice not published');
      }
    }
    return { ackedUpToSeq };
  };
}
