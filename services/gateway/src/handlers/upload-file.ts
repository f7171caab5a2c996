import { status as GrpcStatus } from '@grpc/grpc-js';
import { BlobServiceService, UploadResponse, type UploadBegin } from '@qpq/proto';
import type { Identity } from '@qpq/runtime';
import { ChunkCoalescer } from '../chunk-coalescer.js';
import type { AppContext } from '../context.js';
import { toClientStatus } from '../errors.js';
import { outcomeOf, StalledError, type FileStreamIo } from '../file-stream-io.js';

/** Size of the chunk messages sent to the blob service. */
export const UPLOAD_CHUNK_BYTES = 256 * 1024;

/** The client went away (reset its stream, or its connection closed) in the middle of the upload. */
class ClientGoneError extends Error {}

/**
 * An upload file stream: `begin`, then the client's bytes (`rest` first, then the stream) in chunks
 * to BlobService.Upload, reading from QUIC only as fast as gRPC takes them, so the gateway holds at
 * most a chunk or so of any file. The blob service's answer goes back as the stream's Response
 * frame. An answer that comes before the client's FIN (a refusal, or "already stored") stops the
 * reading at once; a client that resets its stream cancels the call (the blob service keeps what
 * it stored, so the client can resume). Answers the outcome for the metrics.
 */
export async function uploadFile(
  ctx: AppContext,
  io: FileStreamIo,
  begin: UploadBegin,
  rest: Uint8Array,
  identity: Identity,
  requestId: string,
): Promise<string> {
  const call = ctx.backends.blob.clientStream(BlobServiceService.upload, {
    identity,
    requestId,
    timeoutMs: ctx.cfg.fileStreamTimeoutMs,
  });
  let reading = true;
  const stopReading = () => {
    if (reading) io.stopReading();
  };
  void call.response.then(stopReading, stopReading);

  const countIn = (bytes: number) => ctx.metrics.fileBytes.add(bytes, { direction: 'in' });
  const chunks = new ChunkCoalescer(UPLOAD_CHUNK_BYTES);
  const sendChunk = (chunk: Uint8Array) =>
    io.guard(call.write({ kind: { $case: 'chunk', value: chunk } }), 'the file service');
  try {
    await io.guard(call.write({ kind: { $case: 'begin', value: begin } }), 'the file service');
    if (rest.byteLength > 0) {
      countIn(rest.byteLength);
      for (const chunk of chunks.push(rest)) await sendChunk(chunk);
    }
    while (!call.settled) {
      let read: { done: boolean; value?: Uint8Array };
      try {
        read = await io.guard(io.reader.read(), 'the client');
      } catch (err) {
        if (err instanceof StalledError || call.settled) throw err;
        throw new ClientGoneError('the client reset the upload', { cause: err });
      }
      if (read.done || !read.value) {
        reading = false;
        const last = chunks.flush();
        if (last) await sendChunk(last);
        call.end();
        break;
      }
      countIn(read.value.byteLength);
      for (const chunk of chunks.push(read.value)) {
        await sendChunk(chunk);
        if (call.settled) break;
      }
    }
  } catch (err) {
    reading = false;
    if (err instanceof ClientGoneError) {
      call.cancel();
      io.reset();
      return 'client_reset';
    }
    if (err instanceof StalledError) {
      call.cancel();
      await io.answer(GrpcStatus.DEADLINE_EXCEEDED, `upload stopped: ${err.message}`);
      io.stopReading();
      await io.finish();
      return 'stalled';
    }
    // Otherwise a write failed because the call did: its answer says why.
  }
  reading = false;

  let outcome: string;
  try {
    const answer = await io.guard(call.response, 'the file service');
    outcome = (await io.answer(GrpcStatus.OK, '', UploadResponse.encode(answer).finish())) ? 'ok' : 'client_reset';
  } catch (err) {
    call.cancel();
    const { code, message } =
      err instanceof StalledError
        ? { code: GrpcStatus.DEADLINE_EXCEEDED, message: 'the file service did not answer in time; try again' }
        : toClientStatus(err, 'blob');
    outcome = (await io.answer(code, message)) ? outcomeOf(code) : 'client_reset';
  }
  io.stopReading();
  await io.finish();
  return outcome;
}
