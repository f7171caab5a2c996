// Conversations as a person uses them: DMs and groups, their members, and everything said in them
// (texts, replies, reactions, edits, deletes, receipts, typing, settings). Every change to group state
// runs in the client's exclusive queue; the outbox sends what was written, in order.
import { encryptMessage, groupInfo, mlsPayload, parseDeviceIdentity } from '@qpq/crypto';
import { AppContent } from '@qpq/proto';
import { v7 as uuidv7 } from 'uuid';
import { applyContent, MAX_GROUP_NAME_LENGTH } from './app-content.js';
import {
  addDmGroup,
  addGroupConversation,
  historyItems,
  kindOf,
  nameOf,
  summaryOf,
  visibleConversations,
} from './conversations.js';
import { b64, type ClientCore, domainOf, unb64, usernameOf } from './core.js';
import { Directory } from './directory.js';
import { NoSuchUserError, QpqClientError, UsageError } from './errors.js';
import { changeGroup, createLocalGroup, type Change, type GroupChangeDeps } from './group-changes.js';
import { addToOutbox } from './outbox.js';
import type { ConversationRecord, FileRecord, StoreDocument } from './store-document.js';
import type { ConversationSummary, HistoryItem, MemberSummary } from './views.js';

/** Longest text a message may carry, in UTF-8 bytes (far below the delivery service's payload limit). */
export const MAX_TEXT_BYTES = 64 * 1024;
/** Typing indicators are worth nothing later: the server drops them after this long. */
const TYPING_TTL_SECONDS = 60;

type Body = NonNullable<AppContent['body']>;

export class Messaging {
  constructor(
    private readonly core: ClientCore,
    private readonly changes: GroupChangeDeps,
  ) {}

  // --- finding conversations -------------------------------------------------------------------------

  /** `@user`, `user`, `user@domain` (a DM, possibly not started yet), `#name` or `#<group id prefix>`. */
  async resolve(ref: string): Promise<ConversationSummary> {
    const doc = await this.core.store.read();
    const me = await this.core.me();
    const text = ref.trim();
    if (text.startsWith('#')) return summary(doc, this.findGroup(doc, text.slice(1)), me.address);
    const existing = doc.conversations[text];
    if (existing && kindOf(existing) !== 'self') return summary(doc, existing, me.address);
    const peer = peerAddress(text.replace(/^@/, ''), me.address, me.username);
    const conv = doc.conversations[peer];
    if (conv) return summary(doc, conv, me.address);
    const account = await new Directory(this.core).account(usernameOf(peer));
    if (!account) throw new NoSuchUserError(usernameOf(peer));
    return {
      id: peer,
      kind: 'dm',
      name: peer,
      peer,
      members: [me.address, peer].sort(),
      messages: 0,
      unshown: 0,
      unread: 0,
      disappearAfterMs: 0,
      left: false,
    };
  }

  private findGroup(doc: StoreDocument, ref: string): ConversationRecord {
    const groups = Object.values(doc.conversations).filter((c) => kindOf(c) === 'group');
    const byName = groups.filter((c) => nameOf(c) === ref);
    const active = byName.filter((c) => !c.left);
    if (active.length === 1) return active[0]!;
    if (byName.length === 1) return byName[0]!;
    if (byName.length > 1) {
      throw new UsageError(
        `${byName.length} groups are named ${ref}: name one by id (${byName.map((c) => `#${c.peer.slice(0, 8)}`).join(', ')})`,
      );
    }
    const byId = ref.length >= 4 ? groups.filter((c) => c.peer.startsWith(ref.toLowerCase())) : [];
    if (byId.length === 1) return byId[0]!;
    throw new UsageError(`no group named ${ref}: /list shows your conversations`);
  }

  async conversations(): Promise<ConversationSummary[]> {
    const doc = await this.core.store.read();
    const me = await this.core.me();
    return visibleConversations(doc).map((c) => summary(doc, c, me.address));
  }

