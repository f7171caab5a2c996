// What the SDK hands its users (the CLI, tests, the benchmark): plain read-only views of the store.

/** `dm`: two accounts, named by the peer's address. `group`: any number of accounts, with a name. */
export type ConversationKind = 'dm' | 'group';

export interface ConversationSummary {
  /** Stable id: the peer's address for a DM, the MLS group id (hex) for a group. */
  id: string;
  kind: ConversationKind;
  /** What to show: the peer's address for a DM, the group's name for a group. */
  name: string;
  /** DM only: the peer's address. */
  peer?: string;
  /** Member accounts (addresses), this one included, sorted. */
  members: string[];
  messages: number;
  /** Messages not yet handed out by takeUnshown (recv, the REPL's live output). */
  unshown: number;
  /** Incoming messages this account has sent no read receipt for (markRead). */
  unread: number;
  /** Disappearing-message timer; 0 when messages do not disappear. */
  disappearAfterMs: number;
  /** This account left or was removed: nothing more arrives. */
  left: boolean;
}

/** A message as the SDK hands it to its users (events, recv, history). */
export interface ReceivedMessage {
  id: string;
  /** Sender's address. */
  from: string;
  text: string;
  /** Conversation id (see ConversationSummary.id). */
  conversation: string;
  /** Group conversations only: the group's name. */
  group?: string;
  /** When the sender says it sent the message. */
  sentAt: Date;
  /** Mailbox seq it arrived with. */
  seq?: number;
  /** The id of the message this one replies to. */
  replyTo?: string;
  /** Deleted by its author (the text is then empty). */
  deleted?: boolean;
  /** A file message (its text is the file's name): download it with downloadFile(file.id, …). */
  file?: FileSummary;
}

export interface FileSummary {
  /** The blob id (hex SHA-256 of the ciphertext). */
  id: string;
  name: string;
  /** Plaintext bytes. */
  size: number;
  mediaType: string;
}

/**
 * Outgoing messages: `pending` waits in the outbox, `sent` was accepted by the delivery service
 * (proof verified), `delivered` reached every recipient device, `read` was read by another member.
 */
export type MessageStatus = 'pending' | 'sent' | 'delivered' | 'read';

export interface HistoryItem extends ReceivedMessage {
  /** 1-based position in the conversation's stored history: what /reply N, /react, /edit, /delete name. */
  index: number;
  /** `out`: sent by this account (from this device or another of its devices). */
  direction: 'in' | 'out';
  status?: MessageStatus;
  reactions: { emoji: string; from: string[] }[];
  edited: boolean;
  deleted: boolean;
  /** Addresses of the members who sent a read receipt for it. */
  readBy: string[];
}

export interface MemberSummary {
  address: string;
  /** Device ids of this account that are in the group. */
  devices: string[];
}

export interface DeviceSummary {
  deviceId: string;
  name: string;
  createdAt: Date;
  /** This data dir's device. */
  current: boolean;
}

export interface SafetyNumber {
  peer: string;
  /** 60 digits in 12 groups of 5, the same on both sides. */
  number: string;
  /** It differs from the number this device computed last time for the peer: a key changed. */
  changed: boolean;
  previous?: string;
}

/** Things that happen in a conversation besides new messages. */
export type ConversationEvent =
  | { kind: 'typing'; conversation: string; from: string }
  | { kind: 'reaction'; conversation: string; from: string; targetId: string; emoji: string; removed: boolean }
  | { kind: 'edit'; conversation: string; from: string; targetId: string; text: string }
  | { kind: 'delete'; conversation: string; from: string; targetId: string }
  | { kind: 'read'; conversation: string; from: string; messageIds: string[] }
  | { kind: 'settings'; conversation: string; from: string; name: string; disappearAfterMs: number }
  /** Someone joined, left, or was removed (this account included); `text` says it for a person. */
  | { kind: 'membership'; conversation: string; text: string };
