// History for a new device: once an existing device of the account has added the new one to the
// account's own group (the "self" group: this account's devices and nobody else), it sends every
// conversation's stored history there, addressed to the new device alone. So it is end-to-end
// encrypted to this account's devices only: no member of a conversation who joined later can read what
// was said before, even if the server forwarded it. Each message carries one HistoryChunk: a slice of
// the UTF-8 JSON of one conversation; the receiver joins the slices of a transfer and merges them,
// creating the conversation if its Welcome has not arrived yet.
import type { HistoryChunk } from '@qpq/proto';
import { mergeHistory } from './conversations.js';
import { fileRecord } from './file-ref.js';
import type { ConversationRecord, FileRecord, HistoryEntry, StoreDocument } from './store-document.js';

/** Bytes of JSON per chunk: well inside one message's limit after MLS framing and padding. */
export const HISTORY_CHUNK_BYTES = 96 * 1024;

const FORMAT = 'qpq-history-v1';

/** The fields of a history entry another device may take over (nothing about this device's mailbox). */
interface TransferredEntry {
  id: string;
  from: string;
  text: string;
  sentAtMs: number;
  replyTo?: string;
  reactions?: Record<string, string[]>;
  edited?: boolean;
  deleted?: boolean;
  readBy?: string[];
  expiresAtMs?: number;
  file?: FileRecord;
}

/** Which conversation a transfer is for, so a device that is not in it yet can file it. */
interface TransferredConversation {
  id: string;
  kind: 'dm' | 'group';
  name: string;
  disappearAfterMs: number;
}

/** Splits a conversation's history into the chunks of one transfer. */
export function exportHistory(conv: ConversationRecord, transferId: string): HistoryChunk[] {
  const conversation: TransferredConversation = {
    id: conv.peer,
    kind: conv.kind === 'group' ? 'group' : 'dm',
    name: conv.settings?.name ?? '',
    disappearAfterMs: conv.settings?.disappearAfterMs ?? 0,
  };
  const entries: TransferredEntry[] = conv.history.map((h) => ({
    id: h.id,
    from: h.from,
    text: h.text,
    sentAtMs: h.sentAtMs,
    ...(h.replyTo ? { replyTo: h.replyTo } : {}),
    ...(h.reactions ? { reactions: h.reactions } : {}),
    ...(h.edited ? { edited: true } : {}),
    ...(h.deleted ? { deleted: true } : {}),
    ...(h.readBy?.length ? { readBy: h.readBy } : {}),
    ...(h.expiresAtMs !== undefined ? { expiresAtMs: h.expiresAtMs } : {}),
    ...(h.file ? { file: h.file } : {}),
  }));
  if (entries.length === 0) return [];
  const json = Buffer.from(JSON.stringify({ format: FORMAT, conversation, entries }), 'utf8');
  const count = Math.ceil(json.length / HISTORY_CHUNK_BYTES);
  return Array.from({ length: count }, (_, index) => ({
    transferId,
    index,
    count,
    data: new Uint8Array(json.subarray(index * HISTORY_CHUNK_BYTES, (index + 1) * HISTORY_CHUNK_BYTES)),
  }));
}

/**
 * Takes one chunk that arrived in the self group (`holder` keeps the parts of transfers not complete
 * yet, base64, so a transfer split across fetch pages or restarts still completes). When its transfer is
 * complete, merges the entries into the conversation it names (as already shown: they are old news),
 * creating that conversation when this device is not in it yet. Returns how many entries were new.
 */
export function importHistory(
  doc: StoreDocument,
  holder: ConversationRecord,
  chunk: HistoryChunk,
  own: string,
): number {
  if (chunk.count === 0 || chunk.index >= chunk.count || chunk.count > 10_000) return 0;
  const held = (holder.pendingHistory ??= {});
  const parts = (held[chunk.transferId] ??= []);
  parts[chunk.index] = Buffer.from(chunk.data).toString('base64');
  if (parts.filter((p) => p !== undefined).length < chunk.count) return 0;
  delete held[chunk.transferId];
  if (Object.keys(held).length === 0) delete holder.pendingHistory;
  let parsed: { format?: string; conversation?: TransferredConversation; entries?: TransferredEntry[] };
  try {
    parsed = JSON.parse(Buffer.concat(parts.map((p) => Buffer.from(p, 'base64'))).toString('utf8')) as typeof parsed;
  } catch {
    return 0;
  }
  if (parsed.format !== FORMAT || !Array.isArray(parsed.entries)) return 0;
  const conv = conversationFor(doc, parsed.conversation, own);
  if (!conv) return 0;
  const now = Date.now();
  const entries: HistoryEntry[] = parsed.entries
    .filter((e) => typeof e.id === 'string' && typeof e.from === 'string' && typeof e.text === 'string')
    .filter((e) => e.expiresAtMs === undefined || e.expiresAtMs > now)
    .map((e) => ({
      id: e.id,
      direction: e.from === own ? ('out' as const) : ('in' as const),
      from: e.from,
      text: e.text,
      sentAtMs: Number(e.sentAtMs) || 0,
      storedAtMs: now,
      shown: true,
      ...(e.from === own ? { delivered: true } : {}),
      ...(e.replyTo ? { replyTo: e.replyTo } : {}),
      ...(e.reactions ? { reactions: e.reactions } : {}),
      ...(e.edited ? { edited: true } : {}),
      ...(e.deleted ? { deleted: true } : {}),
      ...(e.readBy ? { readBy: e.readBy } : {}),
      ...(e.expiresAtMs !== undefined ? { expiresAtMs: e.expiresAtMs } : {}),
      ...(e.file ? fileOf(e.file) : {}),
    }));
  return mergeHistory(conv, entries);
}

/** The conversation a transfer names, created (without a group yet) when this device has none. */
function conversationFor(
  doc: StoreDocument,
  described: TransferredConversation | undefined,
  own: string,
): ConversationRecord | undefined {
  if (!described || typeof described.id !== 'string') return undefined;
  const { id } = described;
  const isAddress = /^[^@\s]+@[^@\s]+$/.test(id) && id !== own;
  const isGroupId = /^[0-9a-f]{2,510}$/.test(id);
  const existing = doc.conversations[id];
  if (existing) return existing.kind === 'self' ? undefined : existing;
  const timer = Number(described.disappearAfterMs) || 0;
  if (described.kind === 'dm' && isAddress) {
    const conv: ConversationRecord = { kind: 'dm', peer: id, sendGroupId: '', groupIds: [], history: [] };
    if (timer > 0) conv.settings = { name: '', disappearAfterMs: timer };
    return (doc.conversations[id] = conv);
  }
  if (described.kind === 'group' && isGroupId) {
    const name = typeof described.name === 'string' ? described.name.slice(0, 64) : '';
    return (doc.conversations[id] = {
      kind: 'group',
      peer: id,
      settings: { name, disappearAfterMs: timer },
      sendGroupId: '',
      groupIds: [],
      history: [],
    });
  }
  return undefined;
}

/** A transferred file reference, checked as one from a message would be. */
function fileOf(file: FileRecord): { file?: FileRecord } {
  if (typeof file.key !== 'string' || typeof file.blobId !== 'string') return {};
  const checked = fileRecord({
    blobId: file.blobId,
    key: new Uint8Array(Buffer.from(file.key, 'base64')),
    size: BigInt(Number(file.size) || 0),
    name: String(file.name ?? ''),
    mediaType: String(file.mediaType ?? ''),
    replyTo: '',
  });
  return checked ? { file: checked } : {};
}
