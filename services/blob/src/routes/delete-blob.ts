import type { DeleteBlobRequest, DeleteBlobResponse } from '@qpq/proto';
import { NotFoundError, requireIdentity, type UnaryHandler } from '@qpq/runtime';
import { lockBlob, removeBlob } from '../blobs.js';
import type { AppContext } from '../context.js';
import { checkBlobId } from '../ids.js';

/**
 * Ends the caller's claim on a blob. The blob (and its bytes) goes with the last claim; otherwise it
 * lives as long as the remaining claims say.
 */
export function deleteBlob(ctx: AppContext): UnaryHandler<DeleteBlobRequest, DeleteBlobResponse> {
  return async (request, call) => {
    const { accountId } = requireIdentity(call);
    const blobId = checkBlobId(request.blobId);
    await ctx.db.transaction().execute(async (tx) => {
      await lockBlob(tx, blobId);
      const claim = await tx
        .deleteFrom('claims')
        .where('blob_id', '=', blobId)
        .where('account_id', '=', accountId)
        .returning('blob_id')
        .executeTakeFirst();
      if (!claim) throw new NotFoundError(`you have no claim on blob ${blobId} (never uploaded, deleted or expired)`);
      // The caller's uploads that completed into it are done with too (GetUpload stops naming it).
      await tx.deleteFrom('uploads').where('account_id', '=', accountId).where('blob_id', '=', blobId).execute();
      const rest = await tx
        .selectFrom('claims')
        .select((eb) => eb.fn.max('expires_at_ms').as('latest'))
        .where('blob_id', '=', blobId)
        .executeTakeFirstOrThrow();
      if (rest.latest === null) await removeBlob(ctx, tx, blobId);
      else await tx.updateTable('blobs').set({ expires_at_ms: rest.latest }).where('id', '=', blobId).execute();
    });
    return {};
  };
}
