import type { QUICStream } from '@matrixai/quic';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameDecoder, FrameTooLargeError } from './framing.js';

/** Why a FrameStream stopped reading. */
export type FrameStreamEnd =
  /** The peer finished its side (FIN) after whole frames. */
  | { kind: 'eof' }
  /** The peer finished its side in the middle of a frame. */
  | { kind: 'truncated'; pendingBytes: number }
  /** A length prefix over the limit: the peer is broken or hostile. */
  | { kind: 'frame-too-large'; error: FrameTooLargeError }
  /** The stream or its connection went away under us, or onFrame threw. */
  | { kind: 'error'; error: unknown };

export interface FrameStreamOptions {
  /** Largest frame accepted in either direction (default 1 MiB). */
  maxFrameBytes?: number;
  /**
   * Bytes queued for sending but not yet taken by QUIC (flow control) past which `send` refuses
   * with WriteBacklogError: a peer that stops reading must not make us buffer without bound.
   */
  maxQueuedBytes?: number;
  /** Each whole frame, in order. Called synchronously from the read loop. */
  onFrame(frame: Uint8Array): void;
  /** Called once when reading stops. */
  onEnd?(end: FrameStreamEnd): void;
}

/** `send` refused: too many bytes are waiting for the peer to read. */
export class WriteBacklogError extends Error {
  override readonly name = 'WriteBacklogError';
  constructor(readonly queuedBytes: number) {
    super(`${queuedBytes} bytes are waiting for the peer to read`);
  }
}

/** `send` after the writing side was closed or failed. */
export class StreamClosedError extends Error {
  override readonly name = 'StreamClosedError';
  constructor(options?: { cause?: unknown }) {
    super('the stream is closed', options);
  }
}

const DEFAULT_MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/**
 * One QUIC stream carrying length-prefixed frames both ways. Reading: a loop that reassembles frames
 * from QUIC's arbitrary chunks and hands each to `onFrame`. Writing: ONE shared writer and one
 * `write()` per frame, so responses and unprompted pushes never interleave.
 */
export class FrameStream {
  /** Resolves when reading stopped, with why. */
  readonly ended: Promise<FrameStreamEnd>;
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder: FrameDecoder;
  private readonly maxFrameBytes: number;
  private readonly maxQueuedBytes: number;
  private queued = 0;
  private writeClosed = false;
  private writeError: unknown;
  /** A write is in progress (QUIC has not taken it yet): frames sent meanwhile join `batch`. */
  private writing = false;
  /** Encoded frames waiting for the write in progress, written as one chunk after it. */
  private batch: Uint8Array[] = [];
  private batchBytes = 0;
  /** Settles when `batch` has been written; every frame in it shares it. */
  private batchWritten: Promise<void> | undefined;
  private settleBatch: { resolve(): void; reject(err: unknown): void } | undefined;

  constructor(
    readonly stream: QUICStream,
    private readonly opts: FrameStreamOptions,
  ) {
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxQueuedBytes = opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.decoder = new FrameDecoder(this.maxFrameBytes);
    this.writer = stream.writable.getWriter();
    this.reader = stream.readable.getReader();
    // A rejected write also rejects `closed`; nobody else awaits it.
    this.writer.closed.catch(() => undefined);
    this.ended = this.readLoop().then((end) => {
      opts.onEnd?.(end);
      return end;
    });
  }

  /** Bytes handed to `send` that QUIC has not taken yet. */
  get queuedBytes(): number {
    return this.queued;
  }

  /**
   * Sends one frame. Rejects with FrameTooLargeError (nothing sent), WriteBacklogError (nothing sent;
   * the peer is not reading), or StreamClosedError.
   *
   * Frames sent while an earlier write is still being taken by QUIC are written together after it,
   * as one chunk: each write to a QUIC stream costs far more than copying a few small frames.
   */
  send(payload: Uint8Array): Promise<void> {
    if (this.writeClosed) return Promise.reject(new StreamClosedError({ cause: this.writeError }));
    let frame: Uint8Array;
    try {
      frame = encodeFrame(payload, this.maxFrameBytes);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.queued + frame.byteLength > this.maxQueuedBytes && this.queued > 0) {
      return Promise.reject(new WriteBacklogError(this.queued));
    }
    this.queued += frame.byteLength;
    if (!this.writing) return this.write(frame);
    this.batch.push(frame);
    this.batchBytes += frame.byteLength;
    this.batchWritten ??= new Promise<void>((resolve, reject) => (this.settleBatch = { resolve, reject }));
    return this.batchWritten;
  }

  /** Writes `bytes` (one frame or a batch); when QUIC has taken them, the batch gathered meanwhile. */
  private write(bytes: Uint8Array): Promise<void> {
    this.writing = true;
    return this.writer.write(bytes).then(
      () => {
        this.queued -= bytes.byteLength;
        this.writeBatch();
      },
      (err: unknown) => {
        this.queued -= bytes.byteLength;
        this.writeClosed = true;
        this.writeError ??= err;
        this.writeBatch();
        throw new StreamClosedError({ cause: err });
      },
    );
  }

  /** Starts writing the batch, if any; else no write is in progress any more. */
  private writeBatch(): void {
    const { batch, batchBytes, settleBatch } = this;
    if (batch.length === 0 || !settleBatch) {
      this.writing = false;
      return;
    }
    this.batch = [];
    this.batchBytes = 0;
    this.batchWritten = undefined;
    this.settleBatch = undefined;
    const bytes = batch.length === 1 ? batch[0]! : Buffer.concat(batch, batchBytes);
    this.write(bytes).then(settleBatch.resolve, settleBatch.reject);
  }

  /** Finishes our side (FIN) after the frames already queued. Never rejects. */
  async closeWrite(): Promise<void> {
    if (this.writeClosed) return;
    this.writeClosed = true;
    // Frames still waiting for the write in progress go first (the stream keeps writes in order).
    this.writeBatch();
    await this.writer.close().catch(() => undefined);
  }

  /** Stops reading (the read loop ends with kind 'error'). Never throws. */
  stopReading(reason?: unknown): void {
    this.reader.cancel(reason).catch(() => undefined);
  }

  private async readLoop(): Promise<FrameStreamEnd> {
    try {
      for (;;) {
        const { value, done } = await this.reader.read();
        if (done) {
          const pending = this.decoder.pendingBytes;
          return pending > 0 ? { kind: 'truncated', pendingBytes: pending } : { kind: 'eof' };
        }
        let frames: Uint8Array[];
        try {
          frames = this.decoder.push(value);
        } catch (err) {
          if (err instanceof FrameTooLargeError) return { kind: 'frame-too-large', error: err };
          throw err;
        }
        for (const frame of frames) this.opts.onFrame(frame);
      }
    } catch (error) {
      return { kind: 'error', error };
    } finally {
      this.reader.releaseLock();
    }
  }
}