  async history(conversation: string, limit?: number): Promise<HistoryItem[]> {
    const doc = await this.core.store.read();
    const conv = doc.conversations[conversation];
    if (!conv) return [];
    const pending = new Set(doc.outbox.map((e) => e.messageId));
    const items = historyItems(conv, pending);
    return limit !== undefined ? items.slice(-limit) : items;
  }

  async members(conversation: string): Promise<MemberSummary[]> {
    const doc = await this.core.store.read();
    const conv = this.requireConversation(doc, conversation);
    const group = doc.groups[conv.sendGroupId];
    if (!group) return [];
    return membersOf(unb64(group.state));
  }

  // --- saying things ---------------------------------------------------------------------------------

  /** Sends a text; a DM not started yet is set up first (a group with every device of both accounts). */
  async send(conversation: string, text: string, replyTo?: string): Promise<{ id: string; conversation: string }> {
    checkText(text);
    const id = await this.core.exclusive(async () => {
      const convId = await this.ensureConversation(conversation);
      return this.queueContent(convId, { $case: 'text', value: { text, replyTo: replyTo ?? '' } });
    });
    return { id: id.messageId, conversation: id.conversation };
  }

  /**
   * Where a file for `conversation` goes (a DM not started yet is set up first, before any byte is
   * uploaded) and how long it is kept there: the disappearing timer, 0 for none.
   */
  async fileDestination(conversation: string): Promise<{ conversation: string; disappearAfterMs: number }> {
    return this.core.exclusive(async () => {
      const convId = await this.ensureConversation(conversation);
      const conv = this.requireConversation(await this.core.store.read(), convId);
      if (conv.left) throw new UsageError(`you are no longer in ${describe(conv)}`);
      return { conversation: convId, disappearAfterMs: conv.settings?.disappearAfterMs ?? 0 };
    });
  }

  /** Sends the reference to an uploaded file (its key, blob id, size, name and type). */
  async sendFile(
    conversation: string,
    file: FileRecord,
    replyTo?: string,
  ): Promise<{ id: string; conversation: string }> {
    const sent = await this.core.exclusive(() =>
      this.queueContent(conversation, {
        $case: 'file',
        value: {
          blobId: file.blobId,
          key: unb64(file.key),
          size: BigInt(file.size),
          name: file.name,
          mediaType: file.mediaType,
          replyTo: replyTo ?? '',
        },
      }),
    );
    return { id: sent.messageId, conversation: sent.conversation };
  }

  /**
   * A file received or sent: by its position in `conversation`'s history (as /download N names it), or
   * anywhere by message id or blob id (as `qpq download FILE_ID` does).
   */
  async findFile(ref: string, conversation?: string): Promise<FileRecord> {
    const doc = await this.core.store.read();
    if (conversation !== undefined && /^\d+$/.test(ref)) {
      const conv = this.requireConversation(doc, conversation);
      const entry = conv.history[Number(ref) - 1];
      if (!entry) throw new UsageError(`no message ${ref} in ${describe(conv)}`);
      if (!entry.file || entry.deleted) throw new UsageError(`message ${ref} is not a file`);
      return entry.file;
    }
    for (const conv of Object.values(doc.conversations)) {
      for (const h of conv.history) {
        if (h.file && !h.deleted && (h.id === ref || h.file.blobId === ref)) return h.file;
      }
    }
    throw new UsageError(`no file ${ref} in this device's history`);
  }

  async react(conversation: string, targetId: string, emoji: string, remove: boolean): Promise<void> {
    if (!emoji.trim()) throw new UsageError('no emoji given');
    await this.sayAbout(conversation, targetId, {
      $case: 'reaction',
      value: { targetId, emoji: emoji.trim(), remove },
    });
  }

  async edit(conversation: string, targetId: string, text: string): Promise<void> {
    if (!text) throw new UsageError('nothing to change the message to');
    await this.sayAbout(conversation, targetId, { $case: 'edit', value: { targetId, text } }, true);
  }

  async deleteMessage(conversation: string, targetId: string): Promise<void> {
    await this.sayAbout(conversation, targetId, { $case: 'delete', value: { targetId } }, true);
  }

