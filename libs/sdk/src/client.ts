import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import {
  decodeDeviceKeys,
  deviceIdentity,
  encodeDeviceKeys,
  generateDeviceKeys,
  verifyDeliveryProof,
  type DeviceKeys,
} from '@qpq/crypto';
import {
  AuthServiceService,
  DeliveryServiceService,
  KeyPackageServiceService,
  type DeliveryProof,
  type GroupSettings,
  type Push,
} from '@qpq/proto';
import { AccountDevices } from './account-devices.js';
import { resolveCa } from './ca.js';
import { hasExpired, hasUnshown, kindOf, markReachedAll, purgeExpired, takeUnshown } from './conversations.js';
import { b64, type ClientCore, domainOf, TaskQueue, unb64 } from './core.js';
import {
  DeliveryProofError,
  GrpcCode,
  NotLoggedInError,
  QpqClientError,
  SessionExpiredError,
  UsageError,
  isRetryable,
  isRpcFailure,
  toClientError,
} from './errors.js';
import { GatewaySession, parseServerAddress, type ServerAddress } from './gateway-session.js';
import { sendHistory, type GroupChangeDeps } from './group-changes.js';
import { FileTransfers, type ProgressListener } from './file-transfer.js';
import { Inbox } from './inbox.js';
import { KeyTransparency, type KeyLogAudit, type KeyLogEntry } from './key-transparency.js';
import { loginAccount, registerAccount } from './opaque-flow.js';
import { KEY_PACKAGE_POOL_SIZE, KeyPackagePool } from './key-package-pool.js';
import { Messaging, checkText } from './messaging.js';
import { Outbox, OutboxRejectedError, type EnqueueOutcome, type RetryPolicy } from './outbox.js';
import { LocalStore, type StoreOptions } from './store.js';
import type { AccountRecord, OutboxEntry, StoreDocument } from './store-document.js';
import type {
  ConversationEvent,
  ConversationSummary,
  DeviceSummary,
  FileSummary,
  HistoryItem,
  MemberSummary,
  ReceivedMessage,
  SafetyNumber,
} from './views.js';

export { MAX_TEXT_BYTES } from './messaging.js';

export const DEFAULT_SERVER = '127.0.0.1:7000';
/** While connected, how often disappeared messages are looked for in the store. */
const PURGE_INTERVAL_MS = 5_000;

export interface QpqClientOptions {
  /** The data dir: one account and device, created with its parents when missing. */
  dataDir: string;
  /** Gateway "host:port" (default 127.0.0.1:7000). */
  server?: string;
  /** Path of the CA to trust; else QPQ_CA, else the dev stack's CA. */
  ca?: string;
  /** Where QPQ_CA / QPQ_DEV_DIR / QPQ_PASSPHRASE are read from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Per-request deadline (default 15 s). */
  requestTimeoutMs?: number;
  /** QUIC + TLS handshake deadline (default 10 s). */
  connectTimeoutMs?: number;
  /** Name the gateway's certificate must carry (default: the host when it is a name, else 'localhost'). */
  serverName?: string;
  /** Retries of a send that failed for a reason a retry can fix. */
  retry?: RetryPolicy;
  store?: Omit<StoreOptions, 'env'>;
  /** Largest file sendFile takes, in plaintext bytes (default 50 MiB, the server's default). */
  maxFileBytes?: number;
}

export interface AccountInfo {
  username: string;
  address: string;
  accountId: string;
  deviceId: string;
}

export interface SentMessage {
  id: string;
  /** The peer's address (DM) or the group's id. */
  to: string;
  conversation: string;
  /** Whether the delivery service has accepted it (false: it waits in the outbox). */
  delivered: boolean;
}

export interface QpqClientEvents {
  /** A message arrived and was stored. */
  message: [ReceivedMessage];
  /** Typing, reactions, edits, deletes, read receipts, settings and membership changes. */
  event: [ConversationEvent];
  /** A background step failed (a bad envelope, a failed refill, a lost connection); the client goes on. */
  warning: [QpqClientError];
  /** The session was refused while reconnecting (or this device was revoked): log in again. */
  'session-expired': [SessionExpiredError];
}

