import { status as GrpcStatus } from '@grpc/grpc-js';
import type { QUICStream } from '@matrixai/quic';
import { ServerFrame } from '@qpq/proto';
import { encodeFrame } from '@qpq/wire';

/** A file stream's peer (the client or the blob service) made no progress within the stall timeout. */
export class StalledError extends Error {
  override readonly name = 'StalledError';
  constructor(what: string, ms: number) {
    super(`no progress from ${what} for ${ms / 1000} s`);
  }
}

/**
 * The gateway's side of one file stream: the QUIC stream's reader and writer, the one Response
 * frame it answers with, and the ways to end it. Nothing here throws for a client that went away:
 * the caller learns it from the answer's result or from the read or write it awaited.
 */
export class FileStreamIo {
  readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private answered = false;

  constructor(
    readonly stream: QUICStream,
    private readonly maxFrameBytes: number,
    /** Longest any one step (a read, a write, a message from the blob service) may take. */
    readonly stallMs: number,
  ) {
    this.reader = stream.readable.getReader();
    this.writer = stream.writable.getWriter();
    // Failures surface through the reads and writes awaited; these would be unhandled copies.
    this.reader.closed.catch(() => undefined);
    this.writer.closed.catch(() => undefined);
  }

  /**
   * Awaits `p`; rejects with StalledError when it takes longer than the stall timeout. `p` is left
   * to settle on its own (it fails once the stream is reset or the call cancelled).
   */
  guard<T>(p: Promise<T>, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        p.catch(() => undefined);
        reject(new StalledError(what, this.stallMs));
      }, this.stallMs);
      p.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  /**
   * Writes the stream's one Response frame (id 0): `payload` with OK, or an error status. Resolves
   * false when the client is no longer there to read it (or it was answered already).
   */
  async answer(code: GrpcStatus, message: string, payload: Uint8Array = new Uint8Array()): Promise<boolean> {
    if (this.answered) return false;
    this.answered = true;
    const frame = ServerFrame.encode({
      kind: {
        $case: 'response',
        value: { id: 0, status: { code, message }, payload: code === GrpcStatus.OK ? payload : new Uint8Array() },
      },
    }).finish();
    try {
      await this.guard(this.writer.write(encodeFrame(frame, this.maxFrameBytes)), 'the client');
      return true;
    } catch {
      return false;
    }
  }

  /** Finishes our side (FIN) after what was written; resets the stream if the client does not take it in time. */
  async finish(): Promise<void> {
    try {
      await this.guard(this.writer.close(), 'the client');
    } catch {
      this.reset();
    }
  }

  /** Stops reading the client's bytes (QUIC STOP_SENDING): they are not wanted any more. */
  stopReading(): void {
    this.reader.cancel().catch(() => undefined);
  }

  /** Resets the stream both ways: the client sees its reads and writes fail. Never throws. */
  reset(): void {
    try {
      this.stream.cancel();
    } catch {
      // The connection is already gone, and the stream with it.
    }
  }

  /** Reads and drops whatever the client still sends, up to its FIN (a download's client sends nothing). */
  async drainClient(): Promise<void> {
    try {
      for (;;) if ((await this.reader.read()).done) return;
    } catch {
      // Reset or stopped: nothing more to read either way.
    }
  }
}

/** The outcome label of a status code: `ok`, `resource_exhausted`, … */
export function outcomeOf(code: GrpcStatus): string {
  return (GrpcStatus[code] ?? 'unknown').toLowerCase();
}
