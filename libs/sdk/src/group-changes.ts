// Membership changes of a group, made as MLS Commits that the delivery service orders: exactly one
// Commit per (group, epoch) is accepted. A change is a plan, not a fixed Commit: when another member's
// Commit wins the epoch, this device fetches and applies the winner, asks the plan again on the new
// epoch (someone may have done the work already), and commits what is still to do.
import {
  commitChanges,
  createGroup,
  encryptMessage,
  groupInfo,
  mlsPayload,
  parseDeviceIdentity,
  updateKeys,
  welcomePayload,
} from '@qpq/crypto';
import { AppContent, type GroupSettings } from '@qpq/proto';
import { v7 as uuidv7 } from 'uuid';
import { b64, type ClientCore, hex, unb64 } from './core.js';
import { visibleConversations } from './conversations.js';
import type { ClaimedDevice } from './directory.js';
import { QpqClientError } from './errors.js';
import { exportHistory } from './history-transfer.js';
import { addToOutbox } from './outbox.js';
import type { ConversationRecord, GroupRecord, OutboxEntry, StoreDocument } from './store-document.js';

/** What one Commit should do. */
export interface Change {
  add: ClaimedDevice[];
  /** Member identities ("user@domain/deviceId") to remove. */
  remove: string[];
  /** Refresh this device's keys (an Update path) even when nothing else changes. */
  update?: boolean;
  /** Added devices of this account: they get this device's history of the conversation once it is in. */
  historyFor?: string[];
}

/** Decides, from the group as it is now, what is left to change (undefined: nothing). */
export type Plan = (state: Uint8Array, group: GroupRecord, doc: StoreDocument) => Promise<Change | undefined>;

/** How often a change is re-planned after losing its epoch before giving up. */
const MAX_ATTEMPTS = 12;

export interface GroupChangeDeps {
  core: ClientCore;
  /** Fetches and processes the mailbox (inside the exclusive queue: no other task is running). */
  catchUp: () => Promise<void>;
  /** The conversation kind and settings a Welcome into this group carries. */
  welcomeFor: (doc: StoreDocument, groupId: string) => { kind: string; settings: GroupSettings };
}

/**
 * Commits `plan` on group `groupId` until the delivery service accepts it or nothing is left to do.
 * Runs inside the client's exclusive queue. `queued`: the Commit could not go out now and waits in the
 * outbox (a later flush sends it; if another Commit wins meanwhile it is dropped).
 * @throws QpqClientError when the Commit keeps losing its epoch
 */
export async function changeGroup(
  deps: GroupChangeDeps,
  groupId: string,
  plan: Plan,
): Promise<'accepted' | 'queued' | 'nothing'> {
  const { core } = deps;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    // A Commit of ours for this group still in the outbox goes first: it may already have won its epoch.
    if ((await core.store.read()).outbox.some((e) => e.kind === 'commit' && e.groupId === groupId)) {
      try {
        await core.outbox.flush();
      } catch {
        return 'queued';
      }
    }
    await deps.catchUp();
    const doc = await core.store.read();
    const group = doc.groups[groupId];
    if (!group) throw new QpqClientError('this device is no longer in that group');
    const state = unb64(group.state);
    const change = await plan(state, group, doc);
    if (!change) return 'nothing';
    const entry = await queueCommit(deps, groupId, state, change);
    if (!entry) return 'nothing';
    let result;
    try {
      result = await core.outbox.flush();
    } catch (err) {
      if ((await core.store.read()).outbox.some((e) => e.messageId === entry.messageId)) return 'queued';
      throw err;
    }
    if (result.conflicts.some((e) => e.messageId === entry.messageId)) {
      // Another member's Commit won this epoch: it is in the mailbox. Back off a little so that a crowd
      // of devices racing for one epoch spreads out, then try again on the new epoch.
      await new Promise((r) => setTimeout(r, Math.random() * 50 * attempt));
      continue;
    }
    if ((await core.store.read()).outbox.some((e) => e.messageId === entry.messageId)) return 'queued';
    return 'accepted';
  }
  throw new QpqClientError(`gave up after ${MAX_ATTEMPTS} attempts: the group kept changing under this change`);
}

/**
 * Makes the Commit and queues it (with its Welcome) in the outbox. The group keeps its current state
 * until the delivery service accepts the Commit (outbox.ts applies it then), except for a new group
 * whose only member is this device: nobody can commit there first, so its state moves at once and
 * messages written before the Commit goes out are already in the new epoch.
 */
