// This account's devices, kept in step with its groups: a device that logged in is added to every
// conversation (and handed its history), a revoked one is removed; members who left are removed. Any
// device of the group could do the work, so they take turns by rank (sorted device id): the first acts
// at once, the others only if the work is still undone after a wait — commit ordering settles the rest.
import { groupInfo, parseDeviceIdentity, safetyNumber } from '@qpq/crypto';
import { AuthServiceService } from '@qpq/proto';
import { type ClientCore, unb64 } from './core.js';
import { Directory } from './directory.js';
import { UsageError } from './errors.js';
import { changeGroup, createLocalGroup, type Change, type GroupChangeDeps } from './group-changes.js';
import { SELF_CONVERSATION, addSelfGroup, visibleConversations } from './conversations.js';
import type { StoreDocument } from './store-document.js';
import type { DeviceSummary, SafetyNumber } from './views.js';

/** How long a device of rank r waits before doing what the device before it did not: r × this. */
const RANK_DELAY_MS = 2_500;
/** A device that logged in may not have uploaded KeyPackages yet: look again this often, this many times. */
const RETRY_DELAY_MS = 1_500;
const RETRIES = 6;

export class AccountDevices {
  private timer: NodeJS.Timeout | undefined;
  private retries = 0;

  constructor(
    private readonly core: ClientCore,
    private readonly changes: GroupChangeDeps,
    /** Runs a reconcile later, in the background (the client decides how, and stops it on close). */
    private readonly later: (task: () => Promise<void>) => void,
  ) {}

  async list(): Promise<DeviceSummary[]> {
    const me = await this.core.me();
    const res = await this.core.session.call(AuthServiceService.listDevices, {});
    return res.devices.map((d) => ({
      deviceId: d.deviceId,
      name: d.name,
      createdAt: new Date(Number(d.createdAtMs)),
      current: d.deviceId === me.deviceId,
    }));
  }

  /** Revokes a device of this account, then removes it from every group this device is in. */
  async revoke(deviceId: string): Promise<void> {
    const me = await this.core.me();
    const id = deviceId.trim().toLowerCase();
    if (!id) throw new UsageError('no device id given');
    if (id === me.deviceId) throw new UsageError('this is the device you are using: revoke it from another device');
    await this.core.session.call(AuthServiceService.revokeDevice, { deviceId: id });
    await this.reconcile(true);
  }

  /**
   * Brings every group in step with this account's devices and with members who left.
   * @param eager act whatever this device's rank (the earlier ranks had their chance)
   */
  async reconcile(eager = false): Promise<void> {
    await this.core.exclusive(async () => {
      const me = await this.core.me();
      const directory = new Directory(this.core);
      const active = new Set(
        (await this.core.session.call(AuthServiceService.listDevices, {})).devices.map((d) => d.deviceId),
      );
      const doc = await this.core.store.read();
      let waitFor = 0;
      let retry = false;
      for (const [groupId, group] of Object.entries(doc.groups)) {
        const conv = doc.conversations[group.conversation];
        if (!conv || conv.left) continue;
        const work = workFor(unb64(group.state), me.address, active, group.pendingRemovals ?? [], group.untrusted);
        if (!work) continue;
        if (work.rank > 0 && !eager) {
          waitFor = Math.max(waitFor, work.rank * RANK_DELAY_MS);
          continue;
        }
        const claimed = new Map<string, Change['add'][number]>();
        let outcome;
        try {
          outcome = await changeGroup(this.changes, groupId, async (state, g) => {
            const now = workFor(state, me.address, active, g.pendingRemovals ?? [], g.untrusted);
            if (!now) return undefined;
            const unclaimed = now.missing.filter((d) => !claimed.has(d));
            if (unclaimed.length > 0) {
              for (const c of await directory.claim(me.username, unclaimed)) claimed.set(c.deviceId, c);
            }
            const add = now.missing.map((d) => claimed.get(d)).filter((c): c is Change['add'][number] => !!c);
            if (add.length < now.missing.length) retry = true;
            if (add.length === 0 && now.remove.length === 0) return undefined;
            // The history goes to new devices through the group of this account's own devices only.
            const history = conv.kind === 'self' && add.length > 0 ? { historyFor: add.map((c) => c.deviceId) } : {};
            return { add, remove: now.remove, ...history };
          });
        } catch (err) {
          // One group that cannot be brought in step must not hold up the others: say so, try later.
          this.core.warn(err);
          retry = true;
          continue;
        }
        if (outcome === 'queued') retry = true;
      }
      try {
        if (await this.ensureSelfGroup(doc, active, me.deviceId)) retry = true;
      } catch (err) {
        this.core.warn(err);
        retry = true;
      }
      if (retry && this.retries < RETRIES) {
        this.retries++;
        this.schedule(RETRY_DELAY_MS, true);
      } else if (!retry) {
        this.retries = 0;
      }
      if (waitFor > 0) this.schedule(waitFor, true);
    });
  }

