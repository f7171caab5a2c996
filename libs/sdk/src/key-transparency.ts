// Key transparency on the client: the identity keys auth hands out are used only when the ktlog proves
// them. Each lookup comes with inclusion proofs against a signed tree head; the head must be signed by
// the log key this device pinned, and must extend (RFC 9162 consistency) the newest head this device
// kept, so a server that shows one person a key of its own choosing must either leave it out of the
// log (and be refused here) or put it in a log that every auditor sees.
//
// What this does not prove: that the log holds no other key of the account (a lookup could leave an
// entry out). `qpq kt audit` and the account's own devices reading their history cover that.
import { encodeLogEntry, verifyTreeHead } from '@qpq/crypto';
import { leafHash, MerkleTree, verifyConsistency, verifyInclusion } from '@qpq/merkle';
import { KeyTransparencyServiceService as Kt, type LogEntry, type SignedTreeHead } from '@qpq/proto';
import { b64, hex, TaskQueue, unb64 } from './core.js';
import { GrpcCode, isRpcFailure, KeyTransparencyError } from './errors.js';
import type { GatewaySession } from './gateway-session.js';
import type { KnownAccount } from './member-check.js';
import type { LocalStore } from './store.js';
import type { KeyTransparencyRecord } from './store-document.js';

/** How long a key auth lists may take to reach the log before it counts as missing from it. */
export const KT_APPEND_WAIT_MS = 3_000;
/** A verified account is not looked up again for this long (unless auth lists a device not seen). */
const VOUCHED_FOR_MS = 30_000;
const RETRY_MS = 100;

const OP_ADD = 1;
const OP_REVOKE = 2;

/** One entry of a user's key history, proved against a head consistent with the kept one. */
export interface KeyLogEntry {
  index: number;
  op: 'add' | 'revoke';
  address: string;
  deviceId: string;
  /** Raw Ed25519 identity public key, hex. */
  key: string;
  timestampMs: number;
}

export interface KeyLogAudit {
  /** The whole log recomputes to the signed root, and the head is consistent with the kept one. */
  ok: boolean;
  size: number;
  /** Root of the signed head, hex. */
  root: string;
  timestampMs: number;
  problems: string[];
}

export class KeyTransparency {
  /** Addresses whose listed keys the log proved lately: device id → key (hex). */
  private readonly vouched = new Map<string, { atMs: number; keys: Map<string, string> }>();
  /** Heads are checked and kept one at a time. */
  private readonly heads = new TaskQueue();

  constructor(
    private readonly store: LocalStore,
    private readonly session: GatewaySession,
    private readonly appendWaitMs = KT_APPEND_WAIT_MS,
  ) {}

