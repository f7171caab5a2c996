// How the CLI shows things: one line of text for a person, or one JSON object per line for a script
// (--json). Pure functions of what the SDK hands out; the commands decide when to print.
import type {
  ConversationEvent,
  ConversationSummary,
  DeviceSummary,
  FileSummary,
  HistoryItem,
  MemberSummary,
  ReceivedMessage,
  SafetyNumber,
} from '@qpq/sdk';
import { formatDuration } from './duration.js';

/** Where a command writes; main() passes the process's streams, tests pass their own. */
export interface Io {
  stdout: NodeJS.WritableStream;
  /** Progress of a file transfer draws a bar here when it is a terminal. */
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

export function line(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function json(stream: NodeJS.WritableStream, value: unknown): void {
  line(stream, JSON.stringify(value));
}

/** An error as the one line a person sees (messages that span lines are joined). */
export function failureLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s*\n\s*/g, '; ').trim() || 'failed';
}

/** Keeps a peer's text from moving the cursor or clearing the screen. */
export function printable(text: string): string {
  return text.replace(
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** What a reply quotes: the replied-to message, when this device holds it. */
export interface Quote {
  from: string;
  text: string;
  deleted?: boolean;
}

/** How long a quoted text may be before it is cut. */
const QUOTE_LENGTH = 40;

/** A short quote of a message, on one line: `bob@x "how are you do…"`. */
export function quoteText(q: Quote): string {
  return `${printable(q.from)} ${quotedBody(q)}`;
}

/** The quoted text alone: `"how are you do…"`. */
function quotedBody(q: Quote): string {
  if (q.deleted) return '(message deleted)';
  const flat = q.text.replace(/\s+/g, ' ').trim();
  const cut = flat.length > QUOTE_LENGTH ? `${flat.slice(0, QUOTE_LENGTH - 1)}…` : flat;
  return `"${printable(cut)}"`;
}

/** `#team` for a group, the peer's address for a DM. */
export function conversationLabel(c: Pick<ConversationSummary, 'kind' | 'name'>): string {
  return c.kind === 'group' ? `#${printable(c.name)}` : printable(c.name);
}

/** "[12:03]" today, "[11-24 12:03]" on another day. */
export function clock(at: Date, now = new Date()): string {
  const time = at.toTimeString().slice(0, 5);
  if (at.toDateString() === now.toDateString()) return `[${time}]`;
  const day = `${String(at.getMonth() + 1).padStart(2, '0')}-${String(at.getDate()).padStart(2, '0')}`;
  return `[${day} ${time}]`;
}

// --- files -----------------------------------------------------------------------------------------

/** `512 B`, `1.5 KiB`, `1.2 MiB`: a size as a person reads it (binary units, one decimal). */
export function fileSize(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB'];
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]!}`;
}

/** A file as scripts read it: `id` is what `qpq download` takes. */
export function fileJson(f: FileSummary): { id: string; name: string; size: number; type: string } {
  return { id: f.id, name: f.name, size: f.size, type: f.mediaType };
}

/** `[file] photo.jpg (1.2 MiB)`: what a file message shows instead of its text. */
export function fileText(f: Pick<FileSummary, 'name' | 'size'>): string {
  return `[file] ${printable(f.name)} (${fileSize(f.size)})`;
}

/** The line `qpq send-file` prints: `sent photo.jpg (1.2 MiB) to bob@x`. */
export function sentFileText(f: Pick<FileSummary, 'name' | 'size'>, to: string): string {
  return `sent ${printable(f.name)} (${fileSize(f.size)}) to ${printable(to)}`;
}

/** The line `qpq download` prints: `saved photo.jpg (1.2 MiB) to /home/me/photo.jpg`. */
export function savedFileText(f: Pick<FileSummary, 'name' | 'size'>, path: string): string {
  return `saved ${printable(f.name)} (${fileSize(f.size)}) to ${printable(path)}`;
}

// --- messages --------------------------------------------------------------------------------------

/**
 * One message as a JSON object: at least from, text and conversation (what scripts read); `group`
 * (the group's name) for a group message, `replyTo` (a message id) for a reply, `file` for a file
 * (its `text` is then the file's name).
 */
export function messageJson(m: ReceivedMessage): Record<string, unknown> {
  return {
    id: m.id,
    from: m.from,
    text: m.text,
    conversation: m.conversation,
    ...(m.group !== undefined ? { group: m.group } : {}),
    sentAt: m.sentAt.toISOString(),
    ...(m.seq !== undefined ? { seq: m.seq } : {}),
    ...(m.replyTo !== undefined ? { replyTo: m.replyTo } : {}),
    ...(m.file !== undefined ? { file: fileJson(m.file) } : {}),
  };
}

/**
 * One message for a person: "[12:03] alice@x: hi" in a DM, "[12:03] #team alice@x: hi" in a group; a
 * reply quotes what it answers. Control characters are shown escaped.
 */
export function messageText(m: ReceivedMessage, quote?: Quote, now?: Date): string {
  const where = m.group !== undefined ? `#${printable(m.group)} ` : '';
  // A message deleted before it was shown arrives with no text.
  const text = m.deleted ? '(message deleted)' : bodyText(m);
  return `${clock(m.sentAt, now)} ${where}${printable(m.from)}: ${replyMarker(m, quote)}${text}`;
}

