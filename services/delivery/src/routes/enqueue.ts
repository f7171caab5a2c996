import { subjects } from '@qpq/bus';
import { payloadHash, signDeliveryProof } from '@qpq/crypto';
import { Push, type DeliveryProof, type EnqueueRequest, type EnqueueResponse, type RecipientSeq } from '@qpq/proto';
import { requireIdentity, type Identity, type UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { validateEnqueue, type ValidMessage } from '../enqueue-request.js';
import { CommitConflictError } from '../errors.js';
import { enqueueBatches, storeAlone } from '../enqueue-batches.js';
import type { SignedProofs } from '../store-enqueue.js';

/**
 * Stores one payload for a set of devices, gives each device its next seq, and answers with a signed
 * delivery proof; a retry with the same message_id gets the original answer and stores nothing. An MLS
 * Commit is accepted only for its group's current epoch, and its Welcome (if any) is stored with it in
 * the same transaction. Pushes go out only after the transaction committed, and never fail the call.
 */
export function enqueue(ctx: AppContext): UnaryHandler<EnqueueRequest, EnqueueResponse> {
  const batches = enqueueBatches(ctx);
  return async (request, call) => {
    const sender = requireIdentity(call);
    const req = validateEnqueue(request, ctx.cfg);
    const acceptedAtMs = ctx.now();
    const proofs: SignedProofs = {
      acceptedAtMs,
      message: sign(ctx, req, acceptedAtMs),
      welcome: req.welcome && sign(ctx, req.welcome, acceptedAtMs),
    };
    const item = { sender, req, proofs };
    let stored;
    try {
      // A Commit is ordered against its group's epoch on its own; everything else is group-committed.
      stored = req.commit || req.welcome ? await storeAlone(ctx, item) : await batches.submit(item);
    } catch (err) {
      if (err instanceof CommitConflictError) ctx.metrics.commitConflicts.add(1);
      throw err;
    }
    if (stored.duplicate) {
      ctx.metrics.duplicates.add(1);
    } else {
      const delivered: [ValidMessage, RecipientSeq[]][] = [[req, stored.message.recipients]];
      if (req.welcome && stored.welcome) delivered.push([req.welcome, stored.welcome.recipients]);
      for (const [msg, recipients] of delivered) {
        ctx.metrics.enqueuedMessages.add(1);
        ctx.metrics.fanoutDevices.record(recipients.length);
        publishPushes(ctx, sender, msg, req.groupId, recipients, acceptedAtMs);
      }
    }
    return {
      recipients: stored.message.recipients,
      duplicate: stored.duplicate,
      deliveryProof: stored.message.proof,
      welcomeRecipients: stored.welcome?.recipients ?? [],
      welcomeDeliveryProof: stored.welcome?.proof,
    };
  };
}

function sign(ctx: AppContext, msg: ValidMessage, acceptedAtMs: number): DeliveryProof {
  return signDeliveryProof(ctx.signingKey, {
    messageHash: payloadHash(msg.payload),
    recipientDeviceIds: msg.recipients,
    acceptedAtMs: BigInt(acceptedAtMs),
  });
}

/** A hint with the data attached: a device that misses it fetches by seq, so failures only get logged. */
function publishPushes(
  ctx: AppContext,
  sender: Identity,
  msg: ValidMessage,
  groupId: Uint8Array,
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
            groupId,
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