  /**
   * Checks that the log holds each device auth lists for `account` as added with that identity key and
   * not revoked since, waiting (at most appendWaitMs) for keys auth announced a moment ago.
   * @throws KeyTransparencyError naming the account
   */
  async vouch(account: KnownAccount): Promise<void> {
    const seen = this.vouched.get(account.address);
    if (
      seen &&
      Date.now() - seen.atMs < VOUCHED_FOR_MS &&
      account.devices.every((d) => seen.keys.get(d.deviceId) === hex(d.identityKey))
    ) {
      return;
    }
    const deadline = Date.now() + this.appendWaitMs;
    for (;;) {
      const wait = Math.max(0, deadline - Date.now());
      const { entries } = await this.history(account.address, wait);
      const keys = activeKeys(entries);
      const missing: string[] = [];
      for (const device of account.devices) {
        const logged = keys.get(device.deviceId);
        if (logged === undefined) {
          missing.push(device.deviceId);
        } else if (logged === null) {
          throw new KeyTransparencyError(account.address, `device ${device.deviceId} is revoked in the log`);
        } else if (logged !== hex(device.identityKey)) {
          throw new KeyTransparencyError(
            account.address,
            `auth hands out another identity key for device ${device.deviceId} than the one in the log`,
          );
        }
      }
      if (missing.length === 0) {
        this.vouched.set(account.address, {
          atMs: Date.now(),
          keys: new Map(account.devices.map((d) => [d.deviceId, hex(d.identityKey)])),
        });
        return;
      }
      if (Date.now() >= deadline) {
        throw new KeyTransparencyError(
          account.address,
          `the key of device ${missing.join(', ')} is not in the log (waited ${this.appendWaitMs / 1000} s)`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  /**
   * The check only the account's own devices can make: every key the log holds as active for `address`
   * belongs to one of the account's devices (`listed`, asked of auth). A server that showed someone
   * else a key of its own choosing had to put it in the log, and this is where it shows. A revoke
   * reaches the log a moment after auth, so a stranger is looked at again for appendWaitMs first.
   * @throws KeyTransparencyError (own) naming the unknown devices
   */
  async monitor(address: string, listed: () => Promise<ReadonlySet<string>>): Promise<void> {
    const deadline = Date.now() + this.appendWaitMs;
    for (;;) {
      const { entries } = await this.history(address);
      const devices = await listed();
      const strangers = [...activeKeys(entries)].filter(([id, key]) => key !== null && !devices.has(id));
      if (strangers.length === 0) return;
      if (Date.now() >= deadline) {
        throw new KeyTransparencyError(
          address,
          `the log holds a key of your account for device ${strangers.map(([id]) => id).join(', ')}, which is not one of your devices`,
          true,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 5 * RETRY_MS));
    }
  }

  /**
   * Every entry of `user` (a username of this domain or user@domain) in log order, each proved.
   * @throws KeyTransparencyError when a proof or the head fails its check
   */
  async history(user: string, waitMs = 0): Promise<{ head: SignedTreeHead; entries: KeyLogEntry[] }> {
    const res = await this.session.call(Kt.lookupUser, { username: user, waitMs });
    if (!res.head) throw new KeyTransparencyError(user, 'the log answered without a tree head');
    const head = res.head;
    await this.accept(head, user);
    const size = Number(head.treeSize);
    const entries: KeyLogEntry[] = [];
    for (const { entry, proof } of res.entries) {
      if (!entry) throw new KeyTransparencyError(user, 'the log answered with an empty entry');
      const owner = user.includes('@') ? entry.address : entry.address.slice(0, entry.address.indexOf('@'));
      if (owner !== user) {
        throw new KeyTransparencyError(user, `the log answered with entry ${entry.index} of ${entry.address}`);
      }
      if (!verifyInclusion(Number(entry.index), size, leafOf(entry), proof, head.rootHash)) {
        throw new KeyTransparencyError(
          user,
          `the proof of log entry ${entry.index} (device ${entry.deviceId}) does not verify against the signed tree head of size ${size}`,
        );
      }
      entries.push(keyLogEntry(entry));
    }
    return { head, entries };
  }

  /**
   * Fetches the whole log, recomputes its root and compares it with the newest signed head (which must
   * also pass the checks every head passes). Never throws for a log that does not check out: the
   * problems are in the answer.
   */
  async audit(): Promise<KeyLogAudit> {
    const head = await this.session.call(Kt.getTreeHead, {});
    const size = Number(head.treeSize);
    const result: KeyLogAudit = {
      ok: false,
      size,
      root: hex(head.rootHash),
      timestampMs: Number(head.timestampMs),
      problems: [],
    };
    try {
      await this.accept(head, 'the log');
    } catch (err) {
      result.problems.push(err instanceof KeyTransparencyError ? err.problem : String(err));
    }
    const tree = new MerkleTree();
    const added = new Set<string>();
    while (tree.size < size) {
      const page = await this.session.call(Kt.getEntries, { start: BigInt(tree.size), count: 0 });
      if (page.entries.length === 0) {
        result.problems.push(`the log stopped handing out entries at ${tree.size} of ${size}`);
        break;
      }
      for (const entry of page.entries) {
        if (tree.size === size) break;
        if (Number(entry.index) !== tree.size) {
          result.problems.push(`entry ${entry.index} came where entry ${tree.size} belongs`);
        }
        const device = `${entry.address}/${entry.deviceId}/${hex(entry.identityKey)}`;
        if (entry.op === OP_ADD) added.add(device);
        else if (entry.op === OP_REVOKE && !added.has(device)) {
          result.problems.push(`entry ${entry.index} revokes a key of ${entry.address} that was never added`);
        } else if (entry.op !== OP_REVOKE) result.problems.push(`entry ${entry.index} has unknown op ${entry.op}`);
        tree.appendLeafHash(leafOf(entry));
      }
    }
    if (tree.size === size && hex(tree.root()) !== result.root) {
      result.problems.push(`the ${size} entries hash to ${hex(tree.root())}, not to the signed root ${result.root}`);
    }
    result.ok = result.problems.length === 0;
    return result;
  }

  /**
   * Checks a head against the pinned log key and the kept head (consistency, either way round), then
   * keeps it if it is newer. The first head ever seen pins the log key.
   */
  private accept(head: SignedTreeHead, user: string): Promise<void> {
    return this.heads.run(async () => {
      const kept = (await this.store.read()).keyTransparency;
      const pinned = kept ? unb64(kept.logKey) : head.logPublicKey;
      if (!verifyTreeHead(head, pinned)) {
        throw new KeyTransparencyError(
          user,
          kept && b64(head.logPublicKey) !== kept.logKey
            ? 'the log signs its tree head with another key than the one this device pinned'
            : 'the signature of the log’s tree head does not verify',
        );
      }
      const size = Number(head.treeSize);
      if (kept && !(await this.consistent(kept.head, head))) {
        throw new KeyTransparencyError(
          user,
          `the log’s tree head of size ${size} is not consistent with the head of size ${kept.head.treeSize} this device saw before: the server may be showing a forked log`,
        );
      }
      if (kept && kept.head.treeSize >= size) return;
      const record: KeyTransparencyRecord = {
        logKey: b64(head.logPublicKey),
        head: {
          treeSize: size,
          rootHash: b64(head.rootHash),
          timestampMs: Number(head.timestampMs),
          signature: b64(head.signature),
        },
      };
      await this.store.update((doc) => {
        // Another process of this data dir may have kept a newer one meanwhile (checked against the same log).
        if ((doc.keyTransparency?.head.treeSize ?? -1) < size) doc.keyTransparency = record;
      });
    });
  }

  /** True when the smaller of the two trees is a prefix of the larger, by a proof from the log. */
  private async consistent(kept: KeyTransparencyRecord['head'], head: SignedTreeHead): Promise<boolean> {
    const keptRoot = unb64(kept.rootHash);
    const size = Number(head.treeSize);
    if (kept.treeSize === size) return hex(keptRoot) === hex(head.rootHash);
    const [from, to] = kept.treeSize < size ? [kept, { treeSize: size }] : [{ treeSize: size }, kept];
    if (from.treeSize === 0) return true;
    let proof;
    try {
      proof = await this.session.call(Kt.getConsistencyProof, {
        fromSize: BigInt(from.treeSize),
        toSize: BigInt(to.treeSize),
      });
    } catch (err) {
      // A log that will not prove a head it signed (or one before it) is as good as one that proves the opposite.
      if (isRpcFailure(err) && err.code === GrpcCode.OUT_OF_RANGE) return false;
      throw err;
    }
    const [root1, root2] = kept.treeSize < size ? [keptRoot, head.rootHash] : [head.rootHash, keptRoot];
    return verifyConsistency(from.treeSize, to.treeSize, root1, root2, proof.hashes);
  }
}

function leafOf(entry: LogEntry): Uint8Array {
  return leafHash(
    encodeLogEntry({
      op: entry.op,
      address: entry.address,
      deviceId: entry.deviceId,
      identityKey: entry.identityKey,
      timestampMs: entry.timestampMs,
    }),
  );
}

function keyLogEntry(entry: LogEntry): KeyLogEntry {
  return {
    index: Number(entry.index),
    op: entry.op === OP_REVOKE ? 'revoke' : 'add',
    address: entry.address,
    deviceId: entry.deviceId,
    key: hex(entry.identityKey),
    timestampMs: Number(entry.timestampMs),
  };
}

/** Device id → its key (hex) after the last entry about it; null when that entry revoked it. */
function activeKeys(entries: readonly KeyLogEntry[]): Map<string, string | null> {
  const keys = new Map<string, string | null>();
  for (const e of entries) keys.set(e.deviceId, e.op === 'add' ? e.key : null);
  return keys;
}
