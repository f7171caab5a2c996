import { status as GrpcStatus } from '@grpc/grpc-js';
import { BlobInfo, BlobServiceService, type DownloadRequest } from '@qpq/proto';
import { QpqError, type Identity } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { toClientStatus } from '../errors.js';
import { outcomeOf, StalledError, type FileStreamIo } from '../file-stream-io.js';

/**
 * A download file stream: BlobService.Download's `info` goes back as the Response frame, then every
 * chunk's bytes raw, each written only once QUIC took the one before (the blob service is held back
 * by gRPC flow control meanwhile), then FIN. A failure before the first byte is answered with its
 * status; after it, the stream is reset (the client's byte count and decryption notice a truncated
 * file anyway). Answers the outcome for the metrics.
 */
export async function downloadFile(
  ctx: AppContext,
  io: FileStreamIo,
  request: DownloadRequest,
  identity: Identity,
  requestId: string,
): Promise<string> {
  // The client finishes its side after the opening frame; reading up to its FIN lets the stream end.
  void io.drainClient();
  const call = ctx.backends.blob.serverStream(BlobServiceService.download, request, {
    identity,
    requestId,
    timeoutMs: ctx.cfg.fileStreamTimeoutMs,
  });
  const messages = call[Symbol.asyncIterator]();
  let answered = false;
  let finished = false;
  try {
    const first = await io.guard(messages.next(), 'the file service');
    if (first.done || first.value.kind?.$case !== 'info') {
      throw new QpqError(GrpcStatus.INTERNAL, 'the file service sent no blob info');
    }
    answered = true;
    if (!(await io.answer(GrpcStatus.OK, '', BlobInfo.encode(first.value.kind.value).finish()))) {
      return 'client_reset';
    }
    for (;;) {
      const next = await io.guard(messages.next(), 'the file service');
      if (next.done) {
        finished = true;
        break;
      }
      if (next.value.kind?.$case !== 'chunk') throw new QpqError(GrpcStatus.INTERNAL, 'the file service sent no chunk');
      const chunk = next.value.kind.value;
      try {
        await io.guard(io.writer.write(chunk), 'the client');
      } catch (err) {
        io.reset();
        return err instanceof StalledError ? 'stalled' : 'client_reset';
      }
      ctx.metrics.fileBytes.add(chunk.byteLength, { direction: 'out' });
    }
    await io.finish();
    return 'ok';
  } catch (err) {
    if (answered) {
      // Bytes went out already: only a reset can tell the client the file is not whole.
      io.reset();
      return err instanceof StalledError ? 'stalled' : 'reset';
    }
    const { code, message } =
      err instanceof StalledError
        ? { code: GrpcStatus.DEADLINE_EXCEEDED, message: 'the file service did not answer in time; try again' }
        : toClientStatus(err, 'blob');
    const told = await io.answer(code, message);
    await io.finish();
    return told ? outcomeOf(code) : 'client_reset';
  } finally {
    // The client went away or something stalled: the blob service must stop sending.
    if (!finished) call.cancel();
    io.stopReading();
  }
}
