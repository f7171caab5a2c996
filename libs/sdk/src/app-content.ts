// What members say to each other inside MLS application messages (e2e.proto AppContent), applied to a
// conversation in the local store. The server sees none of it. Pure functions on the document.
import type { AppContent } from '@qpq/proto';
import { appendHistory, kindOf, toReceived } from './conversations.js';
import { importHistory } from './history-transfer.js';
import { fileRecord } from './file-ref.js';
import type { ConversationRecord, GroupRecord, HistoryEntry, StoreDocument } from './store-document.js';
import type { ConversationEvent, ReceivedMessage } from './views.js';

/** What applying one application message produced: a new message, an event, or nothing to show. */
export interface Applied {
  message?: ReceivedMessage;
  events: ConversationEvent[];
}

export interface Arrival {
  /** The whole store (a history hand-over files conversations other than `conv`). */
  doc?: StoreDocument;
  /** The sender's address (authenticated by MLS and the server). */
  from: string;
  /** This account's address. */
  own: string;
  seq: number;
  now: number;
}

const MAX_EMOJI_LENGTH = 32;
/** A typing indicator older than this is not shown. */
const TYPING_FRESH_MS = 10_000;

/** Applies one decrypted AppContent from `arrival.from` to its conversation. */
export function applyContent(
  conv: ConversationRecord,
  group: GroupRecord,
  content: AppContent,
  arrival: Arrival,
): Applied {
  const body = content.body;
  const { from, own } = arrival;
  const c = conv.peer;
  const target = (id: string) => conv.history.find((h) => h.id === id);
  switch (body?.$case) {
    case 'text':
    case 'file': {
      const ttl = conv.settings?.disappearAfterMs ?? 0;
      const file = body.$case === 'file' ? fileRecord(body.value) : undefined;
      if (body.$case === 'file' && !file) return { events: [] };
      const entry: HistoryEntry = {
        id: content.id,
        direction: from === own ? 'out' : 'in',
        from,
        text: body.$case === 'text' ? body.value.text : file!.name,
        ...(file ? { file } : {}),
        sentAtMs: Number(content.sentAtMs),
        storedAtMs: arrival.now,
        seq: arrival.seq,
        // Sent by this account from another device: shown like an incoming message on this one.
        shown: false,
        ...(from === own ? { delivered: true } : {}),
        ...(body.value.replyTo ? { replyTo: body.value.replyTo } : {}),
        // From the sender's clock, but never later than from this device's: a sender cannot keep a
        // disappearing message here longer by writing a future time.
        ...(ttl > 0 ? { expiresAtMs: Math.min(Number(content.sentAtMs), arrival.now) + ttl } : {}),
      };
      if (!appendHistory(conv, entry)) return { events: [] };
      return { message: toReceived(conv, entry), events: [] };
    }
    case 'reaction': {
      const { targetId, emoji, remove } = body.value;
      const t = target(targetId);
      if (!t || emoji.length === 0 || emoji.length > MAX_EMOJI_LENGTH) return { events: [] };
      const reactions = (t.reactions ??= {});
      const who = new Set(reactions[emoji] ?? []);
      if (remove) who.delete(from);
      else who.add(from);
      reactions[emoji] = [...who].sort();
      return { events: [{ kind: 'reaction', conversation: c, from, targetId, emoji, removed: remove }] };
    }
    case 'edit': {
      const t = target(body.value.targetId);
      // Only the account that wrote a message may change it.
      // A file message's text is the file's name: it is not edited.
      if (!t || t.from !== from || t.deleted || t.file) return { events: [] };
      t.text = body.value.text;
      t.edited = true;
      return { events: [{ kind: 'edit', conversation: c, from, targetId: t.id, text: t.text }] };
    }
    case 'delete': {
      const t = target(body.value.targetId);
      if (!t || t.from !== from) return { events: [] };
      t.text = '';
      t.deleted = true;
      delete t.reactions;
      return { events: [{ kind: 'delete', conversation: c, from, targetId: t.id }] };
    }
    case 'receipt': {
      if (from === own) {
        // Read on another device of this account: nothing is unread here either.
        for (const id of body.value.messageIds) {
          const t = target(id);
          if (t) t.receiptSent = true;
        }
        return { events: [] };
      }
      const ids: string[] = [];
      for (const id of body.value.messageIds) {
        const t = target(id);
        if (!t || t.direction !== 'out') continue;
        const readBy = new Set(t.readBy ?? []);
        readBy.add(from);
        t.readBy = [...readBy].sort();
        ids.push(id);
      }
      return { events: ids.length > 0 ? [{ kind: 'read', conversation: c, from, messageIds: ids }] : [] };
    }
    case 'typing': {
      // Found while catching up, a typing indicator is old news.
      const stale = arrival.now - Number(content.sentAtMs) > TYPING_FRESH_MS;
      return { events: from === own || !body.value.active || stale ? [] : [{ kind: 'typing', conversation: c, from }] };
    }
    case 'settings': {
      const kind = kindOf(conv);
      if (kind === 'self') return { events: [] };
      const settings = checkedSettings(body.value, kind);
      if (!settings) return { events: [] };
      conv.settings = settings;
      return {
        events: [
          {
            kind: 'settings',
            conversation: c,
            from,
            name: conv.settings.name,
            disappearAfterMs: conv.settings.disappearAfterMs,
          },
        ],
      };
    }
    case 'history': {
      // Only another device of this account may hand this one its history, and only in the group of
      // this account's own devices.
      if (from !== own || kindOf(conv) !== 'self' || !arrival.doc) return { events: [] };
      importHistory(arrival.doc, conv, body.value, own);
      return { events: [] };
    }
    case 'leave': {
      if (from === own) {
        conv.left = true;
        return { events: [{ kind: 'membership', conversation: c, text: `you left ${describe(conv)}` }] };
      }
      const pending = new Set(group.pendingRemovals ?? []);
      pending.add(from);
      group.pendingRemovals = [...pending];
      return { events: [{ kind: 'membership', conversation: c, text: `${from} left ${describe(conv)}` }] };
    }
    default:
      return { events: [] };
  }
}

/** Longest group name accepted, from this device or another. */
export const MAX_GROUP_NAME_LENGTH = 64;
const MAX_TIMER_MS = 365 * 24 * 3600 * 1000;

/**
 * Settings another member sent (or a Welcome carried), as this device takes them: a name of printable
 * characters without spaces (never one for a DM), a timer of 0 or 1 s to 365 days. Undefined: refused.
 */
export function checkedSettings(
  settings: { name: string; disappearAfterMs: bigint },
  kind: 'dm' | 'group',
): { name: string; disappearAfterMs: number } | undefined {
  const timer = Number(settings.disappearAfterMs);
  if (!Number.isSafeInteger(timer) || timer < 0 || (timer > 0 && timer < 1000) || timer > MAX_TIMER_MS)
    return undefined;
  const name = settings.name;
  if (kind === 'dm') return name ? undefined : { name: '', disappearAfterMs: timer };
  // eslint-disable-next-line no-control-regex
  if (!name || name.length > MAX_GROUP_NAME_LENGTH || /[\s\u0000-\u001f\u007f-\u009f]/.test(name)) return undefined;
  return { name, disappearAfterMs: timer };
}

function describe(conv: ConversationRecord): string {
  return kindOf(conv) === 'group'
    ? `#${conv.settings?.name ?? conv.peer.slice(0, 8)}`
    : `the conversation with ${conv.peer}`;
}
