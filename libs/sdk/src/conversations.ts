import type { ConversationRecord, HistoryEntry, StoreDocument } from './store-document.js';

/** Messages kept per conversation; older ones that were already shown are dropped first. */
export const HISTORY_LIMIT = 1000;

/** A message as the SDK hands it to its users (events, recv, history). */
export interface ReceivedMessage {
  id: string;
  /** Sender's address. */
  from: string;
  text: string;
  /** Conversation name: for a DM, the peer's address. */
  conversation: string;
  /** When the sender says it sent the message. */
  sentAt: Date;
  /** Mailbox seq it arrived with. */
  seq?: number;
}

/**
 * Records that this device is in `groupId` for the DM with `peer`. When there are two groups (both
 * sides created one at once) messages go to the smaller id, so both sides pick the same one without
 * coordinating; both groups still decrypt.
 */
export function addDmGroup(doc: StoreDocument, peer: string, groupId: string): ConversationRecord {
  let conv = doc.conversations[peer];
  if (!conv) {
    conv = { kind: 'dm', peer, sendGroupId: groupId, groupIds: [groupId], history: [] };
    doc.conversations[peer] = conv;
    return conv;
  }
  if (!conv.groupIds.includes(groupId)) conv.groupIds.push(groupId);
  conv.sendGroupId = preferredGroup(conv.groupIds);
  return conv;
}

/** The group id both members of a DM choose: the lexicographically smallest (hex). */
export function preferredGroup(groupIds: readonly string[]): string {
  return [...groupIds].sort()[0] ?? '';
}

/** Appends to a conversation's history, skipping a message id it already holds. Returns false for a repeat. */
export function appendHistory(conv: ConversationRecord, entry: HistoryEntry): boolean {
  if (conv.history.some((h) => h.id === entry.id && h.direction === entry.direction)) return false;
  conv.history.push(entry);
  trimHistory(conv);
  return true;
}

function trimHistory(conv: ConversationRecord): void {
  let excess = conv.history.length - HISTORY_LIMIT;
  if (excess <= 0) return;
  // Never drop what a person has not seen yet.
  conv.history = conv.history.filter((h) => {
    if (excess > 0 && !(h.direction === 'in' && !h.shown)) {
      excess--;
      return false;
    }
    return true;
  });
}

/** Incoming messages not yet shown, oldest first (by arrival seq); marks them shown. */
export function takeUnshown(doc: StoreDocument): ReceivedMessage[] {
  const out: (ReceivedMessage & { order: number })[] = [];
  for (const conv of Object.values(doc.conversations)) {
    for (const h of conv.history) {
      if (h.direction !== 'in' || h.shown) continue;
      h.shown = true;
      out.push({ ...toReceived(conv.peer, h), order: h.seq ?? h.storedAtMs });
    }
  }
  return out.sort((a, b) => a.order - b.order).map(({ order: _order, ...m }) => m);
}

export function hasUnshown(doc: StoreDocument): boolean {
  return Object.values(doc.conversations).some((c) => c.history.some((h) => h.direction === 'in' && !h.shown));
}

export function toReceived(conversation: string, h: HistoryEntry): ReceivedMessage {
  return {
    id: h.id,
    from: h.from,
    text: h.text,
    conversation,
    sentAt: new Date(h.sentAtMs),
    ...(h.seq !== undefined ? { seq: h.seq } : {}),
  };
}
