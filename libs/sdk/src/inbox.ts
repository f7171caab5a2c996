// The receiving side: this device's mailbox fetched and processed in seq order — Welcomes joined (after
// checking every member against the directory), Commits applied, application messages decrypted and
// applied to their conversation — and acknowledged only once stored.
import {
  decodePayload,
  groupInfo,
  groupMembers,
  joinFromWelcome,
  parseDeviceIdentity,
  peekFraming,
  processMessage,
  type GroupMember,
} from '@qpq/crypto';
import { AppContent, DeliveryServiceService, type Envelope } from '@qpq/proto';
import { applyContent, checkedSettings } from './app-content.js';
import {
  SELF_CONVERSATION,
  addDmGroup,
  addGroupConversation,
  addSelfGroup,
  pruneGone,
  kindOf,
  nameOf,
  preferredGroup,
  purgeExpired,
} from './conversations.js';
import { b64, type ClientCore, domainOf, hex, unb64, usernameOf } from './core.js';
import { Directory } from './directory.js';
import { KeyTransparencyError, QpqClientError } from './errors.js';
import { addedMemberProblem, welcomeCheck, type KnownAccount } from './member-check.js';
import type { StoreDocument } from './store-document.js';
import type { ConversationEvent, ReceivedMessage } from './views.js';

const FETCH_LIMIT = 100;
/** How often a fetch that shows a hole in the seqs is repeated before the hole is taken as expired. */
const GAP_RETRIES = 5;
const GAP_RETRY_DELAY_MS = 100;

/** An account a Welcome names, as auth lists it, or why the key-transparency log does not vouch for it. */
type WelcomeAccount = KnownAccount | KeyTransparencyError;

interface BatchOutcome {
  messages: ReceivedMessage[];
  events: ConversationEvent[];
  warnings: QpqClientError[];
  /** Members added by Commits in this batch, checked against the directory after the batch. */
  added: { groupId: string; conversation: string; dmPeer?: string; member: GroupMember }[];
  /** Groups whose membership this device may have to act on (leaves, this account's devices). */
  attention: boolean;
}

export class Inbox {
  private pushed: Envelope[] = [];
  private fetchRequested = false;

  constructor(
    private readonly core: ClientCore,
    /** Called after a batch that asks for membership work (a member left; devices changed). */
    private readonly onAttention: () => void,
  ) {}

  /** A pushed envelope: processed as is when it continues the mailbox, else by fetching. */
  pushEnvelope(env: Envelope): void {
    this.pushed.push(env);
  }

  requestFetch(): void {
    this.fetchRequested = true;
  }

  hasWork(): boolean {
    return this.fetchRequested || this.pushed.length > 0;
  }

  /** Processes pushed envelopes and fetches when asked or when a hole shows. Run inside the exclusive queue. */
  async drain(): Promise<ReceivedMessage[]> {
    const received: ReceivedMessage[] = [];
    while (this.hasWork()) {
      let fetchNeeded = this.fetchRequested;
      this.fetchRequested = false;
      const processed = (await this.core.store.read()).cursor.processedSeq;
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
    }
    return received;
  }

