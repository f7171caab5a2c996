// What each REPL command does, and how what arrives is shown. One handler per command; the line reader
// (repl.ts) parses a line, awaits its handler, then reads the next.
import {
  DEFAULT_SERVER,
  QpqClientError,
  type AccountInfo,
  type ConversationEvent,
  type ConversationSummary,
  type HistoryItem,
  type ProgressListener,
  type QpqClient,
} from '@qpq/sdk';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { formatDuration } from '../duration.js';
import {
  conversationJson,
  conversationLabel,
  conversationLine,
  deviceJson,
  deviceLine,
  eventJson,
  eventText,
  fileJson,
  historyItemJson,
  historyText,
  memberLine,
  messageJson,
  messageText,
  safetyNumberText,
  savedFileText,
  sentFileText,
  type EventContext,
} from '../output.js';
import { ConversationCache, quotesFor } from './conversation-cache.js';
import { downloadTarget } from './download.js';
import { REPL_HELP, type ReplCommand } from './repl-commands.js';
import { replProgress } from './repl-progress.js';
import type { ReplScreen } from './repl-screen.js';

type Handled = Exclude<ReplCommand['name'], 'quit'>;
type Handlers = { [K in Handled]: (command: Extract<ReplCommand, { name: K }>) => Promise<void> };

export class ReplSession {
  /** Where plain lines go. Kept apart from the cache: a DM not started yet is in no store. */
  private current: ConversationSummary | undefined;
  private readonly conversations: ConversationCache;
  /** What arrives is shown in order, one batch after the other, once logged in. */
  private display: Promise<void>;
  private startDisplay: () => void = () => undefined;
  private reading: Promise<void> | undefined;
  private readAgain = false;

  /** Set once logged in; what arrives while logging in is shown before. */
  private account: AccountInfo | undefined;

  constructor(
    private readonly client: QpqClient,
    private readonly screen: ReplScreen,
    /** The gateway this session uses, for the command that links a new device. */
    private readonly server: string,
  ) {
    this.conversations = new ConversationCache(client);
    // Names known up front let the first rename be told as "renamed #a to #b".
    this.display = new Promise<void>((resolve) => (this.startDisplay = resolve))
      .then(() => this.conversations.refresh())
      .catch((err: unknown) => this.screen.fail(err));
    // Listen before logging in: logging in catches up with the mailbox, and events are not stored.
    client.on('message', () => this.showUnshown());
    client.on('event', (e) => this.showEvent(e));
  }

  /** Logged in: shows what arrived meanwhile, then everything as it comes. */
  signedIn(account: AccountInfo): void {
    this.account = account;
    this.startDisplay();
  }

  /** Runs one command to its end (sent and accepted, or failed); an error is for the caller to show. */
  run(command: Exclude<ReplCommand, { name: 'quit' }>): Promise<void> {
    const handler = this.handlers[command.name] as (c: typeof command) => Promise<void>;
    return handler(command);
  }

  // --- what arrives ----------------------------------------------------------------------------------

  /** Shows every message not shown yet (called on each 'message' event and once at the start). */
  showUnshown(): void {
    this.later(async () => {
      const messages = await this.client.takeUnshown();
      const quotes = await quotesFor(this.client, messages);
      for (const m of messages) {
        const quote = m.replyTo !== undefined ? quotes.get(m.replyTo) : undefined;
        this.screen.show({ type: 'message', ...messageJson(m) }, messageText(m, quote));
      }
      // The person sees the conversation they are in: tell its members it was read.
      if (messages.some((m) => m.conversation === this.current?.id && m.from !== this.account?.address)) {
        this.requestRead();
      }
    });
  }

  showEvent(e: ConversationEvent): void {
    this.later(async () => {
      const known = this.conversations.known(e.conversation);
      if (e.kind === 'settings' || e.kind === 'membership') await this.conversations.refresh();
      const conversation = await this.conversations.find(e.conversation);
      if (conversation && this.current?.id === conversation.id) this.current = conversation;
      const ctx: EventContext = {
        ...(conversation ? { conversation } : {}),
        ...(known ? { before: { name: known.name, disappearAfterMs: known.disappearAfterMs } } : {}),
      };
      const targetId = e.kind === 'reaction' ? e.targetId : e.kind === 'read' ? e.messageIds[0] : undefined;
      if (targetId !== undefined) {
        const target = await this.conversations.quote(e.conversation, targetId);
        if (target) ctx.target = target;
      }
      this.screen.show(eventJson(e, ctx), eventText(e, ctx));
    });
  }

