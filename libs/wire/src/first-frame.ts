import { FRAME_HEADER_BYTES, FrameTooLargeError } from './framing.js';

/**
 * The one frame that opens (or answers) a file stream, and the bytes that came after it in the same
 * reads: those are the file's first bytes, which QUIC may well deliver in the frame's own chunk.
 */
export interface FirstFrame {
  frame: Uint8Array;
  /** Bytes read past the frame, in order (often empty). */
  rest: Uint8Array;
}

/** The stream finished (FIN) before a whole first frame arrived. */
export class TruncatedFrameError extends Error {
  override readonly name = 'TruncatedFrameError';
  constructor(readonly receivedBytes: number) {
    super(
      receivedBytes === 0
        ? 'the stream ended before its first frame'
        : `the stream ended inside its first frame (${receivedBytes} bytes received)`,
    );
  }
}

/**
 * Reads exactly one length-prefixed frame from the start of a stream and stops: the file bytes
 * behind it stay with the caller (`rest`, then the reader). A length over `maxFrameBytes` throws
 * FrameTooLargeError from the header alone, before the frame is buffered; a FIN before the end of
 * the frame throws TruncatedFrameError; a failing read throws its error.
 *
 * @example
 * const reader = stream.readable.getReader();
 * const { frame, rest } = await readFirstFrame(reader, 1024 * 1024);
 * const open = ClientFrame.decode(frame); // then `rest`, then reader.read() … are the file's bytes
 */
export async function readFirstFrame(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  maxFrameBytes: number,
): Promise<FirstFrame> {
  const parser = new FirstFrameParser(maxFrameBytes);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new TruncatedFrameError(parser.receivedBytes);
    const found = parser.push(value);
    if (found) return found;
  }
}

/**
 * The state of `readFirstFrame`, fed chunk by chunk (apart so it can be tested without a stream).
 * Holds at most the frame itself plus one chunk.
 */
export class FirstFrameParser {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private frameLength: number | undefined;

  constructor(private readonly maxFrameBytes: number) {}

  /** Bytes taken so far. */
  get receivedBytes(): number {
    return this.buffered;
  }

  /** Takes the next chunk; answers the frame once it is whole. Throws FrameTooLargeError. */
  push(chunk: Uint8Array): FirstFrame | undefined {
    if (chunk.byteLength === 0) return undefined;
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    if (this.frameLength === undefined) {
      if (this.buffered < FRAME_HEADER_BYTES) return undefined;
      const header = this.bytes(0, FRAME_HEADER_BYTES);
      const length = new DataView(header.buffer, header.byteOffset, FRAME_HEADER_BYTES).getUint32(0);
      if (length > this.maxFrameBytes) throw new FrameTooLargeError(length, this.maxFrameBytes);
      this.frameLength = length;
    }
    const end = FRAME_HEADER_BYTES + this.frameLength;
    if (this.buffered < end) return undefined;
    return { frame: this.bytes(FRAME_HEADER_BYTES, end), rest: this.bytes(end, this.buffered) };
  }

  /** Bytes [from, to) of what was pushed; a view when they lie in one chunk, else a copy. */
  private bytes(from: number, to: number): Uint8Array {
    let offset = 0;
    for (const chunk of this.chunks) {
      if (from >= offset && to <= offset + chunk.byteLength) return chunk.subarray(from - offset, to - offset);
      offset += chunk.byteLength;
    }
    const out = new Uint8Array(to - from);
    offset = 0;
    for (const chunk of this.chunks) {
      const start = Math.max(from, offset);
      const stop = Math.min(to, offset + chunk.byteLength);
      if (start < stop) out.set(chunk.subarray(start - offset, stop - offset), start - from);
      offset += chunk.byteLength;
    }
    return out;
  }
}