  private async fetchAll(): Promise<ReceivedMessage[]> {
    const received: ReceivedMessage[] = [];
    let gapRetries = 0;
    for (let rounds = 0; rounds < 10_000; rounds++) {
      const after = (await this.core.store.read()).cursor.processedSeq;
      const res = await this.core.session.call(DeliveryServiceService.fetch, {
        afterSeq: BigInt(after),
        limit: FETCH_LIMIT,
      });
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
    const { processedSeq, ackedSeq } = (await this.core.store.read()).cursor;
    if (processedSeq <= ackedSeq) return;
    await this.core.session.call(DeliveryServiceService.ack, { upToSeq: BigInt(processedSeq) });
    await this.core.store.update((doc) => {
      if (doc.cursor.ackedSeq < processedSeq) doc.cursor.ackedSeq = processedSeq;
    });
  }

  /** Processes envelopes in seq order under one store update, then announces what happened. */
  private async processBatch(envelopes: Envelope[]): Promise<ReceivedMessage[]> {
    const { identity } = await this.core.device();
    const directory = new Directory(this.core);
    const accounts = await this.accountsForWelcomes(envelopes, directory);
    const outcome: BatchOutcome = { messages: [], events: [], warnings: [], added: [], attention: false };
    await this.core.store.update(async (doc) => {
      for (const env of envelopes) {
        const seq = Number(env.seq);
        if (seq <= doc.cursor.processedSeq) continue; // another process of this data dir got it first
        try {
          await this.processEnvelope(doc, env, identity, accounts, outcome);
        } catch (err) {
          // A bad envelope must not block the mailbox: note it and move on.
          outcome.warnings.push(
            new QpqClientError(
              `skipped envelope ${seq} from ${env.senderUser}: ${err instanceof Error ? err.message : String(err)}`,
            ),
          );
        }
        doc.cursor.processedSeq = seq;
      }
      purgeExpired(doc, Date.now());
    });
    await this.checkAdded(outcome, directory);
    for (const w of outcome.warnings) this.core.warn(w);
    this.core.announce(outcome.messages, outcome.events);
    if (outcome.attention) this.onAttention();
    return outcome.messages;
  }

  /**
   * The accounts the members of each Welcome in this batch must be checked against, asked of auth
   * before the store is locked. A trial join (pure: nothing is stored) tells who the members are.
   */
  private async accountsForWelcomes(envelopes: Envelope[], directory: Directory): Promise<Map<string, WelcomeAccount>> {
    const accounts = new Map<string, WelcomeAccount>();
    const doc = await this.core.store.read();
    const usernames = new Set<string>();
    for (const env of envelopes) {
      let kind;
      try {
        kind = decodePayload(env.payload);
      } catch {
        continue; // processEnvelope reports it
      }
      if (kind.$case !== 'welcome') continue;
      usernames.add(env.senderUser);
      try {
        const joined = await joinFromWelcome(kind.value.welcome, (ref) => keyPackageBundle(doc, ref));
        for (const m of groupMembers(joined.state)) usernames.add(usernameOf(parseDeviceIdentity(m.identity).address));
      } catch {
        // processEnvelope reports it
      }
    }
    if (usernames.size === 0) return accounts;
    if (doc.account) usernames.add(doc.account.username);
    for (const username of usernames) {
      try {
        const account = await directory.account(username);
        if (account) accounts.set(account.address, account);
      } catch (err) {
        // The log does not vouch for their keys: a Welcome that names them is refused, with this reason.
        if (!(err instanceof KeyTransparencyError)) throw err;
        accounts.set(err.address, err);
      }
    }
    return accounts;
  }

  private async processEnvelope(
    doc: StoreDocument,
    env: Envelope,
    ownIdentity: string,
    accounts: ReadonlyMap<string, WelcomeAccount>,
    outcome: BatchOutcome,
  ): Promise<void> {
    const own = parseDeviceIdentity(ownIdentity);
    // This device's own Commit of a group where it was alone comes back to it: nothing to do.
    if (env.senderDeviceId === own.deviceId) return;
    const kind = decodePayload(env.payload);
    // Who sent the envelope, as the server authenticated it: the only sender a message may claim.
    const senderAddress = `${env.senderUser}@${domainOf(own.address)}`;
    const senderIdentity = `${senderAddress}/${env.senderDeviceId}`;
    if (kind.$case === 'welcome') {
      const joined = await joinFromWelcome(kind.value.welcome, (ref) => keyPackageBundle(doc, ref));
      const groupId = hex(joined.groupId);
      if (!doc.keyPackages[joined.usedRef]?.lastResort) delete doc.keyPackages[joined.usedRef];
      if (doc.groups[groupId]) return;
      const members = groupMembers(joined.state);
      const memberAccounts = [...new Set(members.map((m) => parseDeviceIdentity(m.identity).address))];
      const listed = [senderAddress, ...memberAccounts].map((a) => accounts.get(a));
      const unvouched = listed.find((a) => a instanceof KeyTransparencyError);
      if (unvouched) throw new Error(`refused a Welcome from ${senderIdentity}: ${unvouched.message}`);
      const known = listed.filter((a): a is KnownAccount => a !== undefined && !(a instanceof KeyTransparencyError));
      if (!accounts.has(senderAddress)) {
        throw new Error(`refused a Welcome from ${senderAddress}: auth does not know that account`);
      }
      const check = welcomeCheck(members, senderIdentity, known);
      if (check.problem !== undefined) throw new Error(`refused a Welcome from ${senderIdentity}: ${check.problem}`);
      const bundleKind = kind.value.conversationKind || 'dm';
      if (bundleKind === 'dm') {
        // A DM is between this account and one other; named by the other, never by what a credential says.
        const peers = memberAccounts.filter((a) => a !== own.address);
        if (peers.length !== 1) throw new Error(`refused a Welcome from ${senderIdentity}: not a direct conversation`);
        const peer = peers[0]!;
        doc.groups[groupId] = { conversation: peer, state: b64(joined.state), createdAtMs: Date.now() };
        addDmGroup(doc, peer, groupId);
      } else if (bundleKind === 'group') {
        const settings = kind.value.settings && checkedSettings(kind.value.settings, 'group');
        doc.groups[groupId] = { conversation: groupId, state: b64(joined.state), createdAtMs: Date.now() };
        const conv = addGroupConversation(doc, groupId, settings ?? { name: '', disappearAfterMs: 0 });
        outcome.events.push({
          kind: 'membership',
          conversation: groupId,
          text: `${senderAddress} added you to #${nameOf(conv)}`,
        });
      } else if (bundleKind === 'self') {
        // The group of this account's own devices: its members and its sender are this account only.
        if (senderAddress !== own.address || memberAccounts.some((a) => a !== own.address)) {
          throw new Error(`refused a Welcome from ${senderIdentity}: not a group of this account's devices`);
        }
        doc.groups[groupId] = { conversation: SELF_CONVERSATION, state: b64(joined.state), createdAtMs: Date.now() };
        addSelfGroup(doc, groupId);
      } else {
        throw new Error(`refused a Welcome from ${senderIdentity}: unknown conversation kind ${bundleKind}`);
      }
      if (Object.keys(check.untrusted).length > 0) {
        doc.groups[groupId]!.untrusted = check.untrusted;
        outcome.attention = true;
      }
      const conv = doc.conversations[doc.groups[groupId]!.conversation];
      const dmSettings = kind.value.settings && checkedSettings(kind.value.settings, 'dm');
      if (conv && kindOf(conv) === 'dm' && dmSettings) conv.settings = dmSettings;
      return;
    }
    if (kind.$case !== 'mlsMessage') throw new Error('unknown payload');
    const groupId = env.groupId.length > 0 ? hex(env.groupId) : undefined;
    const group = groupId ? doc.groups[groupId] : undefined;
    if (!group || !groupId) {
      const conv = groupId && doc.conversations[groupId];
      if (conv && conv.left) return; // a group this account left: its traffic is no longer ours
      throw new Error('the message is for a group this device is not in');
    }
    const conv = doc.conversations[group.conversation];
    if (!conv) throw new Error('the message is for a conversation this device no longer has');
    adoptOwnCommit(doc, groupId, kind.value);
    const before = groupInfo(unb64(group.state)).members.map((m) => parseDeviceIdentity(m).address);
    const result = await processMessage(unb64(group.state), kind.value);
    if (result.kind === 'commit') {
      // Someone else's Commit took the epoch: a Commit of ours still queued for it can only lose.
      doc.outbox = doc.outbox.filter((e) => !(e.kind === 'commit' && e.groupId === groupId && !e.commit?.applied));
      if (result.removedSelf) {
        delete doc.groups[groupId];
        conv.groupIds = conv.groupIds.filter((g) => g !== groupId);
        conv.sendGroupId = preferredGroup(conv.groupIds);
        // A DM can start again with a new group; a group conversation is over for this account.
        if (conv.groupIds.length === 0 && kindOf(conv) === 'group') conv.left = true;
        outcome.events.push({
          kind: 'membership',
          conversation: conv.peer,
          text: `${senderAddress} removed this device from ${kindOf(conv) === 'group' ? `#${nameOf(conv)}` : `the conversation with ${conv.peer}`}`,
        });
        return;
      }
      group.state = b64(result.state);
      const members = groupMembers(result.state);
      for (const identity of result.added) {
        const member = members.find((m) => m.identity === identity);
        if (member) {
          outcome.added.push({
            groupId,
            conversation: conv.peer,
            ...(kindOf(conv) === 'dm' ? { dmPeer: conv.peer } : {}),
            member,
          });
        }
      }
      const describe = (ids: string[]) => [...new Set(ids.map((i) => parseDeviceIdentity(i).address))];
      const present = new Set(members.map((m) => parseDeviceIdentity(m.identity).address));
      if (kindOf(conv) === 'group') {
        // Accounts new to the group joined; a device added to a member's account is no news.
        const joined = describe(result.added).filter((a) => a !== own.address && !before.includes(a));
        // An account that announced its leaving was shown as gone then.
        const announced = group.pendingRemovals ?? [];
        const gone = describe(result.removed).filter((a) => !present.has(a) && !announced.includes(a));
        for (const a of joined)
          outcome.events.push({ kind: 'membership', conversation: conv.peer, text: `${a} joined #${nameOf(conv)}` });
        for (const a of gone)
          outcome.events.push({ kind: 'membership', conversation: conv.peer, text: `${a} left #${nameOf(conv)}` });
      }
      pruneGone(doc, groupId);
      return;
    }
    // A leaf's name is only what the member who added it wrote; the envelope's sender is authenticated.
    if (result.senderIdentity !== senderIdentity) {
      throw new Error(`dropped a message that claims to be from ${result.senderIdentity}, sent by ${senderIdentity}`);
    }
    group.state = b64(result.state);
    const from = parseDeviceIdentity(result.senderIdentity).address;
    if (kindOf(conv) === 'dm' && from !== conv.peer && from !== own.address) {
      throw new Error(`dropped a message from ${from} in the conversation with ${conv.peer}`);
    }
    const content = AppContent.decode(result.plaintext);
    const applied = applyContent(conv, group, content, {
      doc,
      from,
      own: own.address,
      seq: Number(env.seq),
      now: Date.now(),
    });
    if (content.body?.$case === 'leave' && from === own.address) {
      // Another device of this account left: so does this one.
      for (const g of conv.groupIds) delete doc.groups[g];
      conv.groupIds = [];
    }
    if (group.pendingRemovals?.length) outcome.attention = true;
    if (applied.message) outcome.messages.push(applied.message);
    outcome.events.push(...applied.events);
  }

  /**
   * A member added by a Commit is named by whoever added it: check each against the identity keys auth
   * lists (and, in a DM, that it belongs to one of its two accounts). One that fails is marked untrusted:
   * nothing is sent in that group until it is removed, and members remove it. A check that cannot run
   * now (auth unreachable) is a warning.
   */
  private async checkAdded(outcome: BatchOutcome, directory: Directory): Promise<void> {
    const own = (await this.core.me()).address;
    const failed: { groupId: string; identity: string; problem: string }[] = [];
    for (const { groupId, conversation, dmPeer, member } of outcome.added) {
      let address: string;
      try {
        address = parseDeviceIdentity(member.identity).address;
      } catch {
        failed.push({ groupId, identity: member.identity, problem: `${member.identity} is not a device identity` });
        continue;
      }
      if (dmPeer !== undefined && address !== own && address !== dmPeer) {
        failed.push({
          groupId,
          identity: member.identity,
          problem: `${member.identity} was added to the direct conversation with ${dmPeer}, which holds only its two accounts`,
        });
        continue;
      }
      try {
        const account = await directory.account(usernameOf(address));
        const problem = addedMemberProblem(member, account?.address === address ? account : undefined);
        if (problem) failed.push({ groupId, identity: member.identity, problem });
      } catch (err) {
        if (err instanceof KeyTransparencyError) {
          failed.push({ groupId, identity: member.identity, problem: err.message });
          continue;
        }
        outcome.warnings.push(
          new QpqClientError(`${conversation}: could not check the added member ${member.identity}`, undefined, {
            cause: err,
          }),
        );
      }
    }
    if (failed.length === 0) return;
    await this.core.store.update((doc) => {
      for (const f of failed) {
        const group = doc.groups[f.groupId];
        if (!group) continue;
        (group.untrusted ??= {})[f.identity] = f.problem;
      }
    });
    for (const f of failed) {
      outcome.warnings.push(
        new QpqClientError(`${f.problem}: nothing is sent in that conversation until it is removed`),
      );
    }
    outcome.attention = true;
  }
}

/**
 * A message of the epoch after ours, while a Commit of ours for our epoch waits unapplied in the
 * outbox, means the delivery service accepted that Commit (its answer was lost, or the outbox has not
 * been told yet): envelopes arrive in seq order, so a competing Commit that won would have come first.
 * The group moves to the Commit's state before the message is processed, instead of forking.
 */
function adoptOwnCommit(doc: StoreDocument, groupId: string, message: Uint8Array): void {
  const group = doc.groups[groupId];
  const pending = doc.outbox.find((e) => e.kind === 'commit' && e.groupId === groupId && !e.commit?.applied);
  if (!group || !pending?.commit) return;
  let epoch: bigint | undefined;
  try {
    epoch = peekFraming(message).epoch;
  } catch {
    return; // processMessage reports it
  }
  const ours = groupInfo(unb64(group.state)).epoch;
  if (epoch === undefined || ours !== BigInt(pending.commit.epoch) || epoch !== ours + 1n) return;
  group.state = pending.commit.newState;
  pending.commit.applied = true;
  pruneGone(doc, groupId);
}

function keyPackageBundle(doc: StoreDocument, ref: string) {
  const kp = doc.keyPackages[ref];
  return kp && { ref, publicBytes: unb64(kp.publicBytes), privateBytes: unb64(kp.privateBytes) };
}

function contiguousPrefix(envelopes: Envelope[], after: number): Envelope[] {
  const out: Envelope[] = [];
  for (const e of envelopes) {
    if (Number(e.seq) !== after + out.length + 1) break;
    out.push(e);
  }
  return out;
}