  async typing(conversation: string): Promise<void> {
    await this.core.exclusive(async () => {
      await this.queueContent(
        conversation,
        { $case: 'typing', value: { active: true } },
        {
          ttlSeconds: TYPING_TTL_SECONDS,
          toOthersOnly: true,
        },
      );
    });
  }

  /** Read receipts for every incoming message of the conversation that has none yet. */
  async markRead(conversation: string): Promise<number> {
    return this.core.exclusive(async () => {
      const doc = await this.core.store.read();
      const conv = doc.conversations[conversation];
      if (!conv || conv.left || !doc.groups[conv.sendGroupId]) return 0;
      const ids = conv.history.filter((h) => h.direction === 'in' && !h.receiptSent && !h.deleted).map((h) => h.id);
      if (ids.length === 0) return 0;
      await this.queueContent(conversation, { $case: 'receipt', value: { kind: 1, messageIds: ids } });
      return ids.length;
    });
  }

  async rename(conversation: string, name: string): Promise<void> {
    const clean = groupName(name);
    await this.core.exclusive(async () => {
      const doc = await this.core.store.read();
      const conv = this.requireConversation(doc, conversation);
      if (kindOf(conv) !== 'group') throw new UsageError('only a group has a name: this is a direct conversation');
      await this.queueContent(conv.peer, {
        $case: 'settings',
        value: { name: clean, disappearAfterMs: BigInt(conv.settings?.disappearAfterMs ?? 0) },
      });
    });
  }

  async setDisappearing(conversation: string, afterMs: number): Promise<void> {
    if (!Number.isSafeInteger(afterMs) || afterMs < 0)
      throw new UsageError('the timer must be a whole number of ms, at least 0');
    if (afterMs > 0 && afterMs < 1000) throw new UsageError('the shortest timer is 1 second');
    await this.core.exclusive(async () => {
      const convId = await this.ensureConversation(conversation);
      const conv = this.requireConversation(await this.core.store.read(), convId);
      await this.queueContent(convId, {
        $case: 'settings',
        value: { name: conv.settings?.name ?? '', disappearAfterMs: BigInt(afterMs) },
      });
    });
  }

  private async sayAbout(conversation: string, targetId: string, body: Body, ownOnly = false): Promise<void> {
    await this.core.exclusive(async () => {
      const doc = await this.core.store.read();
      const conv = this.requireConversation(doc, conversation);
      const target = conv.history.find((h) => h.id === targetId);
      if (!target) throw new UsageError('no such message in this conversation');
      const me = await this.core.me();
      if (ownOnly && target.from !== me.address) throw new UsageError('only your own messages can be changed');
      if (target.deleted) throw new UsageError('that message was deleted');
      await this.queueContent(conv.peer, body);
    });
  }

