import type { GetUploadRequest, GetUploadResponse } from '@qpq/proto';
import { NotFoundError, requireIdentity, type UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { checkUploadId } from '../ids.js';

/** Where one of the caller's uploads stands: bytes stored, declared size, and the blob once complete. */
export function getUpload(ctx: AppContext): UnaryHandler<GetUploadRequest, GetUploadResponse> {
  return async (request, call) => {
    const { accountId } = requireIdentity(call);
    const uploadId = checkUploadId(request.uploadId);
    const row = await ctx.db
      .selectFrom('uploads')
      .select(['stored', 'size', 'blob_id'])
      .where('account_id', '=', accountId)
      .where('upload_id', '=', uploadId)
      .executeTakeFirst();
    if (!row) throw new NotFoundError(`no upload ${uploadId} of yours (never begun, or collected)`);
    return { stored: row.stored, size: row.size, complete: row.blob_id !== null, blobId: row.blob_id ?? '' };
  };
}
