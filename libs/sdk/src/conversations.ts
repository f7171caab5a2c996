// Conversations in the local store: DMs (keyed by the peer's address) and groups (keyed by the MLS group
// id in hex), their histories, and the read-only views the SDK hands out. Pure functions on the document.
import { groupInfo, parseDeviceIdentity } from '@qpq/crypto';
import type { ConversationRecord, HistoryEntry, StoreDocument } from './store-document.js';
import type { ConversationSummary, HistoryItem, MessageStatus, ReceivedMessage } from './views.js';

/** Messages kept per conversation; older ones that were already shown are dropped first. */
export const HISTORY_LIMIT = 1000;

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
  conv.left = false;
  return conv;
}

/** The key of the group of this account's own devices in StoreDocument.conversations. */
export const SELF_CONVERSATION = '~self';

/** Records that this device is in `groupId`, a group of this account's devices only. */
export function addSelfGroup(doc: StoreDocument, groupId: string): ConversationRecord {
  let conv = doc.conversations[SELF_CONVERSATION];
  if (!conv) {
    conv = { kind: 'self', peer: SELF_CONVERSATION, sendGroupId: groupId, groupIds: [groupId], history: [] };
    doc.conversations[SELF_CONVERSATION] = conv;
    return conv;
  }
  if (!conv.groupIds.includes(groupId)) conv.groupIds.push(groupId);
  conv.sendGroupId = preferredGroup(conv.groupIds.filter((g) => doc.groups[g] || g === groupId));
  return conv;
}

/** The conversations a person sees: every one but the group of this account's own devices. */
export function visibleConversations(doc: StoreDocument): ConversationRecord[] {
  return Object.values(doc.conversations).filter((c) => kindOf(c) !== 'self');
}

/** Records a group conversation (one MLS group; its id is the conversation's id). */
export function addGroupConversation(
  doc: StoreDocument,
  groupId: string,
  settings: { name: string; disappearAfterMs: number },
): ConversationRecord {
  const existing = doc.conversations[groupId];
  if (existing) {
    existing.left = false;
    existing.settings = settings;
    if (!existing.groupIds.includes(groupId)) existing.groupIds.push(groupId);
    existing.sendGroupId = groupId;
    return existing;
  }
  const conv: ConversationRecord = {
    kind: 'group',
    peer: groupId,
    settings,
    sendGroupId: groupId,
    groupIds: [groupId],
    history: [],
  };
  doc.conversations[groupId] = conv;
  return conv;
}

/** The group id both members of a DM choose: the lexicographically smallest (hex). */
export function preferredGroup(groupIds: readonly string[]): string {
  return [...groupIds].sort()[0] ?? '';
}

export function kindOf(conv: ConversationRecord): 'dm' | 'group' | 'self' {
  return conv.kind ?? 'dm';
}

/** What a person calls the conversation: the peer's address, or the group's name. */
export function nameOf(conv: ConversationRecord): string {
  return kindOf(conv) === 'group' ? conv.settings?.name || `group ${conv.peer.slice(0, 8)}` : conv.peer;
}

/** Appends to a conversation's history, skipping a message id it already holds. Returns false for a repeat. */
export function appendHistory(conv: ConversationRecord, entry: HistoryEntry): boolean {
  if (conv.history.some((h) => h.id === entry.id)) return false;
  conv.history.push(entry);
  trimHistory(conv);
  return true;
}

/** Merges older messages (a history hand-over) in sent order, skipping ids already held. */
export function mergeHistory(conv: ConversationRecord, entries: HistoryEntry[]): number {
  const known = new Set(conv.history.map((h) => h.id));
  const fresh = entries.filter((e) => !known.has(e.id));
  if (fresh.length === 0) return 0;
  conv.history = [...conv.history, ...fresh].sort((a, b) => a.sentAtMs - b.sentAtMs || (a.id < b.id ? -1 : 1));
  trimHistory(conv);
  return fresh.length;
}

function trimHistory(conv: ConversationRecord): void {
  let excess = conv.history.length - HISTORY_LIMIT;
  if (excess <= 0) return;
  // Never drop what a person has not seen yet.
  conv.history = conv.history.filter((h) => {
    if (excess > 0 && h.shown !== false) {
      excess--;
      return false;
    }
    return true;
  });
}

/**
 * Drops what disappeared: history entries past their expiry. Returns how many went. Outbox entries
 * are left to the server's own expiry (it is told the same timer).
 */
export function purgeExpired(doc: StoreDocument, now: number): number {
  let purged = 0;
  for (const conv of Object.values(doc.conversations)) {
    const before = conv.history.length;
    conv.history = conv.history.filter((h) => h.expiresAtMs === undefined || h.expiresAtMs > now);
    purged += before - conv.history.length;
  }
  return purged;
}

