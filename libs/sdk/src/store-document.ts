/**
 * What the encrypted local store holds: one JSON document per data dir. Bytes are base64; sequence
 * numbers are plain numbers (a device's mailbox stays far below 2^53).
 */

export const STORE_VERSION = 1;

export interface StoreDocument {
  version: typeof STORE_VERSION;
  account?: AccountRecord;
  /** Encoded device keys (libs/crypto encodeDeviceKeys), base64. */
  deviceKeys?: string;
  /** This device's KeyPackages whose private parts are still needed, by KeyPackageRef (hex). */
  keyPackages: Record<string, KeyPackageRecord>;
  /** MLS groups this device is in, by group id (hex). */
  groups: Record<string, GroupRecord>;
  /** Conversations by name: for a DM, the peer's address. */
  conversations: Record<string, ConversationRecord>;
  /** How far this device has read its mailbox. */
  cursor: { processedSeq: number; ackedSeq: number };
  /** Envelopes stored locally but not yet accepted by the delivery service, oldest first. */
  outbox: OutboxEntry[];
}

export interface AccountRecord {
  username: string;
  address: string;
  accountId: string;
  deviceId: string;
  sessionToken: string;
  sessionExpiresAtMs: number;
  /** host:port the account was created against, for messages. */
  server: string;
  /**
   * The delivery service's proof-signing key (raw Ed25519, base64), pinned from the first proof:
   * a later proof under another key is refused.
   */
  deliveryKey?: string;
}

export interface KeyPackageRecord {
  publicBytes: string;
  privateBytes: string;
  lastResort: boolean;
  createdAtMs: number;
}

export interface GroupRecord {
  conversation: string;
  /** Encoded MLS group state, base64. */
  state: string;
  createdAtMs: number;
}

export interface ConversationRecord {
  kind: 'dm';
  /** The peer's address (a DM) — also the conversation's name. */
  peer: string;
  /**
   * The group new messages go to. When both sides created a DM at once there are two groups; both
   * keep the one with the smaller id, so they converge without talking about it.
   */
  sendGroupId: string;
  groupIds: string[];
  history: HistoryEntry[];
}

export interface HistoryEntry {
  id: string;
  direction: 'in' | 'out';
  /** Sender's address. */
  from: string;
  text: string;
  sentAtMs: number;
  /** When this device stored it. */
  storedAtMs: number;
  /** Mailbox seq it arrived with (incoming only). */
  seq?: number;
  /** Printed by recv/repl already (incoming only). */
  shown?: boolean;
  /** Outgoing: the delivery service accepted it (proof verified). */
  delivered?: boolean;
}

export interface OutboxEntry {
  /** UUIDv7, the Enqueue message_id: a retry with it stores nothing new. */
  messageId: string;
  kind: 'welcome' | 'application';
  conversation: string;
  groupId: string;
  recipientDeviceIds: string[];
  /** The padded E2EPayload, base64. */
  payload: string;
  createdAtMs: number;
  attempts: number;
}

export function emptyDocument(): StoreDocument {
  return {
    version: STORE_VERSION,
    keyPackages: {},
    groups: {},
    conversations: {},
    cursor: { processedSeq: 0, ackedSeq: 0 },
    outbox: [],
  };
}
