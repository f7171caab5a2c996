import type { QUICStream } from '@matrixai/quic';
import { BlobInfo, ClientFrame, ServerFrame, UploadResponse, type DownloadRequest, type UploadBegin } from '@qpq/proto';
import { readFirstFrame, TruncatedFrameError } from './first-frame.js';
import { encodeFrame, FrameTooLargeError } from './framing.js';
import { RpcError, StatusCode } from './rpc-error.js';

/** Default longest wait without progress on a file stream. */
export const DEFAULT_FILE_STALL_TIMEOUT_MS = 30_000;
/** After the answer, how long the server gets to finish its side before the stream is reset. */
const FINISH_GRACE_MS = 2_000;

export interface UploadOptions {
  /**
   * Longest the upload may go without progress: a chunk QUIC did not take, or the answer not come
   * after the last byte (the blob service checks the hash then). DEADLINE_EXCEEDED after it.
   * Default 30 s. Also how long to wait for a free file stream.
   */
  timeoutMs?: number;
  /** Called as bytes go out, with the bytes sent so far on this stream (from `begin.offset`). */
  onSent?(bytesSent: number): void;
}

export interface DownloadOptions {
  /** Longest the download may go without a byte arriving (DEADLINE_EXCEEDED after it). Default 30 s. */
  timeoutMs?: number;
}

/** A download under way: the blob's info, then its bytes from the requested offset. */
export interface Download {
  info: BlobInfo;
  /**
   * The bytes from the requested offset to the end, as they arrive. Iterate it to the end or break
   * out of it: the stream stays open until then. Throws RpcError: DATA_LOSS when the server sent
   * more or fewer bytes than the info says, UNAVAILABLE when the stream or connection was cut off,
   * DEADLINE_EXCEEDED after `timeoutMs` without a byte.
   */
  bytes: AsyncIterable<Uint8Array>;
}

/** A write that QUIC refused: the stream or the connection went away. */
class TransportFailure extends Error {
  constructor(readonly error: unknown) {
    super('file stream write failed', { cause: error });
  }
}

/**
 * The client's side of one file stream (a QUIC stream of its own beside the session stream).
 * Failing it (the connection closed, no progress in time) cancels the QUIC stream, so every read
 * or write pending on it ends at once and reports that failure.
 */
export class FileTransfer {
  readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private failure: RpcError | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    readonly stream: QUICStream,
    /** 'upload' or 'download', for messages. */
    readonly kind: 'upload' | 'download',
    private readonly stallMs: number,
    private readonly maxFrameBytes: number,
  ) {
    this.reader = stream.readable.getReader();
    this.writer = stream.writable.getWriter();
    // Failures surface through the reads and writes awaited; these would only be unhandled copies.
    this.reader.closed.catch(() => undefined);
    this.writer.closed.catch(() => undefined);
  }

  /** Why the transfer failed, once it has. */
  get failed(): RpcError | undefined {
    return this.failure;
  }

  /** Ends the transfer with `err`: pending reads and writes reject and report it. */
  fail(err: RpcError): void {
    if (this.failure) return;
    this.failure = err;
    this.cancel(err);
  }

  /** Resets the QUIC stream both ways (nothing more to send or read). Never throws. */
  cancel(reason?: unknown): void {
    try {
      this.stream.cancel(reason);
    } catch {
      // The connection is already gone, and the stream with it.
    }
  }

  /** Awaits `p`, failing the transfer with DEADLINE_EXCEEDED if it makes no progress in time. */
  async guard<T>(p: Promise<T>): Promise<T> {
    const timer = setTimeout(
      () =>
        this.fail(
          new RpcError(StatusCode.DEADLINE_EXCEEDED, `the ${this.kind} made no progress for ${this.stallMs / 1000} s`),
        ),
      this.stallMs,
    );
    try {
      return await p;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The error to report for a QUIC read or write that threw `err`. */
  transportError(err: unknown): RpcError {
    return this.failure ?? new RpcError(StatusCode.UNAVAILABLE, `the ${this.kind} was cut off`, { cause: err });
  }

  /** Writes the frame that opens the stream. */
  async open(file: NonNullable<ClientFrame['kind']> & { $case: 'file' }): Promise<void> {
    const frame = encodeFrame(ClientFrame.encode({ kind: file }).finish(), this.maxFrameBytes);
    try {
      await this.guard(this.writer.write(frame));
    } catch (err) {
      throw this.transportError(err);
    }
  }

  /**
   * The server's one Response frame (id 0): its payload when OK, else RpcError with its status.
   * Also answers the bytes that came behind the frame in the same read.
   */
  async answer(): Promise<{ payload: Uint8Array; rest: Uint8Array }> {
    let first;
    try {
      first = await readFirstFrame(this.reader, this.maxFrameBytes);
    } catch (err) {
      if (this.failure) throw this.failure;
      if (err instanceof TruncatedFrameError) {
        throw new RpcError(StatusCode.UNAVAILABLE, `the server ended the ${this.kind} without an answer`, {
          cause: err,
        });
      }
      if (err instanceof FrameTooLargeError) {
        throw new RpcError(StatusCode.INTERNAL, `the server's answer to the ${this.kind} is too large`, { cause: err });
      }
      throw this.transportError(err);
    }
    let frame: ServerFrame;
    try {
      frame = ServerFrame.decode(first.frame);
    } catch (err) {
      throw new RpcError(StatusCode.INTERNAL, `undecodable answer to the ${this.kind}`, { cause: err });
    }
    if (frame.kind?.$case !== 'response') {
      throw new RpcError(StatusCode.INTERNAL, `unexpected answer to the ${this.kind}`);
    }
    const { status, payload } = frame.kind.value;
    const code = status?.code ?? StatusCode.OK;
    if (code !== StatusCode.OK)
      throw new RpcError(code, status?.message || `the ${this.kind} failed with status ${code}`);
    return { payload, rest: first.rest };
  }

  /**
   * Lets the stream end: reads what the server still sends up to its FIN (nothing, normally), then
   * resets whatever is left after a short grace; at once when not `graceful` (a download the caller
   * stopped reading). Resolves when the stream is finished with.
   */
  close(graceful = true): Promise<void> {
    this.closing ??= (async () => {
      if (graceful && !this.failure) {
        const drained = (async () => {
          for (;;) if ((await this.reader.read()).done) return true;
        })().catch(() => false);
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), FINISH_GRACE_MS);
        });
        const finished = await Promise.race([drained, late]);
        clearTimeout(timer);
        if (finished) return;
      }
      this.cancel();
    })();
    return this.closing;
  }
}