  /**
   * Encrypts `body` for the conversation's group, applies it locally as any member would, and queues
   * it. Returns the message id. Runs inside the exclusive queue.
   */
  private async queueContent(
    conversation: string,
    body: Body,
    opts: { ttlSeconds?: number; toOthersOnly?: boolean } = {},
  ): Promise<{ messageId: string; conversation: string }> {
    const me = await this.core.me();
    const id = uuidv7();
    const sentAtMs = Date.now();
    const convId = await this.core.store.update(async (doc) => {
      const conv = this.requireConversation(doc, conversation);
      if (conv.left) throw new UsageError(`you are no longer in ${describe(conv)}`);
      const group = doc.groups[conv.sendGroupId];
      if (!group) throw new QpqClientError(`this device is not in ${describe(conv)} (yet): a member adds it`);
      const distrusted = Object.values(group.untrusted ?? {});
      if (distrusted.length > 0 && body.$case !== 'leave') {
        throw new QpqClientError(`refusing to send in ${describe(conv)}: ${distrusted[0]} (members remove it)`);
      }
      const state = unb64(group.state);
      const info = groupInfo(state);
      let recipients = info.members.filter((m) => m !== info.ownIdentity);
      if (opts.toOthersOnly) recipients = recipients.filter((m) => parseDeviceIdentity(m).address !== me.address);
      if (recipients.length === 0) {
        if (kindOf(conv) === 'dm') throw new QpqClientError(`${conv.peer} has left the conversation`);
        if (body.$case !== 'text' && body.$case !== 'settings') return conv.peer;
      }
      const content: AppContent = { id, sentAtMs: BigInt(sentAtMs), body };
      // What every other member does with it, this device does too (history, reactions, settings).
      applyContent(conv, group, content, { from: me.address, own: me.address, seq: 0, now: sentAtMs });
      const own = conv.history.find((h) => h.id === id);
      if (own) {
        own.shown = true;
        delete own.delivered;
        delete own.seq;
      }
      if (body.$case === 'receipt') {
        for (const h of conv.history) if (body.value.messageIds.includes(h.id)) h.receiptSent = true;
      }
      if (recipients.length === 0) return conv.peer; // a group of one: nobody to tell
      const encrypted = await encryptMessage(state, AppContent.encode(content).finish());
      group.state = b64(encrypted.state);
      const timer = conv.settings?.disappearAfterMs ?? 0;
      const ttlSeconds = opts.ttlSeconds ?? (timer > 0 && body.$case !== 'settings' ? Math.ceil(timer / 1000) : 0);
      addToOutbox(doc, {
        messageId: id,
        kind: 'application',
        conversation: conv.peer,
        groupId: conv.sendGroupId,
        recipientDeviceIds: [...new Set(recipients.map((m) => parseDeviceIdentity(m).deviceId))],
        payload: b64(mlsPayload(encrypted.message)),
        createdAtMs: sentAtMs,
        attempts: 0,
        ...(ttlSeconds > 0 ? { ttlSeconds } : {}),
      });
      return conv.peer;
    });
    return { messageId: id, conversation: convId };
  }

  // --- membership --------------------------------------------------------------------------------------

  /** A group with this account's devices and every device of `usernames`. Returns its id. */
  async createGroup(name: string, usernames: string[]): Promise<string> {
    const clean = groupName(name);
    const me = await this.core.me();
    const peers = [...new Set(usernames.map((u) => usernameOf(peerAddress(u, me.address, me.username))))];
    return this.core.exclusive(async () => {
      const groupId = await createLocalGroup(this.core, (doc, id) =>
        addGroupConversation(doc, id, { name: clean, disappearAfterMs: 0 }),
      );
      await this.commitAddOrForget(groupId, peers);
      return groupId;
    });
  }

  async invite(conversation: string, username: string): Promise<void> {
    const me = await this.core.me();
    const peer = peerAddress(username, me.address, me.username);
    await this.core.exclusive(async () => {
      const conv = this.requireGroup(await this.core.store.read(), conversation);
      const done = await this.commitAdd(conv.sendGroupId, [usernameOf(peer)], false);
      if (!done) throw new UsageError(`${peer} is already in #${nameOf(conv)}`);
    });
  }

  async remove(conversation: string, username: string): Promise<void> {
    const me = await this.core.me();
    const peer = peerAddress(username, me.address, me.username);
    await this.core.exclusive(async () => {
      const conv = this.requireGroup(await this.core.store.read(), conversation);
      const done = await changeGroup(this.changes, conv.sendGroupId, async (state) => {
        const leaves = groupInfo(state).members.filter((m) => parseDeviceIdentity(m).address === peer);
        return leaves.length > 0 ? { add: [], remove: leaves } : undefined;
      });
      if (done === 'nothing') throw new UsageError(`${peer} is not in #${nameOf(conv)}`);
      if (done === 'queued') throw queuedError();
    });
  }

  /** This account leaves: every member learns it, and a remaining member commits the removal. */
  async leave(conversation: string): Promise<void> {
    await this.core.exclusive(async () => {
      const doc = await this.core.store.read();
      const conv = this.requireGroup(doc, conversation);
      if (conv.left) throw new UsageError(`you already left #${nameOf(conv)}`);
      await this.queueContent(conv.peer, { $case: 'leave', value: {} });
      await this.core.store.update((d) => {
        const c = d.conversations[conv.peer];
        if (!c) return;
        c.left = true;
        for (const g of c.groupIds) delete d.groups[g];
        c.groupIds = [];
      });
    });
  }