/** Marks this device's message `id` as delivered to every recipient device. Returns whether it was found. */
export function markReachedAll(doc: StoreDocument, id: string): boolean {
  for (const conv of Object.values(doc.conversations)) {
    const h = conv.history.find((x) => x.id === id && x.direction === 'out');
    if (h) {
      h.reachedAll = true;
      return true;
    }
  }
  return false;
}

/** Whether anything in the store has an expiry that has passed. */
export function hasExpired(doc: StoreDocument, now: number): boolean {
  return Object.values(doc.conversations).some((c) =>
    c.history.some((h) => h.expiresAtMs !== undefined && h.expiresAtMs <= now),
  );
}

/**
 * Messages not yet shown (incoming ones, and those this account sent from its other devices), oldest
 * first by arrival seq; marks them shown.
 */
export function takeUnshown(doc: StoreDocument): ReceivedMessage[] {
  const out: (ReceivedMessage & { order: number })[] = [];
  for (const conv of Object.values(doc.conversations)) {
    for (const h of conv.history) {
      if (h.shown !== false) continue;
      h.shown = true;
      out.push({ ...toReceived(conv, h), order: h.seq ?? h.storedAtMs });
    }
  }
  return out.sort((a, b) => a.order - b.order).map(({ order: _order, ...m }) => m);
}

export function hasUnshown(doc: StoreDocument): boolean {
  return Object.values(doc.conversations).some((c) => c.history.some((h) => h.shown === false));
}

export function toReceived(conv: ConversationRecord, h: HistoryEntry): ReceivedMessage {
  return {
    id: h.id,
    from: h.from,
    text: h.deleted ? '' : h.text,
    conversation: conv.peer,
    ...(kindOf(conv) === 'group' ? { group: nameOf(conv) } : {}),
    sentAt: new Date(h.sentAtMs),
    ...(h.seq !== undefined ? { seq: h.seq } : {}),
    ...(h.replyTo ? { replyTo: h.replyTo } : {}),
    ...(h.deleted ? { deleted: true } : {}),
    ...(h.file && !h.deleted
      ? { file: { id: h.file.blobId, name: h.file.name, size: h.file.size, mediaType: h.file.mediaType } }
      : {}),
  };
}

export function historyItems(conv: ConversationRecord, pendingIds: ReadonlySet<string>): HistoryItem[] {
  return conv.history.map((h, i) => {
    let status: MessageStatus | undefined;
    if (h.direction === 'out') {
      if (pendingIds.has(h.id)) status = 'pending';
      else if ((h.readBy ?? []).length > 0) status = 'read';
      else if (h.reachedAll) status = 'delivered';
      else status = 'sent';
    }
    return {
      ...toReceived(conv, h),
      index: i + 1,
      direction: h.direction,
      ...(status ? { status } : {}),
      reactions: Object.entries(h.reactions ?? {})
        .filter(([, from]) => from.length > 0)
        .map(([emoji, from]) => ({ emoji, from: [...from] })),
      edited: h.edited ?? false,
      deleted: h.deleted ?? false,
      readBy: [...(h.readBy ?? [])],
    };
  });
}

export function summaryOf(conv: ConversationRecord, members: string[]): ConversationSummary {
  const kind = kindOf(conv) === 'group' ? 'group' : 'dm';
  return {
    id: conv.peer,
    kind,
    name: nameOf(conv),
    ...(kind === 'dm' ? { peer: conv.peer } : {}),
    members: [...new Set(members)].sort(),
    messages: conv.history.length,
    unshown: conv.history.filter((h) => h.shown === false).length,
    unread: conv.history.filter((h) => h.direction === 'in' && !h.receiptSent && !h.deleted).length,
    disappearAfterMs: conv.settings?.disappearAfterMs ?? 0,
    left: conv.left ?? false,
  };
}

/**
 * After a Commit: accounts that asked to leave and are gone need no removal any more, and untrusted
 * members that are gone no longer hold the group back.
 */
export function pruneGone(doc: StoreDocument, groupId: string): void {
  const group = doc.groups[groupId];
  if (!group || (!group.pendingRemovals?.length && !group.untrusted)) return;
  const members = groupInfo(Buffer.from(group.state, 'base64')).members;
  const present = new Set(members.map((m) => parseDeviceIdentity(m).address));
  if (group.pendingRemovals) {
    group.pendingRemovals = group.pendingRemovals.filter((a) => present.has(a));
    if (group.pendingRemovals.length === 0) delete group.pendingRemovals;
  }
  if (group.untrusted) {
    for (const identity of Object.keys(group.untrusted)) {
      if (!members.includes(identity)) delete group.untrusted[identity];
    }
    if (Object.keys(group.untrusted).length === 0) delete group.untrusted;
  }
}