/**
 * The qpq client: one account and device per data dir, its encrypted local store, and a session with
 * the gateway. The CLI, the tests and the benchmark all drive the system through this class.
 *
 * @example
 * const alice = await QpqClient.open({ dataDir: '/tmp/alice', server: '127.0.0.1:7000' });
 * await alice.register('alice', 'correct horse');
 * await alice.sendText('bob', 'hi');
 * const group = await alice.createGroup('team', ['bob', 'carol']);
 * await alice.send(group.id, 'hello team');
 * await alice.close();
 */
export class QpqClient extends EventEmitter<QpqClientEvents> {
  private readonly session: GatewaySession;
  private readonly outbox: Outbox;
  private readonly keyPackages: KeyPackagePool;
  private readonly inbox: Inbox;
  private readonly messaging: Messaging;
  private readonly accountDevices: AccountDevices;
  private readonly kt: KeyTransparency;
  private readonly files: FileTransfers;
  /** Receiving, sending and committing take turns on group state. */
  private readonly queue = new TaskQueue();
  /** The session token is attached on the current session. */
  private attached = false;
  /** Caught up with the mailbox and outbox since opening. */
  private synced = false;
  private deviceCache: { keys: DeviceKeys; identity: string } | undefined;
  private receiving: Promise<ReceivedMessage[]> | undefined;
  private purgeTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Work started on the side (outbox, KeyPackage refill, membership) that close() lets finish. */
  private readonly background = new Set<Promise<unknown>>();

  private constructor(
    readonly store: LocalStore,
    readonly server: ServerAddress,
    private readonly opts: QpqClientOptions,
  ) {
    super();
    let ca: ReturnType<typeof resolveCa> | undefined;
    this.session = new GatewaySession({
      server,
      ca: () => (ca ??= resolveCa(opts.ca, opts.env ?? process.env, server.host)),
      requestTimeoutMs: opts.requestTimeoutMs ?? 15_000,
      ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
      ...(opts.serverName !== undefined ? { serverName: opts.serverName } : {}),
    });
    this.session.onPush((push) => this.onPush(push));
    this.session.onReconnect(() => {
      this.inBackground(() => this.receive());
      this.inBackground(() => this.flushOutbox());
    });
    this.session.onDisconnect((reason) => {
      if (isRpcFailure(reason) && reason.code === GrpcCode.UNAUTHENTICATED) {
        this.emit('session-expired', new SessionExpiredError());
      }
    });
    this.outbox = new Outbox(
      this.store,
      (entry) => this.enqueue(entry),
      opts.retry,
      (entry) => {
        const handOver = entry.commit?.historyFor;
        if (handOver?.length) {
          this.inBackground(() => this.queue.run(() => sendHistory(core, entry.groupId, handOver)));
        }
      },
    );
    this.keyPackages = new KeyPackagePool(this.store, this.session, () => this.device());
    this.kt = new KeyTransparency(this.store, this.session);
    const core: ClientCore = {
      store: this.store,
      session: this.session,
      outbox: this.outbox,
      kt: this.kt,
      device: () => this.device(),
      me: () => this.me(),
      exclusive: (task) => this.queue.run(task),
      announce: (messages, events) => {
        for (const m of messages) this.emit('message', m);
        for (const e of events) this.emit('event', e);
      },
      warn: (err) => this.warn(err),
    };
    this.inbox = new Inbox(core, () => this.inBackground(() => this.accountDevices.reconcile()));
    const changes: GroupChangeDeps = {
      core,
      catchUp: async () => {
        this.inbox.requestFetch();
        await this.inbox.drain();
      },
      welcomeFor: welcomeSettings,
    };
    this.messaging = new Messaging(core, changes);
    this.files = new FileTransfers(core, opts.maxFileBytes);
    this.accountDevices = new AccountDevices(core, changes, (task) => this.inBackground(task));
  }

