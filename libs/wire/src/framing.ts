/**
 * Length-prefixed frames on a byte stream: a 4-byte big-endian length, then that many bytes.
 * Shared by the gateway and the client so both sides agree on the limit and the errors.
 */

export const FRAME_HEADER_BYTES = 4;
/** Default largest frame either side accepts (QPQ_MAX_FRAME_BYTES on the gateway). */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

export class FrameTooLargeError extends Error {
  override readonly name = 'FrameTooLargeError';
  constructor(
    readonly length: number,
    readonly limit: number,
  ) {
    super(`frame of ${length} bytes exceeds the limit of ${limit} bytes`);
  }
}

/** Prefixes `payload` with its length. */
export function encodeFrame(payload: Uint8Array, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Uint8Array {
  if (payload.byteLength > maxFrameBytes) throw new FrameTooLargeError(payload.byteLength, maxFrameBytes);
  // Unzeroed (every byte is written below) and, for small frames, carved from Node's buffer pool.
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  writeLength(out, 0, payload.byteLength);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** Writes `length` as the 4-byte big-endian prefix at `at`. */
export function writeLength(out: Uint8Array, at: number, length: number): void {
  out[at] = length >>> 24;
  out[at + 1] = (length >>> 16) & 0xff;
  out[at + 2] = (length >>> 8) & 0xff;
  out[at + 3] = length & 0xff;
}

/** Frames from this size up are copied out of a chunk more than twice their size (see startFrame). */
const COPY_OUT_BYTES = 4096;

/**
 * Splits a byte stream into frames. Feed chunks as they arrive; complete frames come out in order.
 * A length over the limit throws FrameTooLargeError before any of the frame is buffered.
 *
 * Per frame it costs one view: a frame that lies within one chunk comes out as a view of it (no
 * copy), and a frame split across chunks is copied, once, into a buffer of its final size as its
 * parts arrive. Views share the chunk's memory: chunks must not be reused by the caller.
 */
export class FrameDecoder {
  /** The first bytes of a length prefix split across chunks. */
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  /** The frame being filled from successive chunks, and how much of it has arrived. */
  private body: Buffer | undefined;
  private bodyFilled = 0;

  constructor(private readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    const end = chunk.byteLength;
    let at = 0;
    if (this.body) {
      at = this.fillBody(chunk, 0, frames);
      if (this.body) return frames;
    }
    if (this.headerFilled > 0) {
      const n = Math.min(FRAME_HEADER_BYTES - this.headerFilled, end - at);
      this.header.set(chunk.subarray(at, at + n), this.headerFilled);
      this.headerFilled += n;
      at += n;
      if (this.headerFilled < FRAME_HEADER_BYTES) return frames;
      this.headerFilled = 0;
      at = this.startFrame(chunk, at, this.checked(readLength(this.header, 0)), frames);
    }
    while (at < end) {
      if (end - at < FRAME_HEADER_BYTES) {
        this.header.set(chunk.subarray(at, end));
        this.headerFilled = end - at;
        break;
      }
      const length = this.checked(readLength(chunk, at));
      at = this.startFrame(chunk, at + FRAME_HEADER_BYTES, length, frames);
    }
    return frames;
  }

  /** Bytes received that do not yet form a whole frame. */
  get pendingBytes(): number {
    return this.headerFilled + (this.body ? FRAME_HEADER_BYTES + this.bodyFilled : 0);
  }

  private checked(length: number): number {
    if (length > this.maxFrameBytes) throw new FrameTooLargeError(length, this.maxFrameBytes);
    return length;
  }

  /** A frame of `length` starts at `at`: a view if it is all here, else the start of a copy. */
  private startFrame(chunk: Uint8Array, at: number, length: number, frames: Uint8Array[]): number {
    if (chunk.byteLength - at >= length) {
      // A view pins the whole chunk (up to the QUIC read size, 256 KiB) for as long as the frame is
      // held, e.g. a file piece on its way to the blob service: a large frame in a much larger chunk
      // is copied out instead, so what is held stays the size of what is in flight.
      frames.push(
        length >= COPY_OUT_BYTES && length * 2 < chunk.byteLength
          ? Buffer.from(chunk.subarray(at, at + length))
          : Buffer.from(chunk.buffer, chunk.byteOffset + at, length),
      );
      return at + length;
    }
    // Not zeroed: every byte is copied in before the frame comes out.
    this.body = Buffer.allocUnsafe(length);
    this.bodyFilled = 0;
    return this.fillBody(chunk, at, frames);
  }

  /** Copies what `chunk` holds of the frame being filled; a complete frame goes out to `frames`. */
  private fillBody(chunk: Uint8Array, at: number, frames: Uint8Array[]): number {
    const body = this.body!;
    const n = Math.min(body.byteLength - this.bodyFilled, chunk.byteLength - at);
    body.set(n === chunk.byteLength ? chunk : chunk.subarray(at, at + n), this.bodyFilled);
    this.bodyFilled += n;
    if (this.bodyFilled === body.byteLength) {
      frames.push(body);
      this.body = undefined;
    }
    return at + n;
  }
}

/** The 4-byte big-endian length prefix at `at`. */
function readLength(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}