  async rotateKeys(conversation: string): Promise<void> {
    await this.core.exclusive(async () => {
      const conv = this.requireConversation(await this.core.store.read(), conversation);
      // Re-planned after losing an epoch, the update is still due: another member's Commit does not
      // refresh this device's leaf.
      const done = await changeGroup(this.changes, conv.sendGroupId, async () => ({
        add: [],
        remove: [],
        update: true,
      }));
      if (done === 'queued') throw queuedError();
    });
  }

  /** Sets up the DM with `peer` (runs inside the exclusive queue). Returns the conversation id. */
  private async ensureConversation(conversation: string): Promise<string> {
    const doc = await this.core.store.read();
    const existing = doc.conversations[conversation];
    if (existing && (kindOf(existing) === 'group' || existing.sendGroupId)) return existing.peer;
    const me = await this.core.me();
    const peer = peerAddress(conversation.replace(/^@/, ''), me.address, me.username);
    const known = doc.conversations[peer];
    if (known?.sendGroupId) return peer;
    const account = await new Directory(this.core).account(usernameOf(peer));
    if (!account) throw new NoSuchUserError(usernameOf(peer));
    if (account.devices.length === 0) throw new QpqClientError(`${peer} has no device that can receive messages yet`);
    const groupId = await createLocalGroup(this.core, (d, id) => addDmGroup(d, peer, id));
    await this.commitAddOrForget(groupId, [usernameOf(peer)]);
    return peer;
  }

  /** The first Commit of a new group; when it cannot be made (a refused KeyPackage), the group is forgotten. */
  private async commitAddOrForget(groupId: string, usernames: string[]): Promise<void> {
    try {
      await this.commitAdd(groupId, usernames, true);
    } catch (err) {
      await this.core.store.update((doc) => {
        if (doc.outbox.some((e) => e.groupId === groupId)) return; // queued: the outbox decides
        const group = doc.groups[groupId];
        delete doc.groups[groupId];
        const conv = group && doc.conversations[group.conversation];
        if (!conv) return;
        conv.groupIds = conv.groupIds.filter((g) => g !== groupId);
        if (conv.groupIds.length === 0 && conv.history.length === 0) delete doc.conversations[conv.peer];
        else if (conv.sendGroupId === groupId) conv.sendGroupId = [...conv.groupIds].sort()[0] ?? '';
      });
      throw err;
    }
  }

  /**
   * Adds every device of `usernames` (and this account's other devices) that is not in the group yet.
   * For a new group the Commit may stay queued (its messages queue behind it); otherwise a Commit that
   * cannot go out now is an error. Returns whether anything was committed.
   */
  private async commitAdd(groupId: string, usernames: string[], isNew: boolean): Promise<boolean> {
    const me = await this.core.me();
    const directory = new Directory(this.core);
    const claimed = new Map<string, { deviceId: string; keyPackage: Uint8Array; address: string }>();
    const accounts = [me.username, ...usernames.filter((u) => u !== me.username)];
    for (const username of accounts) {
      const account = await directory.account(username);
      if (!account) throw new NoSuchUserError(username);
    }
    const done = await changeGroup(this.changes, groupId, async (state) => {
      const present = new Set(groupInfo(state).members.map((m) => parseDeviceIdentity(m).deviceId));
      const add: Change['add'] = [];
      for (const username of accounts) {
        const account = (await directory.account(username))!;
        const missing = account.devices.map((d) => d.deviceId).filter((d) => !present.has(d) && d !== me.deviceId);
        const unclaimed = missing.filter((d) => !claimed.has(d));
        if (unclaimed.length > 0) {
          for (const c of await directory.claim(username, unclaimed))
            claimed.set(c.deviceId, { ...c, address: account.address });
        }
        for (const d of missing) {
          const c = claimed.get(d);
          if (!c) continue; // a device without KeyPackages yet: it is added when it has some
          add.push(c);
        }
      }
      if (add.length === 0) return undefined;
      return { add, remove: [] };
    });
    if (done === 'queued' && !isNew) throw queuedError();
    if (isNew && done === 'nothing') {
      const account = await directory.account(usernames[0] ?? me.username);
      if (usernames.length === 1 && account) {
        throw new QpqClientError(`${account.address} has no device that can receive messages yet`);
      }
    }
    return done !== 'nothing';
  }

