import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import {
  addMembers,
  createGroup,
  decodeDeviceKeys,
  deviceIdentity,
  encodeDeviceKeys,
  encryptMessage,
  generateDeviceKeys,
  groupInfo,
  groupMembers,
  inspectKeyPackage,
  joinFromWelcome,
  parseDeviceIdentity,
  processMessage,
  verifyDeliveryProof,
  type DeviceKeys,
} from '@qpq/crypto';
import {
  AppContent,
  AuthServiceService,
  DeliveryServiceService,
  KeyPackageServiceService,
  type Envelope,
  type Push,
} from '@qpq/proto';
import { v7 as uuidv7 } from 'uuid';
import { resolveCa } from './ca.js';
import {
  addDmGroup,
  appendHistory,
  hasUnshown,
  takeUnshown,
  toReceived,
  type ReceivedMessage,
} from './conversations.js';
import {
  DeliveryProofError,
  GrpcCode,
  NotLoggedInError,
  QpqClientError,
  SessionExpiredError,
  UsageError,
  isRpcFailure,
  toClientError,
} from './errors.js';
import { GatewaySession, parseServerAddress, type ServerAddress } from './gateway-session.js';
import { dmWelcomeProblem, keyPackageProblem, type KnownAccount } from './member-check.js';
import { loginAccount, registerAccount } from './opaque-flow.js';
import { KEY_PACKAGE_POOL_SIZE, KeyPackagePool } from './key-package-pool.js';
import { Outbox, OutboxRejectedError, addToOutbox, type EnqueueOutcome, type RetryPolicy } from './outbox.js';
import { decodePayload, mlsPayload, welcomePayload } from './payload.js';
import { LocalStore, type StoreOptions } from './store.js';
import type { AccountRecord, OutboxEntry, StoreDocument } from './store-document.js';

export const DEFAULT_SERVER = '127.0.0.1:7000';
const FETCH_LIMIT = 100;
/** How often a fetch that shows a hole in the seqs is repeated before the hole is taken as expired. */
const GAP_RETRIES = 5;
const GAP_RETRY_DELAY_MS = 100;
/**
 * Longest text a message may carry, in UTF-8 bytes. With MLS framing and padding (16 KiB steps above
 * 16 KiB) it stays far below the delivery service's 256 KiB payload limit, so the server never has to
 * refuse a message for its size.
 */
export const MAX_TEXT_BYTES = 64 * 1024;

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
}

export interface AccountInfo {
  username: string;
  address: string;
  accountId: string;
  deviceId: string;
}

export interface SentMessage {
  id: string;
  /** The peer's address. */
  to: string;
  conversation: string;
  /** Whether the delivery service has accepted it (false: it waits in the outbox). */
  delivered: boolean;
}

export interface ConversationSummary {
  name: string;
  peer: string;
  messages: number;
  unshown: number;
}

export interface QpqClientEvents {
  /** A message arrived and was stored. */
  message: [ReceivedMessage];
  /** A background step failed (a bad envelope, a failed refill, a lost connection); the client goes on. */
  warning: [QpqClientError];
  /** The session was refused while reconnecting: log in again. */
  'session-expired': [SessionExpiredError];
}

const b64 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
const unb64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));
const hex = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

/**
 * The qpq client: one account and device per data dir, its encrypted local store, and a session with
 * the gateway. The CLI, the tests and the benchmark all drive the system through this class.
 *
 * @example
 * const alice = await QpqClient.open({ dataDir: '/tmp/alice', server: '127.0.0.1:7000' });
 * await alice.register('alice', 'correct horse');
 * await alice.sendText('bob', 'hi');
 * await alice.close();
 */
