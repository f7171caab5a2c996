import type { UploadRequest, UploadResponse } from '@qpq/proto';
import { InvalidArgumentError, requireIdentity, type ClientStreamHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { PartReceiver } from '../part-receiver.js';
import { beginUpload, completeUpload } from '../uploads.js';

/**
 * Upload (client streaming): `begin`, then chunks from begin.offset. The bytes are stored part by part
 * as they arrive; when the caller finishes its side with every declared byte stored, the hash is
 * checked and the blob made. A call that ends early keeps what it delivered and answers how much is
 * stored; a refusal (too large, overrun, hash mismatch) keeps nothing and is answered at once.
 */
export function upload(ctx: AppContext): ClientStreamHandler<UploadRequest, UploadResponse> {
  return async (requests, call) => {
    const { accountId } = requireIdentity(call);
    const messages = requests[Symbol.asyncIterator]();
    const first = await messages.next();
    if (first.done || first.value.kind?.$case !== 'begin') {
      throw new InvalidArgumentError('an upload starts with a begin message');
    }
    const begun = await beginUpload(ctx, accountId, first.value.kind.value);
    // A blob already stored under that hash (or this upload, completed before): the caller stops sending.
    if (begun.kind === 'complete') return begun.response;
    const { upload } = begun;
    const receiver = new PartReceiver(ctx, upload);
    try {
      for (;;) {
        const next = await messages.next();
        if (next.done) break;
        if (next.value.kind?.$case !== 'chunk') throw new InvalidArgumentError('only chunks follow begin');
        await receiver.receive(next.value.kind.value);
      }
      await receiver.flush();
    } catch (err) {
      // Cut off, stalled or refused mid-way: what arrived intact is kept for a resume (unless dropped).
      await receiver.flush().catch((flushErr: unknown) => {
        call.logger.warn({ err: flushErr, upload: upload.uploadId }, 'bytes received before the call ended not stored');
      });
      throw err;
    }
    if (receiver.stored < upload.size) {
      return { blobId: '', complete: false, stored: BigInt(receiver.stored), expiresAtMs: BigInt(upload.expiresAtMs) };
    }
    return completeUpload(ctx, upload);
  };
}
