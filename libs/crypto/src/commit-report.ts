// What an incoming Commit changed in the roster, told to the member who applies it.
import type { Proposal, RatchetTree } from 'ts-mls';
import { bytesEqual } from './bytes.js';
import { credentialIdentity } from './client-config.js';
import { MessageRejectedError } from './errors.js';
import { leafIdentity } from './roster.js';

/** Device identities added and removed by one Commit, in proposal order. */
export interface RosterChange {
  added: string[];
  removed: string[];
}

/** Reads the Add and Remove proposals of a Commit against the tree of the epoch it was made in. */
export function rosterChange(
  before: RatchetTree,
  proposals: Proposal[],
): RosterChange & { removedLeaves: Set<number> } {
  const added: string[] = [];
  const removed: string[] = [];
  const removedLeaves = new Set<number>();
  for (const proposal of proposals) {
    if (proposal.proposalType === 'add') {
      // ts-mls has already run every credential through the device-only authentication service.
      const identity = credentialIdentity(proposal.add.keyPackage.leafNode.credential);
      if (identity === undefined) throw new MessageRejectedError('commit adds a member that names no device');
      added.push(identity);
    } else if (proposal.proposalType === 'remove') {
      const identity = leafIdentity(before, proposal.remove.removed);
      if (identity === undefined) throw new MessageRejectedError('commit removes a leaf that names no device');
      removed.push(identity);
      removedLeaves.add(proposal.remove.removed);
    }
  }
  return { added, removed, removedLeaves };
}

/**
 * Refuses a Commit that changes the roster beyond its Add and Remove proposals. MLS lets a committer's
 * UpdatePath carry a new credential and signature key for its own leaf; in qpq a leaf is one device
 * for its whole life, so a member renaming itself (say, into another person's device) or swapping its
 * key without anyone being told is an attack, not a change to report.
 */
export function requireOnlyReportedChanges(
  before: RatchetTree,
  after: RatchetTree,
  change: RosterChange & { removedLeaves: Set<number> },
): void {
  const kept = new Set<number>();
  for (let leaf = 0; 2 * leaf < before.length; leaf++) {
    const old = before[2 * leaf];
    if (old?.nodeType !== 'leaf' || change.removedLeaves.has(leaf)) continue;
    kept.add(leaf);
    const now = after[2 * leaf];
    if (
      now?.nodeType !== 'leaf' ||
      credentialIdentity(now.leaf.credential) !== credentialIdentity(old.leaf.credential) ||
      !bytesEqual(now.leaf.signaturePublicKey, old.leaf.signaturePublicKey)
    ) {
      const who = credentialIdentity(old.leaf.credential) ?? `leaf ${leaf}`;
      throw new MessageRejectedError(`commit changes the identity or signature key of ${who}`);
    }
  }
  const newcomers: string[] = [];
  for (let leaf = 0; 2 * leaf < after.length; leaf++) {
    if (kept.has(leaf) || after[2 * leaf]?.nodeType !== 'leaf') continue;
    newcomers.push(leafIdentity(after, leaf) ?? '');
  }
  if (newcomers.sort().join('\n') !== [...change.added].sort().join('\n')) {
    throw new MessageRejectedError('commit changes members it does not name');
  }
}
