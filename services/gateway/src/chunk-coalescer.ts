/**
 * Turns the arbitrary pieces QUIC reads hand over (up to 256 KiB, often a few KiB) into chunks of
 * one size for the blob service, so a 50 MiB upload is ~200 gRPC messages rather than thousands.
 * Holds at most one chunk; a piece that already holds a whole chunk is passed on without a copy.
 */
export class ChunkCoalescer {
  private buffer: Uint8Array | undefined;
  private filled = 0;

  constructor(readonly chunkBytes: number) {}

  /** The whole chunks `data` completes, in order; what is left over waits for the next push. */
  push(data: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let at = 0;
    while (at < data.byteLength) {
      const left = data.byteLength - at;
      if (this.filled === 0 && left >= this.chunkBytes) {
        out.push(data.subarray(at, at + this.chunkBytes));
        at += this.chunkBytes;
        continue;
      }
      // A fresh buffer each time: the one handed out may still be queued in grpc-js.
      this.buffer ??= Buffer.allocUnsafe(this.chunkBytes);
      const n = Math.min(this.chunkBytes - this.filled, left);
      this.buffer.set(data.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
      if (this.filled === this.chunkBytes) {
        out.push(this.buffer);
        this.buffer = undefined;
        this.filled = 0;
      }
    }
    return out;
  }

  /** What is left (a last, shorter chunk), or undefined. */
  flush(): Uint8Array | undefined {
    if (this.filled === 0 || !this.buffer) return undefined;
    const last = this.buffer.subarray(0, this.filled);
    this.buffer = undefined;
    this.filled = 0;
    return last;
  }
}
