import type { DownloadRequest, DownloadResponse } from '@qpq/proto';
import { NotFoundError, requireIdentity, type ServerStreamHandler } from '@qpq/runtime';
import { liveBlob } from '../blobs.js';
import type { AppContext } from '../context.js';
import { BlobDataLossError, OutOfRangeError } from '../errors.js';
import { checkBlobId } from '../ids.js';
import { BlobBytesMissingError } from '../storage/blob-storage.js';

/**
 * Download (server streaming): the blob's info, then its bytes from `offset` in chunks of
 * QPQ_BLOB_CHUNK_BYTES, each sent only when the stream has room (a slow reader holds the read back,
 * never the whole blob in memory). Any logged-in caller may read a blob: its id is the hash of
 * ciphertext under a fresh key, known only to those it was sent to.
 */
export function download(ctx: AppContext): ServerStreamHandler<DownloadRequest, DownloadResponse> {
  return async (request, out, call) => {
    requireIdentity(call);
    const blobId = checkBlobId(request.blobId);
    const blob = await liveBlob(ctx, blobId);
    if (!blob) throw new NotFoundError(`no blob ${blobId} (never stored, deleted or expired)`);
    if (request.offset > BigInt(blob.size)) {
      throw new OutOfRangeError(`offset ${request.offset} is past the blob's ${blob.size} bytes`);
    }
    await out.send({
      kind: { $case: 'info', value: { size: BigInt(blob.size), expiresAtMs: BigInt(blob.expiresAtMs) } },
    });
    const { chunkBytes } = ctx.cfg;
    try {
      for await (const piece of ctx.storage.readBlob(blobId, Number(request.offset), blob.size)) {
        for (let at = 0; at < piece.byteLength; at += chunkBytes) {
          const chunk = piece.subarray(at, at + chunkBytes);
          await out.send({ kind: { $case: 'chunk', value: chunk } });
          ctx.metrics.sentBytes.add(chunk.byteLength);
        }
      }
    } catch (err) {
      if (!(err instanceof BlobBytesMissingError)) throw err;
      // Deleted while it was read, or lost: the caller is told which.
      if (await liveBlob(ctx, blobId)) throw new BlobDataLossError(blobId);
      throw new NotFoundError(`blob ${blobId} was deleted while it was downloaded`);
    }
  };
}
