// Request numbers (uint64 on the wire, bigint here) checked against the newest head before any proof
// is computed from them.
import type { SignedTreeHead } from '@qpq/proto';
import type { AppContext } from './context.js';
import { OutOfRangeError } from './errors.js';
import { newestHead } from './tree-heads.js';

/** The served head; a started service always has one (ensureHead signs the empty tree's). */
export async function servedHead(ctx: AppContext): Promise<SignedTreeHead> {
  const head = await newestHead(ctx);
  if (!head) throw new Error('ktlog has no tree head: ensureHead did not run');
  // A replica that does not append (another one took the batches) still reports the log's growth.
  ctx.metrics.observeHead(head);
  return head;
}

/** A tree size no larger than the newest head's, as a number. */
export function requireSize(size: bigint, head: SignedTreeHead, what: string): number {
  if (size > head.treeSize) {
    throw new OutOfRangeError(`${what} ${size} is beyond the newest tree head (size ${head.treeSize})`);
  }
  return Number(size);
}