export class QpqClient extends EventEmitter<QpqClientEvents> {
  private readonly session: GatewaySession;
  private readonly outbox: Outbox;
  private readonly keyPackages: KeyPackagePool;
  /** The session token is attached on the current session. */
  private attached = false;
  /** Caught up with the mailbox and outbox since opening. */
  private synced = false;
  private deviceCache: { keys: DeviceKeys; identity: string } | undefined;
  private receiving: Promise<ReceivedMessage[]> | undefined;
  private receiveAgain = false;
  private pushed: Envelope[] = [];
  private fetchRequested = false;
  private closed = false;
  /** Work started on the side (outbox, KeyPackage refill) that close() lets finish. */
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
    this.outbox = new Outbox(this.store, (entry) => this.enqueue(entry), opts.retry);
    this.keyPackages = new KeyPackagePool(this.store, this.session, () => this.device());
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
      this.synced = true;
      // Catch up before anything else: a Welcome waiting in the mailbox decides which group a send uses.
      await this.receive();
      this.inBackground(() => this.flushOutbox());
      this.inBackground(() => this.keyPackages.replenish());
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

  /**
   * Sends a direct message. The first message to a user sets up an MLS group with all of their
   * devices (Welcome first, then the message). State is stored before anything is sent, and the
   * Enqueue is retried with the same message id, so a message is stored by the server exactly once.
   */
  async sendText(peerUsername: string, text: string): Promise<SentMessage> {
    if (text.length === 0) throw new UsageError('nothing to send: the message is empty');
    const size = Buffer.byteLength(text, 'utf8');
    if (size > MAX_TEXT_BYTES) {
      throw new UsageError(`message too long: ${size} bytes; the limit is ${MAX_TEXT_BYTES} bytes`);
    }
    const me = await this.connect();
    const peer = this.peerUsername(peerUsername, me);
    const peerAddress = `${peer}@${domainOf(me.address)}`;
    if (!(await this.store.read()).conversations[peerAddress]?.sendGroupId) await this.startDm(peer);
    const id = uuidv7();
    const sentAtMs = Date.now();
    const conversation = await this.store.update(async (doc) => {
      const c = doc.conversations[peerAddress];
      if (!c?.sendGroupId) throw new QpqClientError(`no conversation with ${peerAddress}`);
      const group = doc.groups[c.sendGroupId];
      if (!group) throw new QpqClientError(`the group of the conversation with ${peerAddress} is missing`);
      const state = unb64(group.state);
      const info = groupInfo(state);
      const recipients = info.members.filter((m) => m !== info.ownIdentity).map((m) => parseDeviceIdentity(m).deviceId);
      if (recipients.length === 0) throw new QpqClientError(`${peerAddress} has left the conversation`);
      const content = AppContent.encode({
        id,
        sentAtMs: BigInt(sentAtMs),
        body: { $case: 'text', value: { text } },
      }).finish();
      const encrypted = await encryptMessage(state, content);
      group.state = b64(encrypted.state);
      addToOutbox(doc, {
        messageId: id,
        kind: 'application',
        conversation: c.peer,
        groupId: c.sendGroupId,
        recipientDeviceIds: recipients,
        payload: b64(mlsPayload(encrypted.message)),
        createdAtMs: sentAtMs,
        attempts: 0,
      });
      appendHistory(c, { id, direction: 'out', from: me.address, text, sentAtMs, storedAtMs: sentAtMs });
      return c.peer;
    });
    try {
      await this.outbox.flush();
    } catch (err) {
      const e = this.clientError(err);
      if (e instanceof OutboxRejectedError) {
        throw new QpqClientError(`the server refused the message: ${e.message}`, e.code, { cause: err });
      }
      if ((await this.store.read()).outbox.some((x) => x.messageId === id)) {
        throw new QpqClientError(`${e.message}; the message is queued and goes out with the next qpq command`, e.code, {
          cause: err,
        });
      }
      throw e;
    }
    return { id, to: peerAddress, conversation, delivered: true };
  }

  /**
   * Fetches and processes everything in this device's mailbox after the stored cursor, in seq order,
   * acknowledging only what is stored. Returns the new messages (also emitted as 'message').
   */
  receive(): Promise<ReceivedMessage[]> {
    this.fetchRequested = true;
    return this.kick();
  }