  /** Opens (creating when missing) the data dir. Talks to no server until asked to. */
  static async open(opts: QpqClientOptions): Promise<QpqClient> {
    const server = parseServerAddress(opts.server ?? DEFAULT_SERVER);
    const store = await LocalStore.open(opts.dataDir, { ...opts.store, ...(opts.env ? { env: opts.env } : {}) });
    return new QpqClient(store, server, opts);
  }

  get dataDir(): string {
    return this.store.dataDir;
  }

  /** The account of this data dir, if any. */
  async account(): Promise<AccountInfo | undefined> {
    const a = (await this.store.read()).account;
    return a && { username: a.username, address: a.address, accountId: a.accountId, deviceId: a.deviceId };
  }

  /**
   * Creates the account (OPAQUE: the password never leaves this process), logs in as a new device,
   * and uploads KeyPackages so others can message it at once.
   */
  async register(username: string, password: string): Promise<AccountInfo> {
    const name = normalizeUsername(username);
    requirePassword(password);
    const existing = (await this.store.read()).account;
    if (existing) {
      throw new UsageError(
        existing.username === name
          ? `${name} is already registered in ${this.dataDir}: use qpq login`
          : `${this.dataDir} already holds the account ${existing.username}: use another --data-dir`,
      );
    }
    await this.rpc(() => registerAccount(this.session, name, password));
    return this.login(name, password);
  }

  /**
   * Logs in: in a new data dir as a new device (then uploads KeyPackages), in an existing one as the
   * same device. Then attaches the session.
   */
  async login(username: string, password: string): Promise<AccountInfo> {
    const name = normalizeUsername(username);
    requirePassword(password);
    const before = await this.store.read();
    if (before.account && before.account.username !== name) {
      throw new UsageError(
        `${this.dataDir} holds the account ${before.account.username}: use another --data-dir for ${name}`,
      );
    }
    // Keys are written before the server learns them, so a crash cannot leave a device we hold no keys for.
    let keys: DeviceKeys;
    if (before.deviceKeys) {
      keys = decodeDeviceKeys(unb64(before.deviceKeys));
    } else {
      keys = await generateDeviceKeys();
      await this.store.update((doc) => {
        doc.deviceKeys ??= b64(encodeDeviceKeys(keys));
      });
      keys = decodeDeviceKeys(unb64((await this.store.read()).deviceKeys!));
    }
    const existingDevice = before.account?.deviceId;
    const res = await this.rpc(() =>
      loginAccount(
        this.session,
        name,
        password,
        existingDevice
          ? { $case: 'deviceId', value: existingDevice }
          : { $case: 'newDevice', value: { identityKey: keys.signaturePublicKey, name: deviceName() } },
      ),
    );
    const account: AccountRecord = {
      username: res.username,
      address: res.address,
      accountId: res.accountId,
      deviceId: res.deviceId,
      sessionToken: res.sessionToken,
      sessionExpiresAtMs: Number(res.expiresAtMs),
      server: this.server.text,
    };
    await this.store.update((doc) => {
      doc.account = { ...account, ...(doc.account?.deliveryKey ? { deliveryKey: doc.account.deliveryKey } : {}) };
    });
    this.deviceCache = undefined;
    this.attached = false;
    await this.attach(account);
    // A new device has no KeyPackages yet: upload before anyone can try to message it.
    if (!existingDevice) await this.rpc(() => this.keyPackages.upload(KEY_PACKAGE_POOL_SIZE, true));
    await this.connect();
    return {
      username: account.username,
      address: account.address,
      accountId: account.accountId,
      deviceId: account.deviceId,
    };
  }

