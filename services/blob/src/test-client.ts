// Shared by this service's tests (not exported from the package): calls the blob service over gRPC
// with the gateway's certificate and a caller's identity metadata, as the gateway does.
import { credentials, Metadata, type ClientWritableStream } from '@grpc/grpc-js';
import {
  BlobServiceClient,
  type BlobInfo,
  type DownloadResponse,
  type UploadBegin,
  type UploadRequest,
  type UploadResponse,
} from '@qpq/proto';
import { loadTlsFiles, writeIdentity, type Identity } from '@qpq/runtime';
import type { ServiceTestBed } from '@qpq/testnet';
import { createCipheriv, createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';

const CALL_TIMEOUT_MS = 120_000;
/** Bytes per Upload chunk message the tests send (the gateway chooses its own). */
export const SEND_CHUNK_BYTES = 256 * 1024;

export interface UploadOptions {
  /** Finishes the client's side (half-close) after this many bytes: a call that ends early. */
  endAfterBytes?: number;
  /** Cancels the call after this many bytes: a client cut off. The promise then rejects with CANCELLED. */
  cancelAfterBytes?: number;
  /** Sends this many bytes, then nothing more, without finishing: a client that stalls. */
  stallAfterBytes?: number;
}

export interface UploadResult {
  response: UploadResponse;
  /** Chunk bytes this call wrote (stopping early when the service answered first). */
  sentBytes: number;
}

/** An Upload's begin with defaults: a fresh upload id, offset 0, the deployment's retention. */
export function beginOf(
  bytesInfo: { size: number; sha256: Uint8Array },
  fields: Partial<UploadBegin> = {},
): UploadBegin {
  return {
    uploadId: randomUUID(),
    size: BigInt(bytesInfo.size),
    sha256: bytesInfo.sha256,
    expiresAtMs: 0n,
    offset: 0n,
    ...fields,
  };
}

export function sha256Of(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/** `bytes` as Upload chunks of SEND_CHUNK_BYTES. */
export function* chunksOf(bytes: Uint8Array, size = SEND_CHUNK_BYTES): Generator<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += size) yield bytes.subarray(at, at + size);
}

/**
 * `length` pseudo-random bytes from `seed` (AES-256-CTR keystream), made chunk by chunk: the same
 * seed gives the same bytes again, so a large file is hashed and then sent without being held.
 */
export function* pseudoRandomChunks(
  seed: string,
  length: number,
  from = 0,
  size = SEND_CHUNK_BYTES,
): Generator<Uint8Array> {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(size);
  for (let at = 0; at < length; at += size) {
    const chunk = cipher.update(zeros.subarray(0, Math.min(size, length - at)));
    if (at + chunk.length > from) yield at >= from ? chunk : chunk.subarray(from - at);
  }
}

export class BlobTestClient {
  private readonly client: InstanceType<typeof BlobServiceClient>;

  constructor(bed: ServiceTestBed, address: string, certName = 'gateway') {
    const tls = loadTlsFiles(bed.certs.files(certName));
    this.client = new BlobServiceClient(address, credentials.createSsl(tls.ca, tls.key, tls.cert), {
      'grpc.max_receive_message_length': 4 << 20,
      'grpc.max_send_message_length': 4 << 20,
    });
  }

  /** One Upload call: begin, then the chunks (written as the stream has room), then half-close. */
  async upload(
    identity: Identity | undefined,
    begin: UploadBegin,
    chunks: Iterable<Uint8Array>,
    opts: UploadOptions = {},
  ): Promise<UploadResult> {
    let answered = false;
    let call!: ClientWritableStream<UploadRequest>;
    const response = new Promise<UploadResponse>((resolve, reject) => {
      call = this.client.upload(metadataOf(identity), { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, res) => {
        answered = true;
        if (err) reject(err);
        else resolve(res!);
      });
    });
    // Rejections are awaited below; until then they must not count as unhandled.
    response.catch(() => undefined);
    let sentBytes = 0;
    const write = async (message: UploadRequest) => {
      if (!call.write(message)) {
        await Promise.race([
          once(call, 'drain'),
          response.then(
            () => undefined,
            () => undefined,
          ),
        ]);
      }
    };
    await write({ kind: { $case: 'begin', value: begin } });
    for (const chunk of chunks) {
      if (answered) break;
      let piece = chunk;
      const limit = opts.cancelAfterBytes ?? opts.endAfterBytes ?? opts.stallAfterBytes;
      if (limit !== undefined && sentBytes + piece.byteLength > limit) piece = piece.subarray(0, limit - sentBytes);
      if (piece.byteLength > 0) await write({ kind: { $case: 'chunk', value: piece } });
      sentBytes += piece.byteLength;
      if (limit !== undefined && sentBytes >= limit) break;
    }
    if (opts.stallAfterBytes !== undefined) {
      // Neither more bytes nor the end: the service has to give up on its own.
    } else if (opts.cancelAfterBytes !== undefined && !answered) {
      // Give the bytes time to leave this process before the call is cut.
      await new Promise((resolve) => setTimeout(resolve, 200));
      call.cancel();
    } else {
      call.end();
    }
    return { response: await response, sentBytes };
  }

  /** One Download call, streamed: `onChunk` sees each chunk; resolves with the info and byte count. */
  async download(
    identity: Identity | undefined,
    blobId: string,
    offset = 0n,
    onChunk: (chunk: Uint8Array) => void | Promise<void> = () => undefined,
  ): Promise<{ info: BlobInfo; bytes: number; messages: number }> {
    const stream = this.client.download({ blobId, offset }, metadataOf(identity), {
      deadline: Date.now() + CALL_TIMEOUT_MS,
    });
    let info: BlobInfo | undefined;
    let bytes = 0;
    let messages = 0;
    for await (const message of stream as AsyncIterable<DownloadResponse>) {
      messages++;
      if (message.kind?.$case === 'info') {
        if (info || bytes > 0) throw new Error('info came twice or after a chunk');
        info = message.kind.value;
      } else if (message.kind?.$case === 'chunk') {
        if (!info) throw new Error('a chunk came before the info');
        bytes += message.kind.value.byteLength;
        await onChunk(message.kind.value);
      }
    }
    if (!info) throw new Error('no info');
    return { info, bytes, messages };
  }

  /** A whole download in memory (for files of a few MiB). */
  async downloadBytes(
    identity: Identity | undefined,
    blobId: string,
    offset = 0n,
  ): Promise<{ info: BlobInfo; bytes: Buffer }> {
    const parts: Uint8Array[] = [];
    const { info } = await this.download(identity, blobId, offset, (chunk) => void parts.push(chunk));
    return { info, bytes: Buffer.concat(parts) };
  }

  close(): void {
    this.client.close();
  }
}

function metadataOf(identity: Identity | undefined): Metadata {
  const md = new Metadata();
  if (identity) writeIdentity(md, identity);
  return md;
}