/** What a message says: its text, or what file it carries. */
function bodyText(m: ReceivedMessage): string {
  return m.file !== undefined ? fileText(m.file) : printable(m.text);
}

/**
 * `recv` shows a file with the command that saves it: one-shot output has no /history numbers, and a
 * person should not need --json to learn the id.
 */
export function downloadHint(m: ReceivedMessage): string {
  return m.file !== undefined && !m.deleted ? `  (qpq download ${m.file.id})` : '';
}

function replyMarker(m: ReceivedMessage, quote: Quote | undefined): string {
  if (m.replyTo === undefined) return '';
  return quote ? `(reply to ${quoteText(quote)}) ` : '(reply to an earlier message) ';
}

/** Prints messages as `qpq recv` does; `quotes` maps a reply's target id to what it quotes. */
export function printMessages(
  io: Io,
  asJson: boolean,
  messages: ReceivedMessage[],
  quotes: ReadonlyMap<string, Quote> = new Map(),
): void {
  for (const m of messages) {
    if (asJson) json(io.stdout, messageJson(m));
    else line(io.stdout, messageText(m, m.replyTo !== undefined ? quotes.get(m.replyTo) : undefined) + downloadHint(m));
  }
}

// --- history ---------------------------------------------------------------------------------------

/** One history item for a script; `replyToIndex` when the replied-to message is in `all`. */
export function historyItemJson(item: HistoryItem, all: readonly HistoryItem[] = []): Record<string, unknown> {
  const target = item.replyTo !== undefined ? all.find((h) => h.id === item.replyTo) : undefined;
  return {
    index: item.index,
    ...messageJson(item),
    ...(target ? { replyToIndex: target.index } : {}),
    direction: item.direction,
    ...(item.status !== undefined ? { status: item.status } : {}),
    reactions: item.reactions,
    edited: item.edited,
    deleted: item.deleted,
    readBy: item.readBy,
  };
}

/**
 * One history item for a person:
 * ` 4 [12:03] alice@x: (reply to 2) sounds good (edited) [👍 bob@x] · read`.
 * `all` is the conversation's whole history, to number what a reply answers.
 */
export function historyItemText(item: HistoryItem, all: readonly HistoryItem[] = [], now?: Date, width = 0): string {
  const number = String(item.index).padStart(width);
  const head = `${number} ${clock(item.sentAt, now)} ${printable(item.from)}:`;
  if (item.deleted) return `${head} message deleted${statusText(item)}`;
  let reply = '';
  if (item.replyTo !== undefined) {
    const target = all.find((h) => h.id === item.replyTo);
    reply = target ? `(reply to ${target.index}) ` : '(reply to an earlier message) ';
  }
  const edited = item.edited ? ' (edited)' : '';
  const reactions = item.reactions.length
    ? ` [${item.reactions.map((r) => `${printable(r.emoji)} ${r.from.map(printable).join(', ')}`).join('; ')}]`
    : '';
  return `${head} ${reply}${bodyText(item)}${edited}${reactions}${statusText(item)}`;
}

function statusText(item: HistoryItem): string {
  return item.direction === 'out' && item.status !== undefined ? ` · ${item.status}` : '';
}

/** `items` (the last few) as lines, numbered to line up; `all` numbers replies to older messages. */
export function historyText(items: readonly HistoryItem[], all: readonly HistoryItem[] = items, now?: Date): string[] {
  const width = String(items.at(-1)?.index ?? 0).length;
  return items.map((item) => historyItemText(item, all, now, width));
}

// --- conversation events ---------------------------------------------------------------------------

/** What the REPL knows around an event, to say it in words. */
export interface EventContext {
  /** The conversation; unknown while this device has not caught up. */
  conversation?: Pick<ConversationSummary, 'kind' | 'name'>;
  /** The message a reaction, edit, delete or read receipt is about (the first one for a receipt). */
  target?: Quote;
  /** The conversation's settings before a settings event, to say what changed. */
  before?: { name: string; disappearAfterMs: number };
}

export function eventJson(e: ConversationEvent, ctx: EventContext = {}): { type: 'event' } & Record<string, unknown> {
  const group = ctx.conversation?.kind === 'group' ? { group: ctx.conversation.name } : {};
  return { type: 'event', ...e, ...group };
}