  /**
   * Attaches the stored session, sends what waits in the outbox, fetches what arrived while away,
   * and refills KeyPackages if the server holds few. Called by the other methods when needed.
   * @param opts.stayConnected keep a connection (re-opened after drops) so pushes keep arriving
   */
  async connect(opts: { stayConnected?: boolean } = {}): Promise<AccountInfo> {
    const account = (await this.store.read()).account;
    if (!account) throw new NotLoggedInError(this.dataDir);
    if (opts.stayConnected) this.session.stayConnected();
    await this.attach(account);
    if (!this.synced) {
      // Catch up before anything else: a Welcome waiting in the mailbox decides which group a send uses.
      await this.receive();
      this.synced = true;
      this.inBackground(() => this.flushOutbox());
      this.inBackground(() => this.keyPackages.replenish());
      // A device change may have happened while this one was away.
      this.inBackground(() => this.accountDevices.reconcile());
      this.inBackground(() =>
        this.kt.monitor(account.address, async () => {
          const res = await this.session.call(AuthServiceService.listDevices, {});
          return new Set(res.devices.map((d) => d.deviceId));
        }),
      );
    }
    if (opts.stayConnected && !this.purgeTimer) {
      this.purgeTimer = setInterval(() => this.inBackground(() => this.purge()), PURGE_INTERVAL_MS);
      this.purgeTimer.unref();
    }
    return {
      username: account.username,
      address: account.address,
      accountId: account.accountId,
      deviceId: account.deviceId,
    };
  }

  private async attach(account: AccountRecord): Promise<void> {
    if (this.attached) return;
    try {
      await this.session.attach(account.sessionToken);
    } catch (err) {
      if (isRpcFailure(err) && err.code === GrpcCode.UNAUTHENTICATED) throw new SessionExpiredError();
      throw this.clientError(err);
    }
    this.attached = true;
  }

  /** The stored account; throws NotLoggedInError. */
  private async me(): Promise<AccountRecord> {
    const account = (await this.store.read()).account;
    if (!account) throw new NotLoggedInError(this.dataDir);
    return account;
  }

  /** One Enqueue of an outbox entry, with the delivery proofs checked against what was sent. */
  private async enqueue(entry: OutboxEntry): Promise<EnqueueOutcome> {
    const payload = unb64(entry.payload);
    const welcome = entry.commit?.welcome;
    const res = await this.session.call(DeliveryServiceService.enqueue, {
      messageId: entry.messageId,
      recipientDeviceIds: entry.recipientDeviceIds,
      payload,
      groupId: Buffer.from(entry.groupId, 'hex'),
      ttlSeconds: entry.ttlSeconds ?? 0,
      welcome: welcome && {
        messageId: welcome.messageId,
        recipientDeviceIds: welcome.recipientDeviceIds,
        payload: unb64(welcome.payload),
      },
    });
    await this.checkProof(res.deliveryProof, payload, entry.recipientDeviceIds);
    if (welcome) await this.checkProof(res.welcomeDeliveryProof, unb64(welcome.payload), welcome.recipientDeviceIds);
    return {
      duplicate: res.duplicate,
      recipients: res.recipients.map((r) => ({ deviceId: r.deviceId, seq: r.seq })),
      acceptedAtMs: Number(res.deliveryProof!.acceptedAtMs),
    };
  }

  /** A delivery proof must name exactly the recipients, sign this payload, and come from the pinned key. */
  private async checkProof(
    proof: DeliveryProof | undefined,
    payload: Uint8Array,
    recipientDeviceIds: readonly string[],
  ): Promise<void> {
    if (!proof) throw new DeliveryProofError('the server accepted the message without a delivery proof');
    const expected = [...new Set(recipientDeviceIds.map((d) => d.toLowerCase()))].sort();
    const signed = [...proof.recipientDeviceIds].map((d) => d.toLowerCase()).sort();
    if (expected.join(',') !== signed.join(',')) {
      throw new DeliveryProofError('the delivery proof names other recipients than the message was sent to');
    }
    const pinned = (await this.store.read()).account?.deliveryKey;
    if (!verifyDeliveryProof(proof, payload, pinned === undefined ? undefined : unb64(pinned))) {
      throw new DeliveryProofError(
        pinned !== undefined && b64(proof.serverPublicKey) !== pinned
          ? 'the delivery proof is signed by another key than this server used before'
          : 'the delivery proof does not verify: the server did not sign this message',
      );
    }
    if (pinned === undefined) {
      await this.store.update((doc) => {
        if (doc.account && doc.account.deliveryKey === undefined) doc.account.deliveryKey = b64(proof.serverPublicKey);
      });
    }
  }

  // --- conversations -------------------------------------------------------------------------------

