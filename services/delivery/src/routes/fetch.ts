import type { Envelope, FetchRequest, FetchResponse } from '@qpq/proto';
import { requireIdentity, type UnaryHandler } from '@qpq/runtime';
import { sql } from 'kysely';
import type { AppContext } from '../context.js';
import { callerDeviceId, toInt8 } from '../ids.js';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 500;
/** Protobuf framing and the other fields of one envelope, on top of its payload. */
const ENVELOPE_OVERHEAD_BYTES = 256;

/**
 * The calling device's envelopes after `after_seq` (and after what it already acknowledged), in seq
 * order, with the highest seq assigned so far so that the client can tell a gap from the end. An
 * answer holds at most `limit` envelopes and QPQ_FETCH_MAX_BYTES of them (but always one), so no
 * mailbox, however full of large messages, makes an answer too big to deliver.
 */
export function fetch(ctx: AppContext): UnaryHandler<FetchRequest, FetchResponse> {
  return async (request, call) => {
    const deviceId = callerDeviceId(requireIdentity(call));
    const limit = Math.min(request.limit || DEFAULT_LIMIT, MAX_LIMIT);
    const afterSeq = toInt8(request.afterSeq);
    // One snapshot for both reads: last_seq is then never below a seq we return.
    return ctx.db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute(async (tx) => {
        const cursor = await tx
          .selectFrom('device_cursors')
          .select(['last_seq', 'acked_seq'])
          .where('device_id', '=', deviceId)
          .executeTakeFirst();
        if (!cursor) return { envelopes: [], hasMore: false, lastSeq: 0n };
        const from = afterSeq > cursor.acked_seq ? afterSeq : cursor.acked_seq;
        const rows = await tx
          .selectFrom('mailbox as mb')
          .innerJoin('messages as m', 'm.id', 'mb.message_pk')
          .select([
            'mb.seq',
            'm.message_id',
            'm.sender_username',
            'm.sender_device_id',
            'm.payload',
            'm.accepted_at',
            'm.group_id',
          ])
          .where('mb.device_id', '=', deviceId)
          .where('mb.seq', '>', from)
          // Expired but not yet swept: as good as gone.
          .where('m.expires_at', '>', sql<Date>`now()`)
          .where('m.payload', 'is not', null)
          .orderBy('mb.seq')
          .limit(limit + 1)
          .execute();
        const taken: typeof rows = [];
        let bytes = 0;
        for (const r of rows.slice(0, limit)) {
          bytes += (r.payload?.length ?? 0) + ENVELOPE_OVERHEAD_BYTES;
          if (taken.length > 0 && bytes > ctx.cfg.fetchMaxBytes) break;
          taken.push(r);
        }
        const envelopes: Envelope[] = taken.map((r) => ({
          seq: r.seq,
          messageId: r.message_id,
          senderUser: r.sender_username,
          senderDeviceId: r.sender_device_id,
          payload: r.payload ?? new Uint8Array(0),
          acceptedAtMs: BigInt(r.accepted_at.getTime()),
          groupId: r.group_id ?? new Uint8Array(0),
        }));
        return { envelopes, hasMore: rows.length > taken.length, lastSeq: cursor.last_seq };
      });
  };
}