  private requireConversation(doc: StoreDocument, conversation: string): ConversationRecord {
    const conv = doc.conversations[conversation];
    if (!conv || kindOf(conv) === 'self') throw new UsageError(`no conversation ${conversation}: /list shows them`);
    return conv;
  }

  private requireGroup(doc: StoreDocument, conversation: string): ConversationRecord {
    const conv = this.requireConversation(doc, conversation);
    if (kindOf(conv) !== 'group')
      throw new UsageError('that is a direct conversation: only groups have members to change');
    if (conv.left || !doc.groups[conv.sendGroupId]) throw new UsageError(`you are no longer in #${nameOf(conv)}`);
    return conv;
  }
}

/** Refuses an empty text or one longer than MAX_TEXT_BYTES, before anything is stored or sent. */
export function checkText(text: string): void {
  if (text.length === 0) throw new UsageError('nothing to send: the message is empty');
  const size = Buffer.byteLength(text, 'utf8');
  if (size > MAX_TEXT_BYTES) {
    throw new UsageError(`message too long: ${size} bytes; the limit is ${MAX_TEXT_BYTES} bytes`);
  }
}

export function membersOf(state: Uint8Array): MemberSummary[] {
  const byAccount = new Map<string, string[]>();
  for (const identity of groupInfo(state).members) {
    const { address, deviceId } = parseDeviceIdentity(identity);
    byAccount.set(address, [...(byAccount.get(address) ?? []), deviceId]);
  }
  return [...byAccount.entries()]
    .map(([address, devices]) => ({ address, devices: devices.sort() }))
    .sort((a, b) => (a.address < b.address ? -1 : 1));
}

function summary(doc: StoreDocument, conv: ConversationRecord, own: string): ConversationSummary {
  const group = doc.groups[conv.sendGroupId];
  const members = group
    ? membersOf(unb64(group.state)).map((m) => m.address)
    : kindOf(conv) === 'dm'
      ? [own, conv.peer]
      : [];
  return summaryOf(conv, members);
}

/** A user of this domain as an address; refuses other domains and this account itself. */
export function peerAddress(raw: string, ownAddress: string, ownUsername: string): string {
  let name = raw.trim().toLowerCase().replace(/^@/, '');
  const at = name.indexOf('@');
  if (at >= 0) {
    const domain = name.slice(at + 1);
    if (domain !== domainOf(ownAddress)) {
      throw new UsageError(`cannot reach ${name}: users of other domains are not supported yet`);
    }
    name = name.slice(0, at);
  }
  if (!name) throw new UsageError('no user named');
  if (name === ownUsername) throw new UsageError('cannot send a message to yourself');
  return `${name}@${domainOf(ownAddress)}`;
}

function groupName(name: string): string {
  const clean = name.trim().replace(/^#/, '');
  if (!clean) throw new UsageError('a group needs a name');
  if (clean.length > MAX_GROUP_NAME_LENGTH)
    throw new UsageError(`a group name has at most ${MAX_GROUP_NAME_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f]/.test(clean)) throw new UsageError('a group name has no spaces or control characters');
  return clean;
}

function describe(conv: ConversationRecord): string {
  return kindOf(conv) === 'group' ? `#${nameOf(conv)}` : `the conversation with ${conv.peer}`;
}

function queuedError(): QpqClientError {
  return new QpqClientError('the change could not be sent yet; it goes out with the next qpq command');
}
