// Who is in a group, read from the ratchet tree: leaf i of the tree is node 2i.
import type { RatchetTree } from 'ts-mls';
import { copyBytes } from './bytes.js';
import { credentialIdentity } from './client-config.js';

/** The device identity at a leaf, or undefined for a blank leaf or a credential that names no device. */
export function leafIdentity(tree: RatchetTree, leafIndex: number): string | undefined {
  const node = tree[2 * leafIndex];
  return node?.nodeType === 'leaf' ? credentialIdentity(node.leaf.credential) : undefined;
}

/** Device identities of all members, in leaf order. */
export function memberIdentities(tree: RatchetTree): string[] {
  const members: string[] = [];
  for (let leaf = 0; 2 * leaf < tree.length; leaf++) {
    const identity = leafIdentity(tree, leaf);
    if (identity !== undefined) members.push(identity);
  }
  return members;
}

/** Every leaf naming `identity`: normally one, but another client could have added a device twice. */
export function leavesOf(tree: RatchetTree, identity: string): number[] {
  const leaves: number[] = [];
  for (let leaf = 0; 2 * leaf < tree.length; leaf++) if (leafIdentity(tree, leaf) === identity) leaves.push(leaf);
  return leaves;
}

/** A member as its leaf names it: device identity and the Ed25519 key that signs for that leaf. */
export interface GroupMember {
  identity: string;
  signaturePublicKey: Uint8Array;
}

/**
 * Members with their signature keys, in leaf order. The identity is only what the member who added the
 * leaf wrote; callers check the key against a directory (auth today, key transparency later).
 */
export function memberKeys(tree: RatchetTree): GroupMember[] {
  const members: GroupMember[] = [];
  for (let leaf = 0; 2 * leaf < tree.length; leaf++) {
    const node = tree[2 * leaf];
    if (node?.nodeType !== 'leaf') continue;
    const identity = credentialIdentity(node.leaf.credential);
    if (identity !== undefined) members.push({ identity, signaturePublicKey: copyBytes(node.leaf.signaturePublicKey) });
  }
  return members;
}