  /**
   * Sends a direct message. The first message to a user sets up an MLS group with all of their
   * devices and this account's other devices (Commit and Welcome first, then the message). State is
   * stored before anything is sent, and the Enqueue is retried with the same message id, so a message
   * is stored by the server exactly once.
   */
  sendText(peerUsername: string, text: string): Promise<SentMessage> {
    return this.send(peerUsername, text);
  }

  /** Sends a text (optionally a reply) to a conversation: its id, or a user's name for a DM. */
  async send(conversation: string, text: string, opts: { replyTo?: string } = {}): Promise<SentMessage> {
    checkText(text);
    await this.connectOrQueue(conversation);
    const sent = await this.rpc(() => this.messaging.send(conversation, text, opts.replyTo));
    await this.flushOrExplain(sent.id);
    return { id: sent.id, to: sent.conversation, conversation: sent.conversation, delivered: true };
  }

  /** Creates a group with this account's devices and the named users' devices; it becomes a conversation. */
  async createGroup(name: string, members: string[] = []): Promise<ConversationSummary> {
    await this.connect();
    const id = await this.rpc(() => this.messaging.createGroup(name, members));
    await this.flushOrExplain();
    return this.messaging.resolve(`#${id}`);
  }

  /** Finds a conversation: `@user`, `user`, `user@domain` (a DM, which may not exist yet), `#name` or `#<id prefix>`. */
  async resolveConversation(ref: string): Promise<ConversationSummary> {
    await this.connect();
    return this.rpc(() => this.messaging.resolve(ref));
  }

  /** Adds every device of `username` to the group. */
  async invite(conversation: string, username: string): Promise<void> {
    await this.connect();
    await this.rpc(() => this.messaging.invite(conversation, username), username);
  }

  /** Removes every device of `username` from the group. */
  async removeMember(conversation: string, username: string): Promise<void> {
    await this.connect();
    await this.rpc(() => this.messaging.remove(conversation, username), username);
  }

  /** This account leaves the group (all its devices); a remaining member commits the removal. */
  async leave(conversation: string): Promise<void> {
    await this.connect();
    await this.rpc(() => this.messaging.leave(conversation));
    await this.flushOrExplain();
  }

  /** Commits fresh keys for this device in the conversation's group. */
  async rotateKeys(conversation: string): Promise<void> {
    await this.connect();
    await this.rpc(() => this.messaging.rotateKeys(conversation));
  }

  async rename(conversation: string, name: string): Promise<void> {
    await this.connect();
    await this.rpc(() => this.messaging.rename(conversation, name));
    await this.flushOrExplain();
  }

  /** Sets the disappearing-message timer (0: off) for everyone in the conversation. */
  async setDisappearing(conversation: string, afterMs: number): Promise<void> {
    await this.connect();
    await this.rpc(() => this.messaging.setDisappearing(conversation, afterMs));
    await this.flushOrExplain();
  }

  async members(conversation: string): Promise<MemberSummary[]> {
    return this.messaging.members(conversation);
  }

  async react(conversation: string, targetId: string, emoji: string, remove = false): Promise<void> {
    await this.connect();
    await this.rpc(() => this.messaging.react(conversation, targetId, emoji, remove));
    await this.flushOrExplain();
  }

  /** Replaces the text of one of this account's messages, for everyone. */
  async edit(conversation: string, targetId: string, text: string): Promise<void> {
    await this.connect();
    await this.rpc(() => this.messaging.edit(conversation, targetId, text));
    await this.flushOrExplain();
  }

  /** Deletes one of this account's messages, for everyone. */
  async deleteMessage(conversation: string, targetId: string): Promise<void> {
    await this.connect();
    await this.rpc(() => this.messaging.deleteMessage(conversation, targetId));
    await this.flushOrExplain();
  }

  /** Tells the conversation this person is typing (kept by the server for a minute at most). */
  async typing(conversation: string): Promise<void> {
    await this.connect();
    await this.rpc(() => this.messaging.typing(conversation));
    await this.flushOrExplain();
  }

