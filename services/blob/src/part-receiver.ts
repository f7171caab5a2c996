import type { AppContext } from './context.js';
import { UploadOverrunError } from './errors.js';
import { dropUpload, storePart, type Upload } from './uploads.js';

/**
 * Takes an upload's chunks as they arrive and stores them in parts of QPQ_BLOB_PART_BYTES, so the
 * service holds at most about one part of a file at a time. Bytes past the declared size drop the
 * whole upload at once.
 */
export class PartReceiver {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private partBuffer: Buffer | undefined;
  /** Bytes of the upload stored (committed). */
  stored: number;
  /** Set once the upload was deleted for running past its size: nothing is flushed after that. */
  dropped = false;

  constructor(
    private readonly ctx: AppContext,
    private readonly upload: Upload,
  ) {
    this.stored = upload.stored;
  }

  /** Bytes received so far, stored or waiting to be. */
  get received(): number {
    return this.stored + this.pendingBytes;
  }

  /** Adds a chunk; stores every full part it completes. Throws UploadOverrunError (upload deleted). */
  async receive(chunk: Uint8Array): Promise<void> {
    this.ctx.metrics.receivedBytes.add(chunk.byteLength);
    if (chunk.byteLength === 0) return;
    if (this.received + chunk.byteLength > this.upload.size) {
      this.pending = [];
      this.pendingBytes = 0;
      this.dropped = true;
      await dropUpload(this.ctx, this.upload);
      this.ctx.metrics.refused('overrun');
      throw new UploadOverrunError(this.upload.size);
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.byteLength;
    while (this.pendingBytes >= this.ctx.cfg.partBytes) await this.storeNext(this.ctx.cfg.partBytes);
  }

  /** Stores whatever is waiting (a call that ends early keeps every byte it delivered). */
  async flush(): Promise<void> {
    if (!this.dropped && this.pendingBytes > 0) await this.storeNext(this.pendingBytes);
  }

  private async storeNext(bytes: number): Promise<void> {
    const part = this.take(bytes);
    await storePart(this.ctx, this.upload, this.stored, part);
    this.stored += part.byteLength;
  }

  /**
   * The first `bytes` waiting bytes as one part, copied into the one buffer this receiver reuses (the
   * part before it is stored by then): a fresh buffer per part would be garbage that outlives the
   * database write and piles up until a full GC, growing memory with the file.
   */
  private take(bytes: number): Uint8Array {
    this.partBuffer ??= Buffer.allocUnsafe(this.ctx.cfg.partBytes);
    let filled = 0;
    while (filled < bytes) {
      const piece = this.pending[0]!;
      const used = Math.min(piece.byteLength, bytes - filled);
      this.partBuffer.set(piece.subarray(0, used), filled);
      filled += used;
      if (used === piece.byteLength) this.pending.shift();
      else this.pending[0] = piece.subarray(used);
    }
    this.pendingBytes -= bytes;
    return this.partBuffer.subarray(0, bytes);
  }
}