async function queueCommit(
  deps: GroupChangeDeps,
  groupId: string,
  state: Uint8Array,
  change: Change,
): Promise<OutboxEntry | undefined> {
  const { core } = deps;
  const me = await core.me();
  const info = groupInfo(state);
  const committed =
    change.add.length === 0 && change.remove.length === 0
      ? change.update
        ? await updateKeys(state)
        : undefined
      : await commitChanges(state, { add: change.add.map((d) => d.keyPackage), remove: change.remove });
  if (!committed) return undefined;
  const others = info.members.filter((m) => m !== info.ownIdentity);
  const soleMember = others.length === 0;
  const now = Date.now();
  const welcomeBytes = 'welcome' in committed ? (committed.welcome as Uint8Array | undefined) : undefined;
  let welcome: { messageId: string; recipientDeviceIds: string[]; payload: string } | undefined;
  if (welcomeBytes) {
    const w = deps.welcomeFor(await core.store.read(), groupId);
    welcome = {
      messageId: uuidv7(),
      recipientDeviceIds: change.add.map((d) => d.deviceId),
      payload: b64(welcomePayload({ welcome: welcomeBytes, conversationKind: w.kind, settings: w.settings })),
    };
  }
  const entry: OutboxEntry = {
    messageId: uuidv7(),
    kind: 'commit',
    conversation: groupId,
    groupId,
    // The Commit goes to every other member (the removed ones included: they learn they are out). A
    // group of one still sends it, to this device, so the server learns the group's epoch.
    recipientDeviceIds: soleMember ? [me.deviceId] : [...new Set(others.map((m) => parseDeviceIdentity(m).deviceId))],
    payload: b64(mlsPayload(committed.commit)),
    createdAtMs: now,
    attempts: 0,
    commit: {
      epoch: Number(committed.epoch),
      newState: b64(committed.state),
      applied: soleMember && info.epoch === 0n,
      ...(welcome ? { welcome } : {}),
      ...(change.historyFor?.length ? { historyFor: change.historyFor } : {}),
    },
  };
  await core.store.update((doc) => {
    const group = doc.groups[groupId];
    if (!group) throw new QpqClientError('this device is no longer in that group');
    if (entry.commit!.applied) group.state = entry.commit!.newState;
    addToOutbox(doc, entry);
  });
  return entry;
}

/**
 * Hands every conversation's history to this account's newly added devices, in the group of this
 * account's own devices (`groupId`), addressed to them alone. Run (in the exclusive queue) once the
 * Commit that added them is accepted — by whichever flush sent it, now or after a restart.
 */
export async function sendHistory(core: ClientCore, groupId: string, deviceIds: string[]): Promise<void> {
  await core.store.update(async (doc) => {
    const group = doc.groups[groupId];
    const holder = group && doc.conversations[group.conversation];
    if (!group || holder?.kind !== 'self') return;
    let state = unb64(group.state);
    for (const conv of visibleConversations(doc)) {
      for (const chunk of exportHistory(conv, uuidv7())) {
        const id = uuidv7();
        const content = AppContent.encode({
          id,
          sentAtMs: BigInt(Date.now()),
          body: { $case: 'history', value: chunk },
        }).finish();
        const encrypted = await encryptMessage(state, content);
        state = encrypted.state;
        addToOutbox(doc, {
          messageId: id,
          kind: 'application',
          conversation: group.conversation,
          groupId,
          recipientDeviceIds: deviceIds,
          payload: b64(mlsPayload(encrypted.message)),
          createdAtMs: Date.now(),
          attempts: 0,
        });
      }
    }
    group.state = b64(state);
  });
  await core.outbox.flush().catch((err: unknown) => core.warn(err));
}

/** A new MLS group with this device alone, recorded with `record` (which returns its conversation). Returns its id. */
export async function createLocalGroup(
  core: ClientCore,
  record: (doc: StoreDocument, groupId: string) => ConversationRecord,
): Promise<string> {
  const { keys, identity } = await core.device();
  const created = await createGroup(keys, identity);
  const groupId = hex(created.groupId);
  await core.store.update((doc) => {
    const conv = record(doc, groupId);
    doc.groups[groupId] = { conversation: conv.peer, state: b64(created.state), createdAtMs: Date.now() };
  });
  return groupId;
}
