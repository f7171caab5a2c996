import { inclusionProofNodes } from '@qpq/merkle';
import type { GetInclusionProofRequest, InclusionProof } from '@qpq/proto';
import type { UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { OutOfRangeError } from '../errors.js';
import { requireSize, servedHead } from '../ranges.js';
import { readNodeHashes } from '../tree-store.js';

/** The RFC 9162 inclusion proof of entry `index` in the tree of `tree_size` entries. */
export function getInclusionProof(ctx: AppContext): UnaryHandler<GetInclusionProofRequest, InclusionProof> {
  return async (request) => {
    const head = await servedHead(ctx);
    const size = requireSize(request.treeSize, head, 'tree_size');
    if (request.index >= request.treeSize) {
      throw new OutOfRangeError(`index ${request.index} is not in a tree of size ${request.treeSize}`);
    }
    const hashes = await readNodeHashes(ctx.db, inclusionProofNodes(Number(request.index), size));
    return { index: request.index, treeSize: request.treeSize, hashes };
  };
}