  /** Runs the receive loop (one at a time; a call during a run makes it go round again). */
  private kick(): Promise<ReceivedMessage[]> {
    if (this.receiving) {
      this.receiveAgain = true;
      return this.receiving;
    }
    this.receiving = this.drain().finally(() => {
      this.receiving = undefined;
    });
    return this.receiving;
  }

  /** Incoming messages that no one has shown yet (recv, repl); marks them shown. */
  async takeUnshown(): Promise<ReceivedMessage[]> {
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

  async conversations(): Promise<ConversationSummary[]> {
    const doc = await this.store.read();
    return Object.values(doc.conversations).map((c) => ({
      name: c.peer,
      peer: c.peer,
      messages: c.history.length,
      unshown: c.history.filter((h) => h.direction === 'in' && !h.shown).length,
    }));
  }

  /** A conversation's stored messages, oldest first (both directions). */
  async history(conversation: string): Promise<(ReceivedMessage & { direction: 'in' | 'out'; delivered?: boolean })[]> {
    const conv = (await this.store.read()).conversations[conversation];
    return (conv?.history ?? []).map((h) => ({
      ...toReceived(conversation, h),
      direction: h.direction,
      ...(h.direction === 'out' ? { delivered: h.delivered ?? false } : {}),
    }));
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
    const peer = this.peerUsername(username, me);
    const res = await this.rpc(() => this.session.call(AuthServiceService.resolveUser, { username: peer }), peer);
    return { username: res.username, address: res.address, devices: res.devices.length };
  }

  /**
   * Lets work in progress finish (receiving, sending, a KeyPackage refill; at most `graceMs`), then
   * closes the connection.
   */
  async close(graceMs = 15_000): Promise<void> {
    if (this.closed) return;
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

  // --- sending -------------------------------------------------------------------------------------

  private peerUsername(raw: string, me: AccountInfo): string {
    let name = raw.trim().toLowerCase();
    const at = name.indexOf('@');
    if (at >= 0) {
      const domain = name.slice(at + 1);
      if (domain !== domainOf(me.address)) {
        throw new UsageError(`cannot reach ${name}: users of other domains are not supported yet`);
      }
      name = name.slice(0, at);
    }
    if (!name) throw new UsageError('no user named');
    if (name === me.username) throw new UsageError('cannot send a message to yourself');
    return name;
  }

  /** Sets up a DM group with every device of `peer` and queues the Welcome. */
  private async startDm(peer: string): Promise<void> {
    const resolved = await this.rpc(() => this.session.call(AuthServiceService.resolveUser, { username: peer }), peer);
    const claimed = await this.rpc(
      () => this.session.call(KeyPackageServiceService.claimKeyPackages, { username: peer, deviceIds: [] }),
      peer,
    );
    if (claimed.keyPackages.length === 0)
      throw new QpqClientError(`${resolved.address} has no device that can receive messages yet`);
    // A device may have logged in between the two calls: ask auth again before calling it unknown.
    const known = claimed.keyPackages.every((k) => resolved.devices.some((d) => d.deviceId === k.deviceId))
      ? resolved
      : await this.rpc(() => this.session.call(AuthServiceService.resolveUser, { username: peer }), peer);
    await checkClaimedKeyPackages(claimed.keyPackages, { address: resolved.address, devices: known.devices });
    const { keys, identity } = await this.device();
    const created = await createGroup(keys, identity);
    const added = await addMembers(
      created.state,
      claimed.keyPackages.map((k) => k.keyPackage),
    );
    const groupId = hex(created.groupId);
    const now = Date.now();
    const welcome: OutboxEntry = {
      messageId: uuidv7(),
      kind: 'welcome',
      conversation: resolved.address,
      groupId,
      recipientDeviceIds: claimed.keyPackages.map((k) => k.deviceId),
      payload: b64(welcomePayload({ welcome: added.welcome, conversationKind: 'dm' })),
      createdAtMs: now,
      attempts: 0,
    };
    await this.store.update((doc) => {
      // Another process on this data dir may have set the conversation up meanwhile: use theirs.
      if (doc.conversations[resolved.address]?.sendGroupId) return;
      // Only this device was in the group when it added the peer, so the commit goes to no one.
      doc.groups[groupId] = { conversation: resolved.address, state: b64(added.state), createdAtMs: now };
      addDmGroup(doc, resolved.address, groupId);
      addToOutbox(doc, welcome);
    });
  }

  /** One Enqueue of an outbox entry, with the delivery proof checked against what was sent. */
  private async enqueue(entry: OutboxEntry): Promise<EnqueueOutcome> {
    const payload = unb64(entry.payload);
    const res = await this.session.call(DeliveryServiceService.enqueue, {
      messageId: entry.messageId,
      recipientDeviceIds: entry.recipientDeviceIds,
      payload,
      groupId: Buffer.from(entry.groupId, 'hex'),
    });
    const proof = res.deliveryProof;
    if (!proof) throw new DeliveryProofError('the server accepted the message without a delivery proof');
    const expected = [...new Set(entry.recipientDeviceIds.map((d) => d.toLowerCase()))].sort();
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
    return {
      duplicate: res.duplicate,
      recipients: res.recipients.map((r) => ({ deviceId: r.deviceId, seq: r.seq })),
      acceptedAtMs: Number(proof.acceptedAtMs),
    };
  }

  // --- receiving -----------------------------------------------------------------------------------

  private onPush(push: Push): void {
    if (this.closed) return;
    const kind = push.kind;
    if (kind?.$case === 'envelope') {
      this.pushed.push(kind.value);
      this.inBackground(() => this.kick());
    } else if (kind?.$case === 'keyPackagesLow') {
      const low = kind.value;
      this.inBackground(() => this.keyPackages.replenish(low));
    }
  }

  private async drain(): Promise<ReceivedMessage[]> {
    const received: ReceivedMessage[] = [];
    do {
      this.receiveAgain = false;
      let fetchNeeded = this.fetchRequested;
      this.fetchRequested = false;
      // Pushed envelopes that continue the mailbox exactly are processed as they are; anything else
      // (a hole, a restart) is settled by fetching.
      const processed = (await this.store.read()).cursor.processedSeq;
      const pushed = this.pushed.splice(0).sort((a, b) => Number(a.seq - b.seq));
      const run: Envelope[] = [];
      for (const env of pushed) {
        const seq = Number(env.seq);
        if (seq <= processed + run.length) continue;
        if (seq === processed + run.length + 1) run.push(env);
        else fetchNeeded = true;
      }
      if (run.length > 0) received.push(...(await this.processBatch(run)));
      if (fetchNeeded) received.push(...(await this.fetchAll()));
      await this.ackProcessed();
    } while (this.receiveAgain || this.fetchRequested || this.pushed.length > 0);
    return received;
  }

  private async fetchAll(): Promise<ReceivedMessage[]> {
    const received: ReceivedMessage[] = [];
    let gapRetries = 0;
    for (let rounds = 0; rounds < 10_000; rounds++) {
      const after = (await this.store.read()).cursor.processedSeq;
      const res = await this.rpc(() =>
        this.session.call(DeliveryServiceService.fetch, { afterSeq: BigInt(after), limit: FETCH_LIMIT }),
      );
      const envelopes = res.envelopes.filter((e) => Number(e.seq) > after).sort((a, b) => Number(a.seq - b.seq));
      // A hole before or inside the batch may be a message still being committed: fetch again a few
      // times; a hole that stays is a message that expired.
      const contiguous = contiguousPrefix(envelopes, after);
      if (contiguous.length < envelopes.length && gapRetries < GAP_RETRIES) {
        gapRetries++;
        if (contiguous.length > 0) received.push(...(await this.processBatch(contiguous)));
        await new Promise((r) => setTimeout(r, GAP_RETRY_DELAY_MS));
        continue;
      }
      gapRetries = 0;
      if (envelopes.length > 0) received.push(...(await this.processBatch(envelopes)));
      const last = envelopes.length > 0 ? Number(envelopes[envelopes.length - 1]!.seq) : after;
      if (!res.hasMore) {
        // last_seq beyond what came back means an envelope is still on its way (or gone): settle it.
        if (Number(res.lastSeq) > last && envelopes.length > 0) continue;
        break;
      }
    }
    return received;
  }

  private async ackProcessed(): Promise<void> {
    const { processedSeq, ackedSeq } = (await this.store.read()).cursor;
    if (processedSeq <= ackedSeq) return;
    await this.rpc(() => this.session.call(DeliveryServiceService.ack, { upToSeq: BigInt(processedSeq) }));
    await this.store.update((doc) => {
      if (doc.cursor.ackedSeq < processedSeq) doc.cursor.ackedSeq = processedSeq;
    });
  }

  /** Processes envelopes in seq order under one store update, then announces the new messages. */
  private async processBatch(envelopes: Envelope[]): Promise<ReceivedMessage[]> {
    const { identity } = await this.device();
    const directory = await this.directoryForWelcomes(envelopes);
    const warnings: QpqClientError[] = [];
    const received = await this.store.update(async (doc) => {
      const out: ReceivedMessage[] = [];
      for (const env of envelopes) {
        const seq = Number(env.seq);
        if (seq <= doc.cursor.processedSeq) continue; // another process of this data dir got it first
        try {
          const msg = await this.processEnvelope(doc, env, identity, directory);
          if (msg) out.push(msg);
        } catch (err) {
          // A bad envelope must not block the mailbox: note it and move on.
          warnings.push(
            new QpqClientError(
              `skipped envelope ${seq} from ${env.senderUser}: ${err instanceof Error ? err.message : String(err)}`,
            ),
          );
        }
        doc.cursor.processedSeq = seq;
      }
      return out;
    });
    for (const w of warnings) this.warn(w);
    for (const m of received) this.emit('message', m);
    return received;
  }

  /**
   * What auth says about the accounts a Welcome in this batch must be checked against: the sender's and
   * this one. Asked before the store is locked; a user auth does not know maps to undefined.
   */
  private async directoryForWelcomes(envelopes: Envelope[]): Promise<Map<string, KnownAccount | undefined>> {
    const directory = new Map<string, KnownAccount | undefined>();
    const senders = envelopes.filter((env) => {
      try {
        return decodePayload(env.payload).$case === 'welcome';
      } catch {
        return false; // processEnvelope reports it
      }
    });
    if (senders.length === 0) return directory;
    const me = (await this.store.read()).account;
    if (!me) throw new NotLoggedInError(this.dataDir);
    for (const username of new Set([me.username, ...senders.map((e) => e.senderUser)])) {
      try {
        const res = await this.session.call(AuthServiceService.resolveUser, { username });
        directory.set(username, { address: res.address, devices: res.devices });
      } catch (err) {
        if (!(isRpcFailure(err) && (err.code === GrpcCode.NOT_FOUND || err.code === GrpcCode.INVALID_ARGUMENT))) {
          throw this.clientError(err);
        }
        directory.set(username, undefined);
      }
    }
    return directory;
  }

  private async processEnvelope(
    doc: StoreDocument,
    env: Envelope,
    ownIdentity: string,
    directory: ReadonlyMap<string, KnownAccount | undefined>,
  ): Promise<ReceivedMessage | undefined> {
    const kind = decodePayload(env.payload);
    const own = parseDeviceIdentity(ownIdentity).address;
    // Who sent the envelope, as the server authenticated it: the only sender a message may claim.
    const senderAddress = `${env.senderUser}@${domainOf(own)}`;
    const senderIdentity = `${senderAddress}/${env.senderDeviceId}`;
    if (kind?.$case === 'welcome') {
      const joined = await joinFromWelcome(kind.value.welcome, (ref) => {
        const kp = doc.keyPackages[ref];
        return kp && { ref, publicBytes: unb64(kp.publicBytes), privateBytes: unb64(kp.privateBytes) };
      });
      const groupId = hex(joined.groupId);
      if (!doc.keyPackages[joined.usedRef]?.lastResort) delete doc.keyPackages[joined.usedRef];
      if (doc.groups[groupId]) return undefined;
      // The conversation is the authenticated sender's, never a name read from the credentials.
      if (senderAddress === own) throw new Error('refused a Welcome from this account: not a direct message');
      const self = directory.get(doc.account?.username ?? '');
      const peerAccount = directory.get(env.senderUser);
      if (!self || !peerAccount || peerAccount.address !== senderAddress) {
        throw new Error(`refused a Welcome from ${senderAddress}: auth does not know that account`);
      }
      const problem = dmWelcomeProblem(groupMembers(joined.state), senderIdentity, self, peerAccount);
      if (problem !== undefined) throw new Error(`refused a Welcome from ${senderIdentity}: ${problem}`);
      const peer = senderAddress;
      doc.groups[groupId] = { conversation: peer, state: b64(joined.state), createdAtMs: Date.now() };
      addDmGroup(doc, peer, groupId);
      return undefined;
    }
    if (kind?.$case !== 'mlsMessage') throw new Error('unknown payload');
    const candidates = env.groupId.length > 0 ? [hex(env.groupId)] : Object.keys(doc.groups);
    let lastError: unknown = new Error('the message is for a group this device is not in');
    for (const groupId of candidates) {
      const group = doc.groups[groupId];
      if (!group) continue;
      let result: Awaited<ReturnType<typeof processMessage>>;
      try {
        result = await processMessage(unb64(group.state), kind.value);
      } catch (err) {
        lastError = err;
        continue;
      }
      group.state = b64(result.state);
      if (result.kind !== 'application') return undefined;
      // A leaf's name is only what the member who added it wrote; the envelope's sender is authenticated.
      if (result.senderIdentity !== senderIdentity) {
        throw new Error(`dropped a message that claims to be from ${result.senderIdentity}, sent by ${senderIdentity}`);
      }
      const from = parseDeviceIdentity(result.senderIdentity).address;
      if (from !== group.conversation && from !== own) {
        throw new Error(`dropped a message from ${from} in the conversation with ${group.conversation}`);
      }
      const content = AppContent.decode(result.plaintext);
      if (content.body?.$case !== 'text') return undefined;
      const conv = doc.conversations[group.conversation] ?? addDmGroup(doc, group.conversation, groupId);
      const entry = {
        id: content.id,
        direction: 'in' as const,
        from,
        text: content.body.value.text,
        sentAtMs: Number(content.sentAtMs),
        storedAtMs: Date.now(),
        seq: Number(env.seq),
        shown: false,
      };
      if (!appendHistory(conv, entry)) return undefined;
      return toReceived(conv.peer, entry);
    }
    throw lastError;
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

/**
 * Refuses KeyPackages that do not belong to the peer's devices as auth lists them (a server handing out
 * someone else's KeyPackage would otherwise read the conversation).
 */
async function checkClaimedKeyPackages(
  keyPackages: readonly { deviceId: string; keyPackage: Uint8Array }[],
  peer: KnownAccount,
): Promise<void> {
  for (const k of keyPackages) {
    let problem: string | undefined;
    try {
      problem = keyPackageProblem(await inspectKeyPackage(k.keyPackage), k.deviceId, peer);
    } catch (err) {
      problem = `the KeyPackage given for device ${k.deviceId} is malformed (${err instanceof Error ? err.message : String(err)})`;
    }
    if (problem !== undefined) {
      throw new QpqClientError(`refusing to start a conversation with ${peer.address}: ${problem}`);
    }
  }
}

function contiguousPrefix(envelopes: Envelope[], after: number): Envelope[] {
  const out: Envelope[] = [];
  for (const e of envelopes) {
    if (Number(e.seq) !== after + out.length + 1) break;
    out.push(e);
  }
  return out;
}

function normalizeUsername(username: string): string {
  const name = username.trim().toLowerCase();
  if (!name) throw new UsageError('no username given');
  return name;
}

function requirePassword(password: string): void {
  if (!password) throw new UsageError('no password given');
}

function domainOf(address: string): string {
  return address.slice(address.indexOf('@') + 1);
}

function deviceName(): string {
  return `qpq cli on ${hostname()}`.slice(0, 64);
}
