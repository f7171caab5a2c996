import { consistencyProofNodes } from '@qpq/merkle';
import type { ConsistencyProof, GetConsistencyProofRequest } from '@qpq/proto';
import type { UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { OutOfRangeError } from '../errors.js';
import { requireSize, servedHead } from '../ranges.js';
import { readNodeHashes } from '../tree-store.js';

/** The RFC 9162 consistency proof from the tree of `from_size` entries to that of `to_size`. */
export function getConsistencyProof(ctx: AppContext): UnaryHandler<GetConsistencyProofRequest, ConsistencyProof> {
  return async (request) => {
    const head = await servedHead(ctx);
    const to = requireSize(request.toSize, head, 'to_size');
    if (request.fromSize === 0n)
      throw new OutOfRangeError('from_size must be at least 1: the empty tree proves nothing');
    if (request.fromSize > request.toSize) {
      throw new OutOfRangeError(`from_size ${request.fromSize} is past to_size ${request.toSize}`);
    }
    const hashes = await readNodeHashes(ctx.db, consistencyProofNodes(Number(request.fromSize), to));
    return { fromSize: request.fromSize, toSize: request.toSize, hashes };
  };
}
