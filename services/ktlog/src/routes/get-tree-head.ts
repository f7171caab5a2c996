import type { GetTreeHeadRequest, SignedTreeHead } from '@qpq/proto';
import type { UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { servedHead } from '../ranges.js';

/** The newest signed tree head: never smaller than one served before, since heads are only added. */
export function getTreeHead(ctx: AppContext): UnaryHandler<GetTreeHeadRequest, SignedTreeHead> {
  return async () => servedHead(ctx);
}