  /** Sends read receipts for the conversation's incoming messages not yet marked read. Returns how many. */
  async markRead(conversation: string): Promise<number> {
    await this.connect();
    const n = await this.rpc(() => this.messaging.markRead(conversation));
    if (n > 0) await this.flushOrExplain();
    return n;
  }

  async conversations(): Promise<ConversationSummary[]> {
    await this.purge();
    return this.messaging.conversations();
  }

  /** A conversation's stored messages, oldest first (both directions); the last `limit` when given. */
  async history(conversation: string, limit?: number): Promise<HistoryItem[]> {
    await this.purge();
    return this.messaging.history(conversation, limit);
  }

  // --- devices -------------------------------------------------------------------------------------

  /** This account's active devices. */
  async devices(): Promise<DeviceSummary[]> {
    await this.connect();
    return this.rpc(() => this.accountDevices.list());
  }

  /** Revokes one of this account's devices and removes it from every group. */
  async revokeDevice(deviceId: string): Promise<void> {
    await this.connect();
    await this.rpc(() => this.accountDevices.revoke(deviceId));
  }

  /** Adds this account's devices that are missing from its groups (done by itself on a device change). */
  async syncDevices(): Promise<void> {
    await this.connect();
    await this.rpc(() => this.accountDevices.reconcile(true));
  }

  /** The safety number with `username`, from both accounts' identity keys. */
  async verify(username: string): Promise<SafetyNumber> {
    await this.connect();
    return this.rpc(() => this.accountDevices.verify(username.trim().replace(/^@/, '').split('@')[0] ?? ''), username);
  }

  /**
   * Connects; when the server cannot be reached but the conversation is set up already, goes on
   * offline: the message is encrypted and queued, and flushOrExplain says it waits in the outbox.
   */
  private async connectOrQueue(conversation: string): Promise<void> {
    try {
      await this.connect();
    } catch (err) {
      if (!isRetryable(err)) throw err;
      const doc = await this.store.read();
      const known =
        doc.conversations[conversation] ??
        doc.conversations[`${conversation.replace(/^@/, '')}@${domainOf(doc.account?.address ?? '')}`];
      if (!known?.sendGroupId || known.left) throw err;
    }
  }

  /**
   * Sends the outbox; a failure says whether the message waits in the outbox (then it goes out with
   * the next command) or was refused for good.
   */
  private async flushOrExplain(id?: string): Promise<void> {
    try {
      await this.outbox.flush();
    } catch (err) {
      const e = this.clientError(err);
      if (e instanceof OutboxRejectedError) {
        throw new QpqClientError(`the server refused the message: ${e.message}`, e.code, { cause: err });
      }
      if (id === undefined || (await this.store.read()).outbox.some((x) => x.messageId === id)) {
        throw new QpqClientError(`${e.message}; the message is queued and goes out with the next qpq command`, e.code, {
          cause: err,
        });
      }
      throw e;
    }
  }

  // --- receiving -----------------------------------------------------------------------------------

  /**
   * Fetches and processes everything in this device's mailbox after the stored cursor, in seq order,
   * acknowledging only what is stored. Returns the new messages (also emitted as 'message').
   */
  receive(): Promise<ReceivedMessage[]> {
    this.inbox.requestFetch();
    return this.kick();
  }

  /** Runs the receive loop (one at a time; work that arrives during a run is picked up by it). */
  private kick(): Promise<ReceivedMessage[]> {
    if (this.receiving) return this.receiving;
    const run = this.queue.run(() => this.rpc(() => this.inbox.drain()));
    this.receiving = run;
    void run
      .finally(() => {
        if (this.receiving === run) this.receiving = undefined;
        // Work pushed after the run took its batch: go round again.
        if (this.inbox.hasWork() && !this.closed) this.inBackground(() => this.kick());
      })
      .catch(() => undefined);
    return run;
  }

  /** Messages that no one has shown yet (recv, repl); marks them shown. */
  async takeUnshown(): Promise<ReceivedMessage[]> {
    await this.purge();
    if (!hasUnshown(await this.store.read())) return [];
    return this.store.update((doc) => takeUnshown(doc));
  }

  /** Sends what waits in the outbox. */
  async flushOutbox(): Promise<void> {
    if (!this.attached) return;
    try {
      await this.outbox.flush();
    } catch (err) {
      throw this.clientError(err);
    }
  }

