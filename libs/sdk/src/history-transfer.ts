// History for a new device: once an existing device of the account has added the new one to a
// conversation's group, it sends that conversation's stored history to the new device alone, as
// application messages in that group (so it is end-to-end encrypted like everything else, and the
// server sees only ciphertext addressed to one device). Each message carries one HistoryChunk: a slice
// of the UTF-8 JSON of the entries; the receiver joins the slices of a transfer and merges them.
import type { HistoryChunk } from '@qpq/proto';
import { mergeHistory } from './conversations.js';
import type { ConversationRecord, HistoryEntry } from './store-document.js';

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
}

/** Splits a conversation's history into the chunks of one transfer. */
export function exportHistory(conv: ConversationRecord, transferId: string): HistoryChunk[] {
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
  }));
  if (entries.length === 0) return [];
  const json = Buffer.from(JSON.stringify({ format: FORMAT, entries }), 'utf8');
  const count = Math.ceil(json.length / HISTORY_CHUNK_BYTES);
  return Array.from({ length: count }, (_, index) => ({
    transferId,
    index,
    count,
    data: new Uint8Array(json.subarray(index * HISTORY_CHUNK_BYTES, (index + 1) * HISTORY_CHUNK_BYTES)),
  }));
}

/**
 * Takes one chunk; when its transfer is complete, merges the entries into the history (as already
 * shown: they are old news) and returns how many were new. Parts of a transfer not complete yet wait
 * in `conv.pendingHistory` (base64), so a transfer split across fetch pages or restarts still completes.
 */
export function importHistory(conv: ConversationRecord, chunk: HistoryChunk, own: string): number {
  if (chunk.count === 0 || chunk.index >= chunk.count || chunk.count > 10_000) return 0;
  const held = (conv.pendingHistory ??= {});
  const parts = (held[chunk.transferId] ??= []);
  parts[chunk.index] = Buffer.from(chunk.data).toString('base64');
  if (parts.filter((p) => p !== undefined).length < chunk.count) return 0;
  delete held[chunk.transferId];
  if (Object.keys(held).length === 0) delete conv.pendingHistory;
  let parsed: { format?: string; entries?: TransferredEntry[] };
  try {
    parsed = JSON.parse(Buffer.concat(parts.map((p) => Buffer.from(p, 'base64'))).toString('utf8')) as typeof parsed;
  } catch {
    return 0;
  }
  if (parsed.format !== FORMAT || !Array.isArray(parsed.entries)) return 0;
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
    }));
  return mergeHistory(conv, entries);
}
