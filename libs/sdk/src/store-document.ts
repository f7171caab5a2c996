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
  /** Safety numbers this device computed, by peer address: a different one later means a key changed. */
  safetyNumbers?: Record<string, string>;
  /** Uploads cut off before they finished, by upload id. */
  uploads?: Record<string, PendingUpload>;
  /** The key-transparency log as this device has seen it (absent until the first check). */
  keyTransparency?: KeyTransparencyRecord;
}

/**
 * The log's key, pinned from the first head seen, and the newest head this device accepted: every
 * later head must be signed by that key and consistent with this one.
 */
export interface KeyTransparencyRecord {
  /** Raw Ed25519 public key, base64. */
  logKey: string;
  head: { treeSize: number; rootHash: string; timestampMs: number; signature: string };
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
  /** Id of the conversation it belongs to (ConversationRecord.id). */
  conversation: string;
  /** Encoded MLS group state, base64. */
  state: string;
  createdAtMs: number;
  /** Accounts (addresses) that asked to leave: a remaining member commits their removal. */
  pendingRemovals?: string[];
  /**
   * Members auth does not vouch for (identity → why): nothing is sent in the group while any is in it,
   * and members remove them.
   */
  untrusted?: Record<string, string>;
}

export interface ConversationRecord {
  /**
   * Absent in stores written before groups existed: 'dm'. 'self': the group of this account's own
   * devices (history hand-over), never shown as a conversation.
   */
  kind?: 'dm' | 'group' | 'self';
  /** DM: the peer's address, which is also the conversation's id. Group: the group id (hex). Self: '~self'. */
  peer: string;
  /** Group name and disappearing timer (absent: no name, no timer). */
  settings?: { name: string; disappearAfterMs: number };
  /** This account left the group or was removed from it. */
  left?: boolean;
  /** History hand-over parts received so far, by transfer id (base64 chunk data by index). */
  pendingHistory?: Record<string, string[]>;
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
  replyTo?: string;
  /** Emoji → addresses that reacted with it. */
  reactions?: Record<string, string[]>;
  edited?: boolean;
  deleted?: boolean;
  /** Outgoing from this device: every recipient device acknowledged it (MessageDelivered). */
  reachedAll?: boolean;
  /** Outgoing: members that sent a read receipt. */
  readBy?: string[];
  /** Incoming: a read receipt went out for it. */
  receiptSent?: boolean;
  /** Disappearing messages: deleted from this store after this time. */
  expiresAtMs?: number;
  /** A file message: what is needed to fetch and decrypt it (the text is the file's name). */
  file?: FileRecord;
}

/** A file as a message carries it (e2e.proto FileRef). */
export interface FileRecord {
  /** Hex SHA-256 of the ciphertext: the blob id. */
  blobId: string;
  /** The file key, base64. */
  key: string;
  /** Plaintext bytes. */
  size: number;
  name: string;
  mediaType: string;
}

/**
 * An upload not finished yet, kept so that the same file sent again continues where it stopped: the
 * same key makes the same ciphertext, so the blob service's stored bytes still fit.
 */
export interface PendingUpload {
  uploadId: string;
  /** Absolute path, size and mtime: the same file, unchanged. */
  path: string;
  size: number;
  mtimeMs: number;
  /** File key, base64. */
  key: string;
  /** Hex SHA-256 of the ciphertext. */
  sha256: string;
  createdAtMs: number;
}

export interface OutboxEntry {
  /** UUIDv7, the Enqueue message_id: a retry with it stores nothing new. */
  messageId: string;
  kind: 'welcome' | 'application' | 'commit';
  conversation: string;
  groupId: string;
  recipientDeviceIds: string[];
  /** The padded E2EPayload, base64. */
  payload: string;
  createdAtMs: number;
  attempts: number;
  /** Disappearing messages: the server deletes the envelope this long after accepting it. */
  ttlSeconds?: number;
  /** A commit: what it changes into once the delivery service accepts it (see commits.ts). */
  commit?: PendingCommit;
}

/** A Commit waiting for the delivery service to accept it as its group's next epoch. */
export interface PendingCommit {
  /** The epoch the Commit was made in. */
  epoch: number;
  /** Group state after the Commit, base64: it replaces the group's state only once the Commit is accepted. */
  newState: string;
  /** Applied already (a new group whose only member is this device cannot lose its first Commit). */
  applied: boolean;
  /** The Welcome for the devices it adds, sent in the same Enqueue. */
  welcome?: { messageId: string; recipientDeviceIds: string[]; payload: string };
  /** Devices it adds that should get this device's history of the conversation (this account's new devices). */
  historyFor?: string[];
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