  /** How many envelopes wait in the outbox. */
  async pendingOutbox(): Promise<number> {
    return this.outbox.pending();
  }

  /** How many one-time KeyPackages of this device the server holds, and whether a last-resort one. */
  async keyPackageStatus(): Promise<{ oneTimeRemaining: number; hasLastResort: boolean; lowWaterMark: number }> {
    await this.connect();
    return this.rpc(() => this.session.call(KeyPackageServiceService.countKeyPackages, {}));
  }

  /**
   * Resolves a user of this domain: their address and how many devices they have.
   * @throws NoSuchUserError
   */
  async lookup(username: string): Promise<{ username: string; address: string; devices: number }> {
    const me = await this.connect();
    const peer = username.trim().toLowerCase().replace(/^@/, '').split('@')[0] ?? '';
    if (!peer) throw new UsageError('no user named');
    if (peer === me.username) throw new UsageError('cannot send a message to yourself');
    const res = await this.rpc(() => this.session.call(AuthServiceService.resolveUser, { username: peer }), peer);
    return { username: res.username, address: res.address, devices: res.devices.length };
  }

  /**
   * Sends a file: checked against the limit before anything else, encrypted with a fresh key, uploaded
   * (continuing where an earlier attempt of the same file stopped), then named to the conversation in
   * an MLS message. The blob is kept as long as the conversation's disappearing timer, else the
   * deployment's retention.
   * @throws FileTooLargeError, UsageError for a path that is not a readable file
   */
  async sendFile(
    conversation: string,
    path: string,
    opts: { replyTo?: string; onProgress?: ProgressListener } = {},
  ): Promise<SentMessage & { file: FileSummary }> {
    await this.files.check(path);
    await this.connectOrQueue(conversation);
    const dest = await this.rpc(() => this.messaging.fileDestination(conversation), conversation);
    const expiresAtMs = dest.disappearAfterMs > 0 ? Date.now() + dest.disappearAfterMs : 0;
    const file = await this.rpc(() =>
      this.files.upload(path, { expiresAtMs, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) }),
    );
    const sent = await this.rpc(() => this.messaging.sendFile(dest.conversation, file, opts.replyTo));
    await this.flushOrExplain(sent.id);
    const pending = await this.outbox.pending();
    return {
      id: sent.id,
      to: sent.conversation,
      conversation: sent.conversation,
      delivered: pending === 0,
      file: { id: file.blobId, name: file.name, size: file.size, mediaType: file.mediaType },
    };
  }

  /**
   * Downloads a file this device received or sent, by blob id or message id (or by its number in
   * `conversation`'s history), decrypts it and writes it to `outPath`. Every chunk is checked: a
   * corrupted or cut-short file is an error and nothing is left at `outPath`.
   */
  async downloadFile(
    ref: string,
    outPath: string | ((name: string) => string),
    opts: { conversation?: string; onProgress?: ProgressListener } = {},
  ): Promise<{ path: string; file: FileSummary }> {
    const file = await this.messaging.findFile(ref.trim(), opts.conversation);
    await this.connect();
    const target = typeof outPath === 'function' ? outPath(file.name) : outPath;
    const path = await this.rpc(() => this.files.download(file, target, opts.onProgress));
    return { path, file: { id: file.blobId, name: file.name, size: file.size, mediaType: file.mediaType } };
  }

  /**
   * The history of a user's identity keys in the key-transparency log (adds and revokes, in log
   * order), every entry proved against a tree head consistent with the newest one this device kept.
   * @throws KeyTransparencyError when a proof or the head fails its check
   */
  async keyHistory(username: string): Promise<KeyLogEntry[]> {
    const me = await this.connect();
    const user = username.trim().toLowerCase().replace(/^@/, '');
    if (!user) throw new UsageError('no user named');
    const address = user.includes('@') ? user : `${user}@${domainOf(me.address)}`;
    return (await this.rpc(() => this.kt.history(address), user)).entries;
  }

  /**
   * Audits the whole key-transparency log: recomputes its root from every entry and checks it against
   * the newest signed head, which must be consistent with the one this device kept.
   */
  async auditKeyLog(): Promise<KeyLogAudit> {
    await this.connect();
    return this.rpc(() => this.kt.audit());
  }

  /**
   * Lets work in progress finish (receiving, sending, a KeyPackage refill; at most `graceMs`), then
   * closes the connection.
   */
  async close(graceMs = 15_000): Promise<void> {
    if (this.closed) return;
    clearInterval(this.purgeTimer);
    this.accountDevices.stop();
    let timer: NodeJS.Timeout | undefined;
    const pending = Promise.allSettled([...this.background, this.receiving ?? Promise.resolve()]);
    await Promise.race([pending, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    this.closed = true;
    await this.session.close();
  }

  private inBackground(task: () => Promise<unknown>): void {
    if (this.closed) return;
    const p = task().catch((err: unknown) => this.warn(err));
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  private onPush(push: Push): void {
    if (this.closed) return;
    const kind = push.kind;
    if (kind?.$case === 'envelope') {
      this.inbox.pushEnvelope(kind.value);
      this.inBackground(() => this.kick());
    } else if (kind?.$case === 'keyPackagesLow') {
      const low = kind.value;
      this.inBackground(() => this.keyPackages.replenish(low));
    } else if (kind?.$case === 'devicesChanged') {
      this.inBackground(() => this.accountDevices.reconcile());
    } else if (kind?.$case === 'messageDelivered') {
      const id = kind.value.messageId;
      this.inBackground(() => this.store.update((doc) => void markReachedAll(doc, id)));
    } else if (kind?.$case === 'sessionRevoked') {
      this.emit(
        'session-expired',
        new SessionExpiredError('this device was revoked: it can no longer send or receive'),
      );
    }
  }

  /** Drops disappeared messages from the store. */
  private async purge(): Promise<void> {
    const now = Date.now();
    if (hasExpired(await this.store.read(), now)) await this.store.update((doc) => void purgeExpired(doc, now));
  }

  // --- helpers -------------------------------------------------------------------------------------

  private async device(): Promise<{ keys: DeviceKeys; identity: string }> {
    if (this.deviceCache) return this.deviceCache;
    const doc = await this.store.read();
    if (!doc.account || !doc.deviceKeys) throw new NotLoggedInError(this.dataDir);
    this.deviceCache = {
      keys: decodeDeviceKeys(unb64(doc.deviceKeys)),
      identity: deviceIdentity(doc.account.address, doc.account.deviceId),
    };
    return this.deviceCache;
  }

  /** Runs a server call and turns whatever it throws into a one-line client error. */
  private async rpc<T>(call: () => Promise<T>, username?: string): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw this.clientError(err, username);
    }
  }

  private clientError(err: unknown, username?: string): QpqClientError {
    if (isRpcFailure(err) && err.code === GrpcCode.UNAUTHENTICATED && this.attached) {
      return new SessionExpiredError();
    }
    return toClientError(err, { server: this.server.text, ...(username !== undefined ? { username } : {}) });
  }

  private warn(err: unknown): void {
    if (this.closed) return;
    this.emit('warning', this.clientError(err));
  }
}

/** What a Welcome into a group carries: the conversation's kind and settings. */
function welcomeSettings(doc: StoreDocument, groupId: string): { kind: string; settings: GroupSettings } {
  const group = doc.groups[groupId];
  const conv = group && doc.conversations[group.conversation];
  return {
    kind: conv ? kindOf(conv) : 'dm',
    settings: {
      name: conv && kindOf(conv) === 'group' ? (conv.settings?.name ?? '') : '',
      disappearAfterMs: BigInt(conv?.settings?.disappearAfterMs ?? 0),
    },
  };
}

function normalizeUsername(username: string): string {
  const name = username.trim().toLowerCase();
  if (!name) throw new UsageError('no username given');
  return name;
}

function requirePassword(password: string): void {
  if (!password) throw new UsageError('no password given');
}

function deviceName(): string {
  return `qpq cli on ${hostname()}`.slice(0, 64);
}
