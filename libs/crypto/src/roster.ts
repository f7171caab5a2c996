// Who is in a group, read from the ratchet tree: leaf i of the tree is node 2i.
import type { RatchetTree } from 'ts-mls';
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
