// Commits this member makes: membership changes (Add and Remove in one Commit) and key updates.
// Like the rest of the package these are pure functions over state bytes. A committer keeps its old
// state until the delivery service has accepted the Commit (it orders exactly one Commit per epoch),
// and only then switches to the returned state; if another member's Commit won the epoch, it drops
// the returned state, applies the winner with processMessage, and commits again from there.
import { type ClientState, createCommit, encodeMlsMessage, type Proposal, zeroOutUint8Array } from 'ts-mls';
import { copyBytes } from './bytes.js';
import { CryptoError, CryptoFormatError, CryptoUsageError } from './errors.js';
import { decodeState, encodeState, type GroupStateBytes } from './group-state.js';
import { readKeyPackage } from './key-packages.js';
import { rethrowAs } from './mls-errors.js';
import { leafIdentity, leavesOf, memberIdentities } from './roster.js';
import { cipherSuite } from './suite.js';

/** What one Commit changes. Identities are device identities, "user@domain/deviceId". */
export interface GroupChanges {
  /** KeyPackages of the devices to add, as uploaded (MLSMessage bytes). */
  add?: Uint8Array[];
  /** Identities of the members to remove. */
  remove?: string[];
}

export interface CommitResult {
  /** The state once the Commit is accepted; keep the old one until then. */
  state: GroupStateBytes;
  /** The Commit (MLSMessage bytes), for every current member, the removed ones included. */
  commit: Uint8Array;
  /** The epoch the Commit was made in: the delivery service accepts one Commit per epoch. */
  epoch: bigint;
}

/**
 * One Commit that removes and adds devices. Removed members get the Commit (and learn they are out);
 * added ones get the Welcome, which carries the ratchet tree. A Commit that removes anyone carries an
 * UpdatePath, so the removed devices learn nothing of the next epoch's secrets; a Commit that only adds
 * carries none (ts-mls 1.6.4 includes a path only when MLS requires one): follow with updateKeys when
 * this device's keys should change too. A device can be removed and added back (a new KeyPackage) in
 * the same Commit.
 *
 * Throws CryptoUsageError for an empty change, removing this device, removing a non-member, naming a
 * member twice, or adding a device that is (and stays) in the group; CryptoFormatError for a KeyPackage
 * that fails inspectKeyPackage's checks or that MLS refuses.
 * @example const { state, commit, welcome } = await commitChanges(groupState, { add: [kp], remove: ['bob@example.org/b1'] })
 */
export async function commitChanges(
  state: GroupStateBytes,
  changes: GroupChanges,
): Promise<CommitResult & { welcome?: Uint8Array }> {
  const add = changes.add ?? [];
  const remove = changes.remove ?? [];
  if (add.length === 0 && remove.length === 0) {
    throw new CryptoUsageError('nothing to change (updateKeys refreshes keys without changing members)');
  }
  const cs = await cipherSuite();
  const current = decodeState(state);
  const proposals = removeProposals(current, remove);

  // Who is in the group once the removals are done: an added device must not be among them.
  const removing = new Set(remove);
  const staying = new Set(memberIdentities(current.ratchetTree).filter((identity) => !removing.has(identity)));
  for (const [i, bytes] of add.entries()) {
    const { keyPackage, identity } = await readKeyPackage(copyBytes(bytes), cs).catch((err: unknown) => {
      throw new CryptoFormatError(`KeyPackage ${i}: ${(err as Error).message}`, { cause: err });
    });
    if (staying.has(identity)) throw new CryptoUsageError(`${identity} is already in the group`);
    staying.add(identity);
    proposals.push({ proposalType: 'add', add: { keyPackage } });
  }

  const result = await createCommit(
    { state: current, cipherSuite: cs },
    { extraProposals: proposals, ratchetTreeExtension: true },
  ).catch(rethrowAs(CryptoFormatError));
  try {
    if (add.length > 0 && result.welcome === undefined) {
      throw new CryptoError('commit adding members produced no Welcome');
    }
    const commit = encodeMlsMessage(result.commit);
    const epoch = current.groupContext.epoch;
    const newState = encodeState(result.newState);
    if (result.welcome === undefined) return { state: newState, commit, epoch };
    const welcome = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: result.welcome });
    return { state: newState, commit, welcome, epoch };
  } finally {
    result.consumed.forEach(zeroOutUint8Array);
  }
}

/**
 * Commits the addition of devices (commitChanges with additions only). Kept for callers that always
 * add: the Welcome is always there.
 */
export async function addMembers(
  state: GroupStateBytes,
  keyPackages: Uint8Array[],
): Promise<{ state: GroupStateBytes; commit: Uint8Array; welcome: Uint8Array }> {
  if (keyPackages.length === 0) throw new CryptoUsageError('no KeyPackages to add');
  const { state: newState, commit, welcome } = await commitChanges(state, { add: keyPackages });
  if (welcome === undefined) throw new CryptoError('commit adding members produced no Welcome');
  return { state: newState, commit, welcome };
}

/**
 * A Commit with no proposals and a fresh UpdatePath: new keys for this device's leaf and every node up
 * to the root, so that an attacker who copied this device's group secrets loses access from the next
 * epoch on (post-compromise security, "rotate keys"). Members and identities stay as they are.
 */
export async function updateKeys(state: GroupStateBytes): Promise<CommitResult> {
  const cs = await cipherSuite();
  const current = decodeState(state);
  const result = await createCommit({ state: current, cipherSuite: cs }, {}).catch(rethrowAs(CryptoUsageError));
  try {
    return {
      state: encodeState(result.newState),
      commit: encodeMlsMessage(result.commit),
      epoch: current.groupContext.epoch,
    };
  } finally {
    result.consumed.forEach(zeroOutUint8Array);
  }
}

/** Remove proposals for every leaf of each named member, after refusing what cannot be removed. */
function removeProposals(state: ClientState, identities: string[]): Proposal[] {
  const ownLeaf = state.privatePath.leafIndex;
  const ownIdentity = leafIdentity(state.ratchetTree, ownLeaf);
  const proposals: Proposal[] = [];
  const seen = new Set<string>();
  for (const identity of identities) {
    if (seen.has(identity)) throw new CryptoUsageError(`${identity} is named twice`);
    seen.add(identity);
    // MLS forbids a committer to remove itself: leaving is asking another member to remove you.
    if (identity === ownIdentity) throw new CryptoUsageError('a member cannot remove itself');
    const leaves = leavesOf(state.ratchetTree, identity);
    if (leaves.length === 0) throw new CryptoUsageError(`${identity} is not in the group`);
    for (const leaf of leaves) proposals.push({ proposalType: 'remove', remove: { removed: leaf } });
  }
  return proposals;
}
