import type { QUICStream } from '@matrixai/quic';
import { trace } from '@opentelemetry/api';
import { ClientFrame, type FileStream } from '@qpq/proto';
import { requestScope, type Logger } from '@qpq/runtime';
import { CloseCode, FrameTooLargeError, readFirstFrame } from '@qpq/wire';
import { randomUUID } from 'node:crypto';
import type { Attachment } from './attachment.js';
import type { AppContext } from './context.js';
import { toClientStatus } from './errors.js';
import { FileStreamIo, outcomeOf, StalledError } from './file-stream-io.js';
import { downloadFile } from './handlers/download-file.js';
import { uploadFile } from './handlers/upload-file.js';

const edgeTracer = trace.getTracer('qpq-gateway');

/** What a connection lends each of its file streams. */
export interface FileStreamHost {
  ctx: AppContext;
  logger: Logger;
  attachment: Attachment;
  /** Why a new file stream is refused right now (the gateway drains, too many are open), if it is. */
  refusal(): Error | undefined;
  /** Closes the whole connection after a protocol violation. */
  kick(code: CloseCode, reason: string): void;
}

/** The opening frame of a file stream and the file bytes that came behind it. */
type Opening = { open: NonNullable<FileStream['kind']>; rest: Uint8Array } | { outcome: string };

/**
 * Serves one file stream: any QUIC stream of an attached connection other than its session stream.
 * Reads the opening frame (ClientFrame.file, bounded by QPQ_MAX_FRAME_BYTES), refuses it when the
 * connection may not open one now or has no session, and otherwise streams the file between the
 * client and the blob service (handlers/upload-file.ts, handlers/download-file.ts). Resolves when
 * the stream is done with, however it ended, and counts it by kind and outcome
 * (qpq_gateway_file_streams_total).
 */
export async function serveFileStream(stream: QUICStream, host: FileStreamHost): Promise<void> {
  const { ctx } = host;
  const io = new FileStreamIo(stream, ctx.cfg.maxFrameBytes, ctx.cfg.idleTimeoutMs);
  let kind = 'unknown';
  let outcome = 'internal';
  try {
    const opening = await readOpening(io, host);
    if ('outcome' in opening) {
      outcome = opening.outcome;
      return;
    }
    kind = opening.open.$case;
    const requestId = randomUUID();
    outcome = await requestScope.run({ requestId }, () =>
      edgeTracer.startActiveSpan('qpq.edge.file', { attributes: { 'qpq.file.kind': kind } }, (span) =>
        serve(io, host, opening.open, opening.rest, requestId).finally(() => span.end()),
      ),
    );
  } catch (err) {
    host.logger.error({ err, kind }, 'file stream failed');
    io.reset();
  } finally {
    ctx.metrics.fileStreamsEnded.add(1, { kind, outcome });
    host.logger.debug({ kind, outcome }, 'file stream ended');
  }
}

async function readOpening(io: FileStreamIo, host: FileStreamHost): Promise<Opening> {
  let first;
  try {
    first = await io.guard(readFirstFrame(io.reader, host.ctx.cfg.maxFrameBytes), 'the client');
  } catch (err) {
    if (err instanceof FrameTooLargeError) {
      host.kick(CloseCode.FRAME_TOO_LARGE, err.message);
      return { outcome: 'malformed' };
    }
    // Ended before its first frame, reset, or silent: the client is not using it.
    io.reset();
    return { outcome: err instanceof StalledError ? 'stalled' : 'client_reset' };
  }
  let open: FileStream['kind'];
  try {
    const frame = ClientFrame.decode(first.frame);
    if (frame.kind?.$case === 'file') open = frame.kind.value.kind;
  } catch {
    open = undefined;
  }
  if (!open) {
    host.kick(CloseCode.MALFORMED_FRAME, 'undecodable opening frame of a file stream');
    return { outcome: 'malformed' };
  }
  return { open, rest: first.rest };
}

async function serve(
  io: FileStreamIo,
  host: FileStreamHost,
  open: NonNullable<FileStream['kind']>,
  rest: Uint8Array,
  requestId: string,
): Promise<string> {
  const { ctx } = host;
  let identity;
  try {
    const refusal = host.refusal();
    if (refusal) throw refusal;
    identity = await host.attachment.identity(requestId);
  } catch (err) {
    // Answered at once, and none of the file read: the client stops sending when it sees this.
    const { code, message } = toClientStatus(err, 'auth');
    const told = await io.answer(code, message);
    io.stopReading();
    await io.finish();
    return told ? outcomeOf(code) : 'client_reset';
  }
  if (open.$case === 'upload') return uploadFile(ctx, io, open.value, rest, identity, requestId);
  return downloadFile(ctx, io, open.value, identity, requestId);
}