  /** Waits (at most `ms`) until what arrived is shown and read receipts are queued: before /quit. */
  async settle(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all([this.display, this.reading]), new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  private later(task: () => Promise<void>): void {
    this.display = this.display.then(task).catch((err: unknown) => this.screen.fail(err));
  }

  /** Read receipts for the current conversation, in the background; requests during a run coalesce. */
  private requestRead(): void {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = (async () => {
      do {
        this.readAgain = false;
        await this.markRead();
      } while (this.readAgain);
    })().finally(() => (this.reading = undefined));
  }

  /** A read receipt that cannot go out is worth a warning, not a failed command. */
  private async markRead(): Promise<void> {
    const conv = this.current;
    if (!conv) return;
    try {
      await this.client.markRead(conv.id);
    } catch (err) {
      this.screen.fail(err);
    }
  }

  // --- commands --------------------------------------------------------------------------------------

  private readonly handlers: Handlers = {
    nothing: async () => undefined,

    help: async () => this.screen.show({ type: 'help', text: REPL_HELP }, REPL_HELP),

    say: async ({ text }) => {
      const conv = this.requireCurrent();
      const sent = await this.client.send(conv.id, text);
      this.showSent(conv, sent);
    },

    switch: async ({ target }) => {
      const conv = await this.client.resolveConversation(target);
      this.current = conv;
      this.conversations.remember(conv);
      if (conv.kind === 'dm') {
        this.screen.info(`talking to ${conversationLabel(conv)}`, { conversation: conv.id, peer: conv.name });
      } else {
        const who = `${conv.members.length} member${conv.members.length === 1 ? '' : 's'}`;
        this.screen.info(`talking in ${conversationLabel(conv)} (${who})${conv.left ? '; you left it' : ''}`, {
          conversation: conv.id,
          group: conv.name,
        });
      }
      await this.markRead();
    },

    list: async () => {
      const list = await this.client.conversations();
      for (const c of list) this.conversations.remember(c);
      const currentId = this.current?.id;
      this.screen.show(
        { type: 'conversations', conversations: list.map((c) => conversationJson(c, currentId)) },
        list.length > 0
          ? list.map((c) => conversationLine(c, currentId))
          : 'no conversations yet: /switch @USER or /create-group NAME',
      );
    },

    history: async ({ count }) => {
      const conv = this.requireCurrent();
      const all = await this.client.history(conv.id);
      const items = all.slice(-count);
      this.screen.show(
        {
          type: 'history',
          conversation: conv.id,
          ...groupField(conv),
          items: items.map((h) => historyItemJson(h, all)),
        },
        items.length > 0 ? historyText(items, all) : `no messages ${where(conv)} yet`,
      );
      await this.markRead();
    },

    reply: async ({ index, text }) => {
      const { conv, item } = await this.messageAt(index);
      const sent = await this.client.send(conv.id, text, { replyTo: item.id });
      this.showSent(conv, sent, { replyTo: item.id });
    },

    react: async ({ emoji, index }) => {
      const { conv, item } = index !== undefined ? await this.messageAt(index) : await this.latestMessage();
      await this.client.react(conv.id, item.id, emoji);
      this.screen.info(`reacted ${emoji} to ${item.index}`, { conversation: conv.id, id: item.id, emoji });
    },

    edit: async ({ index, text }) => {
      const { conv, item } = await this.messageAt(index);
      await this.client.edit(conv.id, item.id, text);
      this.screen.info(`edited ${item.index}`, { conversation: conv.id, id: item.id });
    },

    delete: async ({ index }) => {
      const { conv, item } = await this.messageAt(index);
      await this.client.deleteMessage(conv.id, item.id);
      this.screen.info(`deleted ${item.index}`, { conversation: conv.id, id: item.id });
    },

    typing: async () => {
      const conv = this.requireCurrent();
      await this.client.typing(conv.id);
      this.screen.info(`told ${conversationLabel(conv)} you are typing`, { conversation: conv.id });
    },

    'send-file': async ({ path }) => {
      const conv = this.requireCurrent();
      const file = expandHome(path);
      const sent = await this.client.sendFile(conv.id, file, this.progress(`upload ${basename(file)}`));
      this.screen.show(
        {
          type: 'sent',
          id: sent.id,
          to: sent.to,
          conversation: sent.conversation,
          ...groupField(conv),
          file: fileJson(sent.file),
        },
        `* ${sentFileText(sent.file, conversationLabel(conv))}`,
      );
    },

    download: async ({ index, path }) => {
      const { conv, item } = await this.messageAt(index);
      if (!item.file || item.deleted) throw new QpqClientError(`message ${index} ${where(conv)} is not a file`);
      const out = path !== undefined ? expandHome(path) : undefined;
      const saved = await this.client.downloadFile(
        item.id,
        (name) => downloadTarget(name, out, process.cwd(), 'name another place: /download N PATH'),
        this.progress(`download ${item.file.name}`),
      );
      this.screen.show(
        {
          type: 'saved',
          conversation: conv.id,
          ...groupField(conv),
          index,
          path: saved.path,
          file: fileJson(saved.file),
        },
        `* ${savedFileText(saved.file, saved.path)}`,
      );
    },

    'create-group': async ({ group }) => {
      const conv = await this.client.createGroup(group);
      this.current = conv;
      this.conversations.remember(conv);
      this.screen.info(`created ${conversationLabel(conv)}; /invite USER adds people`, {
        conversation: conv.id,
        group: conv.name,
      });
    },

    invite: async ({ user }) => {
      const conv = this.requireGroup();
      await this.client.invite(conv.id, user);
      this.screen.info(`added ${user} to ${conversationLabel(conv)}`, { conversation: conv.id, user });
    },

    remove: async ({ user }) => {
      const conv = this.requireGroup();
      await this.client.removeMember(conv.id, user);
      this.screen.info(`removed ${user} from ${conversationLabel(conv)}`, { conversation: conv.id, user });
    },

    leave: async () => {
      const conv = this.requireGroup();
      await this.client.leave(conv.id);
      this.current = undefined;
      this.screen.info(`you left ${conversationLabel(conv)}`, { conversation: conv.id });
    },

    rename: async ({ group }) => {
      const conv = this.requireGroup();
      await this.client.rename(conv.id, group);
      await this.conversations.refresh();
      this.current = this.conversations.known(conv.id) ?? conv;
      this.screen.info(`renamed ${conversationLabel(conv)} to ${conversationLabel(this.current)}`, {
        conversation: conv.id,
        group: this.current.name,
      });
    },

    members: async () => {
      const conv = this.requireCurrent();
      if (!(await this.conversations.find(conv.id))) {
        throw new QpqClientError(`no messages with ${conv.name} yet: the conversation starts with the first one`);
      }
      const members = await this.client.members(conv.id);
      this.screen.show({ type: 'members', conversation: conv.id, ...groupField(conv), members }, [
        `members of ${conversationLabel(conv)}:`,
        ...members.map((m) => `  ${memberLine(m, this.account?.address)}`),
      ]);
    },

    'rotate-keys': async () => {
      const conv = this.requireCurrent();
      await this.client.rotateKeys(conv.id);
      this.screen.info(`this device has fresh keys ${where(conv)}`, { conversation: conv.id });
    },

    disappear: async ({ afterMs }) => {
      const conv = this.requireCurrent();
      await this.client.setDisappearing(conv.id, afterMs);
      await this.conversations.refresh();
      this.current = this.conversations.known(conv.id) ?? conv;
      this.screen.info(
        afterMs > 0
          ? `messages ${where(conv)} now disappear after ${formatDuration(afterMs)}`
          : `messages ${where(conv)} no longer disappear`,
        { conversation: conv.id, disappearAfterMs: afterMs },
      );
    },

    devices: async (command) => {
      switch (command.action) {
        case 'list': {
          const devices = await this.client.devices();
          this.screen.show({ type: 'devices', devices: devices.map(deviceJson) }, devices.map(deviceLine));
          return;
        }
        case 'add': {
          const server = this.server === DEFAULT_SERVER ? '' : `--server ${this.server} `;
          const command = `qpq ${server}--data-dir NEW_DIR login -u ${this.account?.username ?? 'NAME'}`;
          const text = [
            `to add a device, run on it (NEW_DIR: a data dir of its own): ${command}`,
            'your devices here then add it to every conversation automatically, with the history',
          ];
          this.screen.show(
            { type: 'info', text: text.join('; '), command },
            text.map((t) => `* ${t}`),
          );
          return;
        }
        case 'rm': {
          const device = await this.deviceNamed(command.deviceId);
          await this.client.revokeDevice(device.deviceId);
          this.screen.info(`revoked ${device.deviceId} (${device.name}); it is removed from every conversation`, {
            deviceId: device.deviceId,
          });
          return;
        }
      }
    },

    verify: async ({ user }) => {
      const number = await this.client.verify(user);
      this.screen.show({ type: 'safety-number', ...number }, safetyNumberText(number));
    },
  };

  // --- helpers ---------------------------------------------------------------------------------------

  private requireCurrent(): ConversationSummary {
    if (!this.current)
      throw new QpqClientError('no conversation yet: /switch @USER or #GROUP first (/list shows yours)');
    return this.current;
  }

  private requireGroup(): ConversationSummary {
    const conv = this.requireCurrent();
    if (conv.kind !== 'group') {
      throw new QpqClientError(`${conv.name} is a direct conversation: /switch #GROUP or /create-group NAME first`);
    }
    return conv;
  }

  /** Progress lines for a person; a script (--json) gets only the result, as from `qpq send-file`. */
  private progress(label: string): { onProgress?: ProgressListener } {
    return this.screen.asJson ? {} : { onProgress: replProgress((text) => this.screen.info(text), label) };
  }

  /** Message N (HistoryItem.index) of the current conversation. */
  private async messageAt(index: number): Promise<{ conv: ConversationSummary; item: HistoryItem }> {
    const conv = this.requireCurrent();
    const all = await this.client.history(conv.id);
    const item = all.find((h) => h.index === index);
    if (item) return { conv, item };
    throw new QpqClientError(
      all.length === 0
        ? `no messages ${where(conv)} yet`
        : `no message ${index} ${where(conv)}: /history shows them, numbered 1 to ${all.at(-1)!.index}`,
    );
  }

  /** The latest message that is still there (what /react without N means). */
  private async latestMessage(): Promise<{ conv: ConversationSummary; item: HistoryItem }> {
    const conv = this.requireCurrent();
    const item = (await this.client.history(conv.id)).findLast((h) => !h.deleted);
    if (!item) throw new QpqClientError(`no messages ${where(conv)} yet to react to`);
    return { conv, item };
  }

  /** A device by id or by a prefix of it long enough to name one (ids are long to type). */
  private async deviceNamed(id: string) {
    const wanted = id.trim().toLowerCase();
    const devices = await this.client.devices();
    const matches = devices.filter(
      (d) => d.deviceId === wanted || (wanted.length >= 4 && d.deviceId.startsWith(wanted)),
    );
    const [device] = matches;
    if (!device) throw new QpqClientError(`no device ${id} on this account: /devices list shows them`);
    if (matches.length > 1) throw new QpqClientError(`${id} starts ${matches.length} device ids: type more of it`);
    return device;
  }

  private showSent(
    conv: ConversationSummary,
    sent: { id: string; to: string; conversation: string },
    extra: Record<string, unknown> = {},
  ): void {
    // A person sees their line as typed; a script learns the id it can refer to.
    if (this.screen.asJson) {
      this.screen.show(
        { type: 'sent', id: sent.id, to: sent.to, conversation: sent.conversation, ...groupField(conv), ...extra },
        [],
      );
    }
  }
}

function groupField(conv: ConversationSummary): { group?: string } {
  return conv.kind === 'group' ? { group: conv.name } : {};
}

/** A path as a shell would read `~` and `~/…` (the REPL has no shell to do it). */
function expandHome(path: string): string {
  if (path === '~') return homedir();
  return path.startsWith('~/') ? join(homedir(), path.slice(2)) : path;
}

/** `in #team`, or `with bob@x` for a DM. */
function where(conv: ConversationSummary): string {
  return conv.kind === 'group' ? `in ${conversationLabel(conv)}` : `with ${conversationLabel(conv)}`;
}
