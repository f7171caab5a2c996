// Files: encrypted here with a fresh key (libs/crypto file-encryption.ts), uploaded as a blob on a QUIC
// stream of its own, and named to the conversation by a FileRef inside an MLS message (messaging.ts).
// An upload that is cut off continues where the blob service stopped storing: the pending upload (its
// id and key) is kept in the store, and the same key makes the same ciphertext, so the bytes already
// stored still fit — also when the same file is sent again by a later process.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, rm, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  ciphertextOffsetToChunk,
  decryptFileChunks,
  encryptFileChunks,
  fileCiphertextSize,
  newFileKey,
} from '@qpq/crypto';
import { BlobServiceService } from '@qpq/proto';
import { lookup as mediaTypeOf } from 'mime-types';
import { v4 as uuidv4 } from 'uuid';
import { b64, type ClientCore, unb64 } from './core.js';
import { GrpcCode, isRpcFailure, QpqClientError, ServerUnreachableError, UsageError } from './errors.js';
import type { FileRecord, PendingUpload } from './store-document.js';

/** The plaintext limit of a file (the server's QPQ_BLOB_MAX_FILE_BYTES default): 50 MiB. */
export const MAX_FILE_BYTES = 52_428_800;
/** Attempts of one upload or download when the connection drops under it. */
const TRANSFER_ATTEMPTS = 5;
const RETRY_DELAY_MS = 500;
/** A file transfer may take long; a stall this long (no answer at all) fails it. */
const TRANSFER_TIMEOUT_MS = 10 * 60_000;

/** Called as bytes go out or come in: `done` of `total`, in bytes of the file (plaintext). */
export type ProgressListener = (done: number, total: number) => void;

/** A file over the limit, refused before a byte is sent. */
export class FileTooLargeError extends QpqClientError {
  override readonly name = 'FileTooLargeError';
  constructor(name: string, size: number, limit: number) {
    super(`${name} is too large to send: ${bytes(size)} bytes; the limit is ${bytes(limit)} bytes (${mib(limit)} MiB)`);
  }
}

export class FileTransfers {
  constructor(
    private readonly core: ClientCore,
    private readonly maxFileBytes = MAX_FILE_BYTES,
  ) {}

  /** Checks that `path` is a readable file within the limit; answers its absolute path and stats. */
  async check(path: string): Promise<{ path: string; size: number; mtimeMs: number; name: string }> {
    const full = resolve(path);
    let st;
    try {
      st = await stat(full);
    } catch {
      throw new UsageError(`no such file: ${path}`);
    }
    if (!st.isFile()) throw new UsageError(`not a file: ${path}`);
    if (st.size > this.maxFileBytes) throw new FileTooLargeError(basename(full), st.size, this.maxFileBytes);
    return { path: full, size: st.size, mtimeMs: st.mtimeMs, name: basename(full) };
  }

  /**
   * Encrypts and uploads the file, continuing a pending upload of the same unchanged file. Answers the
   * reference a message carries. `expiresAtMs` 0: the deployment's retention.
   */
  async upload(path: string, opts: { expiresAtMs: number; onProgress?: ProgressListener }): Promise<FileRecord> {
    const file = await this.check(path);
    const pending = await this.pendingFor(file);
    const key = unb64(pending.key);
    const total = fileCiphertextSize(file.size);
    const progress = plaintextProgress(file.size, total, opts.onProgress);
    const begin = {
      uploadId: pending.uploadId,
      size: BigInt(total),
      sha256: new Uint8Array(Buffer.from(pending.sha256, 'hex')),
      expiresAtMs: BigInt(opts.expiresAtMs),
    };
    let blobId: string | undefined;
    for (let attempt = 1; blobId === undefined; attempt++) {
      try {
        const stored = await this.storedOf(pending.uploadId);
        if (stored.complete) {
          blobId = stored.blobId;
          break;
        }
        const offset = stored.stored;
        const from = ciphertextOffsetToChunk(file.size, offset);
        const source = createReadStream(file.path, { start: from.plaintextOffset });
        const chunks = encryptFileChunks(key, source, file.size, { fromCiphertextOffset: offset });
        progress(offset);
        const res = await this.core.session.withConnection((conn) =>
          conn.uploadFile({ ...begin, offset: BigInt(offset) }, chunks, {
            timeoutMs: TRANSFER_TIMEOUT_MS,
            onSent: (sent) => progress(offset + sent),
          }),
        );
        if (res.complete) blobId = res.blobId;
        else if (attempt >= TRANSFER_ATTEMPTS) throw new QpqClientError(`the upload of ${file.name} did not complete`);
      } catch (err) {
        if (!(err instanceof ServerUnreachableError) || attempt >= TRANSFER_ATTEMPTS) {
          if (isRefusal(err)) await this.forget(pending.uploadId);
          throw err;
        }
        await new Promise((r) => setTimeout(r, RETRY_DELAY_MS * attempt));
      }
    }
    progress(total);
    await this.forget(pending.uploadId);
    return {
      blobId,
      key: pending.key,
      size: file.size,
      name: file.name,
      mediaType: mediaTypeOf(file.name) || 'application/octet-stream',
    };
  }