/**
 * Upload on a fresh file stream: the opening frame, then the bytes as QUIC takes them, then FIN;
 * meanwhile the answer is awaited, and an answer that comes early (a refusal, or "already stored")
 * stops the sending at once.
 */
export async function uploadOverStream(
  t: FileTransfer,
  begin: UploadBegin,
  bytes: AsyncIterable<Uint8Array>,
  onSent: ((bytesSent: number) => void) | undefined,
): Promise<UploadResponse> {
  let answered = false;
  let sending = true;
  const answer = t.answer().finally(() => {
    answered = true;
    // Whatever the answer, nothing more of the file is wanted: stop a write waiting for room.
    if (sending) t.cancel();
  });
  answer.catch(() => undefined);

  const send = (async () => {
    await t.open({ $case: 'file', value: { kind: { $case: 'upload', value: begin } } });
    let sent = 0;
    for await (const chunk of bytes) {
      if (answered) return;
      if (chunk.byteLength === 0) continue;
      try {
        await t.guard(t.writer.write(chunk));
      } catch (err) {
        throw new TransportFailure(err);
      }
      sent += chunk.byteLength;
      try {
        onSent?.(sent);
      } catch {
        // A progress display that fails must not fail the upload.
      }
    }
    if (answered) return;
    try {
      await t.guard(t.writer.close());
    } catch (err) {
      throw new TransportFailure(err);
    }
  })().finally(() => {
    sending = false;
  });

  try {
    await send;
  } catch (err) {
    if (!(err instanceof TransportFailure) && !(err instanceof RpcError)) {
      // The caller's bytes failed (a file that could not be read): the server must not keep waiting.
      t.cancel();
      throw err;
    }
    // A write QUIC refused: the answer (a refusal that came first, say) tells why, when there is one.
  }
  const { payload } = await t.guard(answer);
  return UploadResponse.decode(payload);
}

/**
 * Download on a fresh file stream: the opening frame and FIN, then the answer (the blob's info or a
 * refusal), then the bytes. `done` is called once when the bytes' iteration ends, with whether
 * every byte was read.
 */
export async function downloadOverStream(
  t: FileTransfer,
  request: DownloadRequest,
  done: (complete: boolean) => void,
): Promise<Download> {
  await t.open({ $case: 'file', value: { kind: { $case: 'download', value: request } } });
  try {
    await t.guard(t.writer.close());
  } catch (err) {
    throw t.transportError(err);
  }
  const { payload, rest } = await t.guard(t.answer());
  let info: BlobInfo;
  try {
    info = BlobInfo.decode(payload);
  } catch (err) {
    throw new RpcError(StatusCode.INTERNAL, 'undecodable BlobInfo in the answer to the download', { cause: err });
  }
  const expected = info.size > request.offset ? info.size - request.offset : 0n;
  return { info, bytes: downloadedBytes(t, rest, expected, done) };
}

async function* downloadedBytes(
  t: FileTransfer,
  rest: Uint8Array,
  expected: bigint,
  done: (complete: boolean) => void,
): AsyncGenerator<Uint8Array> {
  let received = 0n;
  let complete = false;
  const take = (chunk: Uint8Array) => {
    received += BigInt(chunk.byteLength);
    if (received > expected) {
      throw new RpcError(StatusCode.DATA_LOSS, `the server sent more than the ${expected} bytes it announced`);
    }
    return chunk;
  };
  try {
    if (rest.byteLength > 0) yield take(rest);
    for (;;) {
      let chunk: Uint8Array | undefined;
      try {
        const read = await t.guard(t.reader.read());
        chunk = read.done ? undefined : read.value;
      } catch (err) {
        throw t.transportError(err);
      }
      if (!chunk) break;
      if (chunk.byteLength > 0) yield take(chunk);
    }
    if (received !== expected) {
      throw new RpcError(StatusCode.DATA_LOSS, `the download ended after ${received} of ${expected} bytes`);
    }
    complete = true;
  } finally {
    done(complete);
  }
}