  /**
   * Creates the group of this account's own devices when the account has more than one and this device
   * holds conversations to hand over (a new, empty device waits to be added instead). Its first Commit
   * adds the other devices, which then get every conversation's history. Returns whether some device
   * could not be added yet (no KeyPackages).
   */
  private async ensureSelfGroup(
    doc: StoreDocument,
    active: ReadonlySet<string>,
    ownDeviceId: string,
  ): Promise<boolean> {
    const self = doc.conversations[SELF_CONVERSATION];
    if (self && self.groupIds.some((g) => doc.groups[g])) return false;
    const others = [...active].filter((d) => d !== ownDeviceId);
    if (others.length === 0 || visibleConversations(doc).every((c) => c.history.length === 0)) return false;
    const me = await this.core.me();
    const directory = new Directory(this.core);
    const claimed = await directory.claim(me.username, others);
    if (claimed.length === 0) return true;
    const groupId = await createLocalGroup(this.core, (d, id) => addSelfGroup(d, id));
    const outcome = await changeGroup(this.changes, groupId, async () => ({
      add: claimed,
      remove: [],
      historyFor: claimed.map((c) => c.deviceId),
    }));
    return claimed.length < others.length || outcome === 'queued';
  }

  /** The safety number with `username`: both accounts' identity keys (every active device). */
  async verify(username: string): Promise<SafetyNumber> {
    const me = await this.core.me();
    const directory = new Directory(this.core);
    const peer = await directory.requireAccount(username);
    const self = await directory.requireAccount(me.username);
    if (peer.address === me.address) throw new UsageError('compare safety numbers with someone else');
    const number = safetyNumber(
      { address: self.address, identityKeys: self.devices.map((d) => d.identityKey) },
      { address: peer.address, identityKeys: peer.devices.map((d) => d.identityKey) },
    );
    return this.core.store.update((doc) => {
      const numbers = (doc.safetyNumbers ??= {});
      const previous = numbers[peer.address];
      numbers[peer.address] = number;
      return {
        peer: peer.address,
        number,
        changed: previous !== undefined && previous !== number,
        ...(previous !== undefined && previous !== number ? { previous } : {}),
      };
    });
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delayMs: number, eager: boolean): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.later(() => this.reconcile(eager));
    }, delayMs);
    this.timer.unref();
  }
}

/**
 * What is to be done in one group: this account's active devices that are missing, and leaves to remove
 * (this account's revoked devices; every device of members who left; members auth does not vouch for). `rank` orders the devices that
 * may do it. Undefined when nothing is to be done.
 */
export function workFor(
  state: Uint8Array,
  ownAddress: string,
  activeOwn: ReadonlySet<string>,
  leaving: readonly string[],
  untrusted: Readonly<Record<string, string>> = {},
): { missing: string[]; remove: string[]; rank: number } | undefined {
  const info = groupInfo(state);
  const members = info.members.map((identity) => ({ identity, ...parseDeviceIdentity(identity) }));
  const ownDeviceId = parseDeviceIdentity(info.ownIdentity).deviceId;
  const ownMembers = members.filter((m) => m.address === ownAddress);
  const present = new Set(ownMembers.map((m) => m.deviceId));
  const missing = [...activeOwn].filter((d) => !present.has(d)).sort();
  const revoked = ownMembers.filter((m) => !activeOwn.has(m.deviceId)).map((m) => m.identity);
  const left = members
    .filter((m) => leaving.includes(m.address) || m.identity in untrusted)
    .map((m) => m.identity)
    .filter((identity) => !revoked.includes(identity));
  if (missing.length === 0 && revoked.length === 0 && left.length === 0) return undefined;
  // This account's own work goes to its own devices first; removing those who left, to anyone remaining.
  const candidates = (missing.length > 0 || revoked.length > 0 ? ownMembers : members)
    .filter(
      (m) =>
        !leaving.includes(m.address) &&
        !(m.identity in untrusted) &&
        (m.address !== ownAddress || activeOwn.has(m.deviceId)),
    )
    .map((m) => m.deviceId)
    .sort();
  const rank = Math.max(0, candidates.indexOf(ownDeviceId));
  return { missing, remove: [...revoked, ...left], rank };
}