  /**
   * Downloads and decrypts a file to `outPath` (written as `outPath.part`, renamed when every chunk
   * checked out; nothing is left behind on failure).
   */
  async download(file: FileRecord, outPath: string, onProgress?: ProgressListener): Promise<string> {
    const target = resolve(outPath);
    const partial = `${target}.part`;
    const total = fileCiphertextSize(file.size);
    const progress = plaintextProgress(file.size, total, onProgress);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.core.session.withConnection(async (conn) => {
          const { info, bytes: body } = await conn.downloadFile(
            { blobId: file.blobId, offset: 0n },
            { timeoutMs: TRANSFER_TIMEOUT_MS },
          );
          if (Number(info.size) !== total) {
            throw new QpqClientError(
              `${file.name}: the server holds ${info.size} bytes for it, not the ${total} its message names`,
            );
          }
          let received = 0;
          const counted = async function* () {
            for await (const piece of body) {
              received += piece.byteLength;
              progress(received);
              yield piece;
            }
          };
          const plaintext = decryptFileChunks(unb64(file.key), counted(), file.size);
          // 'wx': never write into a file that is already there (another download's part, a link).
          await pipeline(Readable.from(plaintext), createWriteStream(partial, { flags: 'wx', mode: 0o600 }));
        });
        // A link fails when the target appeared meanwhile, where a rename would replace it.
        await link(partial, target).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${outPath} already exists`);
          throw err;
        });
        await rm(partial, { force: true });
        return target;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new UsageError(`${partial} already exists: another download of it may be running`);
        }
        await rm(partial, { force: true });
        if (!(err instanceof ServerUnreachableError) || attempt >= TRANSFER_ATTEMPTS) {
          if (isRpcFailure(err) && err.code === GrpcCode.NOT_FOUND) {
            throw new QpqClientError(`${file.name} is no longer on the server (expired or deleted)`, err.code);
          }
          throw err;
        }
        await new Promise((r) => setTimeout(r, RETRY_DELAY_MS * attempt));
      }
    }
  }

  /** The pending upload of this unchanged file, or a new one (key made, ciphertext hashed, kept). */
  private async pendingFor(file: { path: string; size: number; mtimeMs: number }): Promise<PendingUpload> {
    const doc = await this.core.store.read();
    const same = Object.values(doc.uploads ?? {}).find(
      (u) => u.path === file.path && u.size === file.size && u.mtimeMs === file.mtimeMs,
    );
    if (same) return same;
    const key = newFileKey();
    const hash = createHash('sha256');
    await pipeline(
      Readable.from(encryptFileChunks(key, createReadStream(file.path), file.size)),
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          done();
        },
      }),
    );
    const pending: PendingUpload = {
      uploadId: uuidv4(),
      path: file.path,
      size: file.size,
      mtimeMs: file.mtimeMs,
      key: b64(key),
      sha256: hash.digest('hex'),
      createdAtMs: Date.now(),
    };
    await this.core.store.update((d) => {
      (d.uploads ??= {})[pending.uploadId] = pending;
    });
    return pending;
  }

  private async storedOf(uploadId: string): Promise<{ stored: number; complete: boolean; blobId: string }> {
    try {
      const res = await this.core.session.call(BlobServiceService.getUpload, { uploadId });
      return { stored: Number(res.stored), complete: res.complete, blobId: res.blobId };
    } catch (err) {
      if (isRpcFailure(err) && err.code === GrpcCode.NOT_FOUND) return { stored: 0, complete: false, blobId: '' };
      throw err;
    }
  }

  private async forget(uploadId: string): Promise<void> {
    await this.core.store.update((doc) => {
      if (doc.uploads) delete doc.uploads[uploadId];
    });
  }
}

/** The server refused the upload for good (too large, a hash that does not match): start afresh next time. */
function isRefusal(err: unknown): boolean {
  return (
    isRpcFailure(err) &&
    (
      [
        GrpcCode.RESOURCE_EXHAUSTED,
        GrpcCode.DATA_LOSS,
        GrpcCode.FAILED_PRECONDITION,
        GrpcCode.INVALID_ARGUMENT,
      ] as number[]
    ).includes(err.code)
  );
}

const bytes = (n: number): string => n.toLocaleString('en-US');
const mib = (n: number): string => String(Math.round((n / 1024 / 1024) * 100) / 100);

/** Reports transfer progress in bytes of the file, however many ciphertext bytes have moved. */
function plaintextProgress(size: number, total: number, listener?: ProgressListener): (moved: number) => void {
  return (moved) => listener?.(Math.min(size, Math.round((moved / total) * size)), size);
}