/** One event for a person, e.g. `* alice@x is typing in #team`. */
export function eventText(e: ConversationEvent, ctx: EventContext = {}): string {
  const c = ctx.conversation;
  const inGroup = c?.kind === 'group' ? ` in ${conversationLabel(c)}` : '';
  const about = ctx.target ? ` ${quoteText(ctx.target)}` : ' a message';
  switch (e.kind) {
    case 'membership':
      return `* ${printable(e.text)}`;
    case 'typing':
      return `* ${printable(e.from)} is typing${inGroup}`;
    case 'reaction':
      return e.removed
        ? `* ${printable(e.from)} took back ${printable(e.emoji)} from${about}${inGroup}`
        : `* ${printable(e.from)} reacted ${printable(e.emoji)} to${about}${inGroup}`;
    case 'edit':
      return `* ${printable(e.from)} edited a message${inGroup}: ${printable(e.text)}`;
    case 'delete':
      return `* ${printable(e.from)} deleted a message${inGroup}`;
    case 'read': {
      const what =
        e.messageIds.length === 1
          ? `your message${ctx.target ? ` ${quotedBody(ctx.target)}` : ''}`
          : `${e.messageIds.length} of your messages`;
      return `* ${printable(e.from)} read ${what}${inGroup}`;
    }
    case 'settings':
      return `* ${printable(e.from)} ${settingsChange(e, ctx)}`;
  }
}

function settingsChange(e: Extract<ConversationEvent, { kind: 'settings' }>, ctx: EventContext): string {
  const c = ctx.conversation;
  const isGroup = c?.kind === 'group' || e.name !== '';
  const where = isGroup
    ? `in #${printable(e.name)}`
    : c
      ? `in the conversation with ${printable(c.name)}`
      : 'in this conversation';
  const timer =
    e.disappearAfterMs > 0
      ? `set messages ${where} to disappear after ${formatDuration(e.disappearAfterMs)}`
      : `turned disappearing messages off ${where}`;
  const before = ctx.before;
  const changes: string[] = [];
  if (before && isGroup && before.name !== e.name) {
    changes.push(`renamed #${printable(before.name)} to #${printable(e.name)}`);
  }
  if (before && before.disappearAfterMs !== e.disappearAfterMs) changes.push(timer);
  if (changes.length > 0) return changes.join(' and ');
  // Not knowing what it was before (or seeing no difference), say everything it is now.
  return isGroup ? `named the group #${printable(e.name)} and ${timer}` : timer;
}

// --- lists -----------------------------------------------------------------------------------------

/** `> group #team  2 unread, messages disappear after 1h` (`>` marks the current conversation). */
export function conversationLine(c: ConversationSummary, currentId?: string): string {
  const marker = c.id === currentId ? '>' : ' ';
  const kind = c.kind === 'group' ? 'group' : 'dm   ';
  const timer = c.disappearAfterMs > 0 ? `, messages disappear after ${formatDuration(c.disappearAfterMs)}` : '';
  const left = c.left ? ' (you left)' : '';
  return `${marker} ${kind} ${conversationLabel(c)}  ${c.unread} unread${timer}${left}`;
}

export function conversationJson(c: ConversationSummary, currentId?: string): Record<string, unknown> {
  return {
    id: c.id,
    kind: c.kind,
    name: c.name,
    ...(c.peer !== undefined ? { peer: c.peer } : {}),
    unread: c.unread,
    messages: c.messages,
    members: c.members,
    disappearAfterMs: c.disappearAfterMs,
    left: c.left,
    current: c.id === currentId,
  };
}

/** `alice@x (you, 2 devices)`. */
export function memberLine(m: MemberSummary, ownAddress?: string): string {
  const devices = `${m.devices.length} device${m.devices.length === 1 ? '' : 's'}`;
  return `${printable(m.address)} (${m.address === ownAddress ? 'you, ' : ''}${devices})`;
}

/** `<id>  qpq cli on laptop  added 2026-11-25 12:03 (this device)`. */
export function deviceLine(d: DeviceSummary): string {
  const at = d.createdAt;
  const date = `${at.getFullYear()}-${String(at.getMonth() + 1).padStart(2, '0')}-${String(at.getDate()).padStart(2, '0')}`;
  return `${d.deviceId}  ${printable(d.name)}  added ${date} ${at.toTimeString().slice(0, 5)}${d.current ? ' (this device)' : ''}`;
}

export function deviceJson(d: DeviceSummary): Record<string, unknown> {
  return { deviceId: d.deviceId, name: d.name, createdAt: d.createdAt.toISOString(), current: d.current };
}

/** The safety number in rows of four groups, and a warning first when it changed since last time. */
export function safetyNumberText(s: SafetyNumber): string[] {
  const groups = s.number.split(/\s+/).filter((g) => g !== '');
  const rows: string[] = [];
  for (let i = 0; i < groups.length; i += 4) rows.push(`  ${groups.slice(i, i + 4).join(' ')}`);
  return [
    ...(s.changed
      ? [
          `! the safety number with ${s.peer} CHANGED since you last checked it: a key changed. Compare it with them again before trusting this conversation.`,
        ]
      : []),
    `safety number with ${s.peer} (compare it with theirs in person or over a channel you trust):`,
    ...rows,
  ];
}
