import { decodePayload, payloadFraming } from '@qpq/crypto';
import type { EnqueueRequest } from '@qpq/proto';
import { InvalidArgumentError } from '@qpq/runtime';
import type { DeliveryConfig } from './config.js';
import { PayloadTooLargeError, TooManyRecipientsError } from './errors.js';
import { canonicalUuid, INT8_MAX } from './ids.js';

/** MLS group ids are short; anything longer is not one. */
const MAX_GROUP_ID_BYTES = 256;

/** One payload for a set of devices, as stored and signed. */
export interface ValidMessage {
  messageId: string;
  /** Canonical, distinct, sorted as the proof signs them. */
  recipients: string[];
  payload: Uint8Array;
}

/** What the service reads of a Commit to order it: the epoch it was made in, of which group. */
export interface CommitFraming {
  groupId: Uint8Array;
  epoch: bigint;
}

export interface ValidEnqueue extends ValidMessage {
  /** The MLS framing's group id when the payload is an MLS group message, else the request's (maybe empty). */
  groupId: Uint8Array;
  /** Set when the payload is an MLS Commit: it is accepted only for its group's current epoch. */
  commit: CommitFraming | undefined;
  /** The Welcome stored and delivered with the Commit. */
  welcome: ValidMessage | undefined;
  /** How long after acceptance the message (and its Welcome) expires. */
  ttlMs: number;
}

/**
 * Checks an Enqueue before anything is stored and reads the MLS framing of its payload. Payloads that
 * are not MLS group messages stay opaque: only the framing of an E2EPayload.mls_message is read, the
 * same way clients decode it.
 */
export function validateEnqueue(request: EnqueueRequest, cfg: DeliveryConfig): ValidEnqueue {
  const message = validateMessage(request, cfg, {
    messageId: 'message_id',
    recipients: 'recipient_device_ids',
    recipient: 'each recipient device id',
    payload: 'payload',
  });
  let groupId = request.groupId;
  let commit: CommitFraming | undefined;
  const framing = payloadFraming(message.payload);
  if (framing?.groupId !== undefined && framing.epoch !== undefined) {
    if (request.groupId.length > 0 && Buffer.compare(request.groupId, framing.groupId) !== 0) {
      throw new InvalidArgumentError(
        'group_id differs from the group id in the MLS message: leave it empty or match it',
      );
    }
    groupId = framing.groupId;
    if (framing.contentType === 'commit') {
      // The group's epoch after this Commit must still be a Postgres bigint.
      if (framing.epoch >= INT8_MAX) throw new InvalidArgumentError(`the Commit's epoch ${framing.epoch} is too large`);
      commit = { groupId, epoch: framing.epoch };
    }
  }
  // A Welcome on its own would let a member bring someone into a fork of the group that no Commit
  // ordered: it travels only in EnqueueRequest.welcome, beside the Commit that won its epoch.
  if (isWelcome(message.payload)) {
    throw new InvalidArgumentError('a Welcome travels only with its Commit, in EnqueueRequest.welcome');
  }
  if (groupId.length > MAX_GROUP_ID_BYTES) {
    throw new InvalidArgumentError(`group_id is longer than ${MAX_GROUP_ID_BYTES} bytes`);
  }

  let welcome: ValidMessage | undefined;
  if (request.welcome !== undefined) {
    // Only a Commit's Welcome is ordered with it; on its own a Welcome could outrun the Commit it needs.
    if (commit === undefined) throw new InvalidArgumentError('welcome is allowed only with an MLS Commit as payload');
    welcome = validateMessage(request.welcome, cfg, {
      messageId: 'welcome.message_id',
      recipients: 'welcome.recipient_device_ids',
      recipient: 'each welcome recipient device id',
      payload: 'welcome.payload',
    });
    if (welcome.messageId === message.messageId) {
      throw new InvalidArgumentError('welcome.message_id must differ from message_id');
    }
    // Anything else here (an MLS Commit above all) would bypass the ordering its own Enqueue gets.
    if (!isWelcome(welcome.payload))
      throw new InvalidArgumentError('welcome.payload is not a padded E2EPayload.welcome');
  }

  const ttlMs = request.ttlSeconds > 0 ? Math.min(request.ttlSeconds * 1000, cfg.messageTtlMs) : cfg.messageTtlMs;
  return { ...message, groupId, commit, welcome, ttlMs };
}

interface FieldNames {
  messageId: string;
  recipients: string;
  recipient: string;
  payload: string;
}

function validateMessage(
  request: { messageId: string; recipientDeviceIds: string[]; payload: Uint8Array },
  cfg: DeliveryConfig,
  field: FieldNames,
): ValidMessage {
  const { maxRecipients, maxPayloadBytes } = cfg;
  const messageId = canonicalUuid(request.messageId, field.messageId);
  const count = request.recipientDeviceIds.length;
  if (count === 0) throw new InvalidArgumentError(`${field.recipients} is empty: name at least one device`);
  if (count > maxRecipients) throw new TooManyRecipientsError(count, maxRecipients);
  const canonical = request.recipientDeviceIds.map((id) => canonicalUuid(id, field.recipient));
  // Canonical UUIDs are ASCII: code-unit order is the byte order the proof signs in.
  const recipients = [...new Set(canonical)].sort();
  if (recipients.length !== canonical.length) {
    const repeated = canonical.find((id, i) => canonical.indexOf(id) !== i);
    throw new InvalidArgumentError(`recipient device ${repeated} is listed more than once in ${field.recipients}`);
  }
  if (request.payload.length === 0) throw new InvalidArgumentError(`${field.payload} is empty`);
  if (request.payload.length > maxPayloadBytes) {
    throw new PayloadTooLargeError(request.payload.length, maxPayloadBytes, field.payload);
  }
  return { messageId, recipients, payload: request.payload };
}

function isWelcome(payload: Uint8Array): boolean {
  try {
    return decodePayload(payload).$case === 'welcome';
  } catch {
    return false;
  }
}
