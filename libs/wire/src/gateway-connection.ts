import { QUICClient, errors as quicErrors, events } from '@matrixai/quic';
import {
  ClientFrame,
  ServerFrame,
  type DownloadRequest,
  type Push,
  type UploadBegin,
  type UploadResponse,
} from '@qpq/proto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { CloseCode, describeCloseCode } from './close-codes.js';
import { connectionEnd, describeConnectionEnd, on, type ConnectionEnd } from './events.js';
import { FileStreamSlots } from './file-stream-slots.js';
import {
  DEFAULT_FILE_STALL_TIMEOUT_MS,
  downloadOverStream,
  FileTransfer,
  uploadOverStream,
  type Download,
  type DownloadOptions,
  type UploadOptions,
} from './file-transfer.js';
import { FrameStream, type FrameStreamEnd } from './frame-stream.js';
import { DEFAULT_MAX_FRAME_BYTES, FrameTooLargeError } from './framing.js';
import { clientCrypto, quicDefaults, quicLogger, quicTransportConfig } from './quic-config.js';
import { RpcError, StatusCode } from './rpc-error.js';

export interface GatewayConnectOptions {
  host: string;
  port: number;
  /** PEM of the CA that issued the gateway's certificate (only this CA is trusted). */
  ca: string;
  /** Name checked against the gateway's certificate (SNI). Default 'localhost'. */
  serverName?: string;
  /** How long the QUIC + TLS handshake may take. Default 10 s. */
  timeoutMs?: number;
  /** Largest frame sent or accepted. Default 1 MiB (the gateway's default QPQ_MAX_FRAME_BYTES). */
  maxFrameBytes?: number;
  /** Idle timeout of the connection (keep-alives keep a quiet but live connection open). Default 30 s. */
  maxIdleTimeoutMs?: number;
}

/** The connection could not be set up (unreachable, untrusted certificate, wrong protocol). */
export class GatewayConnectError extends Error {
  override readonly name = 'GatewayConnectError';
}

/** Why an open connection ended; handed to `onClose` handlers. */
export class ConnectionClosedError extends Error {
  override readonly name = 'ConnectionClosedError';
  constructor(
    message: string,
    /** Who closed it and with which code (CloseCode when `isApp`). */
    readonly end: ConnectionEnd | undefined,
  ) {
    super(message);
  }
  /** The application close code (CloseCode) when the peer closed with one. */
  get closeCode(): number | undefined {
    return this.end?.isApp ? this.end.code : undefined;
  }
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;
/** Waiting for our FIN to go out before closing the connection. */
const CLOSE_FLUSH_MS = 500;
const CLOSED_MESSAGE = 'connection to the server closed';

interface Pending {
  method: string;
  resolve(payload: Uint8Array): void;
  reject(err: RpcError): void;
  timer: NodeJS.Timeout;
}

/**
 * The client's side of the gateway protocol: one QUIC connection, one long-lived bidirectional stream,
 * requests matched to responses by id, pushes delivered as they come; and file streams, each a QUIC
 * stream of its own carrying one file's bytes, so transfers never hold up requests.
 *
 * @example
 * const conn = await GatewayConnection.connect({ host: '127.0.0.1', port: 7000, ca: caPem });
 * conn.onPush((push) => console.log(push.kind?.$case));
 * const answer = await conn.request(AuthServiceService.startLogin.path, bytes);
 * await conn.close();
 */
export class GatewayConnection {
  private readonly frames: FrameStream;
  private readonly pending = new Map<number, Pending>();
  private readonly pushHandlers: ((push: Push) => void)[] = [];
  private readonly closeHandlers: ((reason?: Error) => void)[] = [];
  private readonly fileSlots: FileStreamSlots;
  private readonly transfers = new Set<FileTransfer>();
  private nextId = 1;
  private closedReason: Error | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private destroying: Promise<void> | undefined;
  private end: ConnectionEnd | undefined;

  private constructor(
    private readonly client: QUICClient,
    private readonly maxFrameBytes: number,
    /** "host:port" for messages. */
    readonly address: string,
  ) {
    const connection = client.connection;
    on(connection, events.EventQUICConnectionError, (e) => {
      this.end ??= connectionEnd(e.detail);
      this.finish(this.closeError());
    });
    on(client, events.EventQUICClientDestroyed, () => this.finish(this.closeError()), { once: true });
    this.fileSlots = new FileStreamSlots(connection, quicDefaults.maxFileStreams);
    // The first stream (id 0) is the session stream: the gateway tells it from file streams by that.
    this.frames = new FrameStream(connection.newStream('bidi'), {
      maxFrameBytes,
      onFrame: (frame) => this.onFrame(frame),
      onEnd: (end) => this.onStreamEnd(end),
    });
  }

  /** Opens the QUIC connection (TLS 1.3, ALPN qpq/1) and its stream. */
  static async connect(opts: GatewayConnectOptions): Promise<GatewayConnection> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const address = `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
    const started = Date.now();
    let ip: string;
    let family: number;
    if (isIP(opts.host)) {
      ip = opts.host;
      family = isIP(opts.host);
    } else {
      let found: { address: string; family: number };
      try {
        found = await withTimeout(lookup(opts.host), timeoutMs, `resolving ${opts.host}`);
      } catch (err) {
        throw new GatewayConnectError(`cannot resolve ${opts.host}`, { cause: err });
      }
      ip = found.address;
      family = found.family;
    }
    let client: QUICClient;
    try {
      client = await QUICClient.createQUICClient(
        {
          host: ip,
          port: opts.port,
          // Bind the family of the server's address: a v6 socket does not reach a v4 server here.
          localHost: family === 6 ? '::' : '0.0.0.0',
          serverName: opts.serverName ?? 'localhost',
          crypto: clientCrypto,
          config: {
            ...quicTransportConfig({ ...(opts.maxIdleTimeoutMs ? { maxIdleTimeoutMs: opts.maxIdleTimeoutMs } : {}) }),
            ca: opts.ca,
            verifyPeer: true,
          },
          logger: quicLogger('GatewayConnection'),
        },
        { timer: Math.max(1, timeoutMs - (Date.now() - started)) },
      );
    } catch (err) {
      throw new GatewayConnectError(describeConnectFailure(err, address, timeoutMs), { cause: err });
    }
    return new GatewayConnection(client, opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, address);
  }

  /**
   * Sends one request and waits for its response payload. Rejects with RpcError: the server's status,
   * DEADLINE_EXCEEDED after `timeoutMs` (default 15 s), or UNAVAILABLE when the connection closes.
   */
  request(method: string, payload: Uint8Array, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<Uint8Array> {
    if (this.closed)
      return Promise.reject(new RpcError(StatusCode.UNAVAILABLE, CLOSED_MESSAGE, { cause: this.closedReason }));
    const id = this.takeId();
    const bytes = ClientFrame.encode({ kind: { $case: 'request', value: { id, method, payload } } }).finish();
    if (bytes.byteLength > this.maxFrameBytes) {
      return Promise.reject(
        new RpcError(
          StatusCode.RESOURCE_EXHAUSTED,
          `request too large: ${bytes.byteLength} bytes, the limit is ${this.maxFrameBytes}`,
        ),
      );
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(id)) {
          reject(new RpcError(StatusCode.DEADLINE_EXCEEDED, `no answer to ${method} within ${formatMs(timeoutMs)}`));
        }
      }, timeoutMs);
      this.pending.set(id, { method, resolve, reject, timer });
      this.frames.send(bytes).catch((err: unknown) => {
        const p = this.pending.get(id);
        if (!p) return;
        this.settle(id);
        p.reject(
          err instanceof FrameTooLargeError
            ? new RpcError(StatusCode.RESOURCE_EXHAUSTED, err.message, { cause: err })
            : new RpcError(StatusCode.UNAVAILABLE, CLOSED_MESSAGE, { cause: err }),
        );
      });
    });
  }

  /**
   * Uploads one file's bytes on a file stream of its own: `begin` (BlobService.Upload's first
   * message; `begin.offset` bytes already stored when resuming), then `bytes` from that offset, as
   * fast as QUIC takes them. Resolves with the blob service's answer. Rejects with RpcError: the
   * refusal the server sent (RESOURCE_EXHAUSTED naming the limit, FAILED_PRECONDITION for a wrong
   * offset, DATA_LOSS for a hash mismatch, …) — at once, with the sending stopped, when it comes
   * early; UNAVAILABLE when the stream or connection is cut off; DEADLINE_EXCEEDED after
   * `timeoutMs` without progress. An answer `complete` that comes early (the blob was already
   * stored) stops the sending too. Errors thrown by `bytes` itself are rethrown as they are.
   *
   * @example
   * const answer = await conn.uploadFile(begin, fileChunks, { onSent: (n) => bar.update(n) });
   */
  async uploadFile(
    begin: UploadBegin,
    bytes: AsyncIterable<Uint8Array>,
    opts: UploadOptions = {},
  ): Promise<UploadResponse> {
    const t = await this.openFileStream('upload', opts.timeoutMs);
    try {
      return await uploadOverStream(t, begin, bytes, opts.onSent);
    } finally {
      this.closeFileStream(t, true);
    }
  }

  /**
   * Downloads a blob on a file stream of its own: resolves with its info once the server answered,
   * and the bytes from `request.offset` follow as `bytes` is iterated. Rejects with RpcError: the
   * server's refusal (NOT_FOUND, …), UNAVAILABLE when cut off, DEADLINE_EXCEEDED after `timeoutMs`
   * without an answer.
   *
   * @example
   * const { info, bytes } = await conn.downloadFile({ blobId, offset: 0n });
   * for await (const chunk of bytes) out.write(chunk);
   */
  async downloadFile(request: DownloadRequest, opts: DownloadOptions = {}): Promise<Download> {
    const t = await this.openFileStream('download', opts.timeoutMs);
    try {
      return await downloadOverStream(t, request, (complete) => this.closeFileStream(t, complete));
    } catch (err) {
      this.closeFileStream(t, true);
      throw err;
    }
  }

  /** File streams open now (uploads and downloads under way). */
  get activeTransfers(): number {
    return this.transfers.size;
  }

  /** Handlers for unprompted pushes (new envelopes, notices). */
  onPush(handler: (push: Push) => void): void {
    this.pushHandlers.push(handler);
  }

  /**
   * Called once when the connection ends: with a ConnectionClosedError when the server closed it or
   * it failed, with no reason after our own `close()`. Registered after the end, it is called at once.
   */
  onClose(handler: (reason?: Error) => void): void {
    if (this.closed) queueMicrotask(() => handler(this.closedReason));
    else this.closeHandlers.push(handler);
  }

  /** Requests still waiting for an answer. */
  get pendingRequests(): number {
    return this.pending.size;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Closes the connection (app code NORMAL). Pending requests fail with UNAVAILABLE. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.finish(undefined);
      await withTimeout(this.frames.closeWrite(), CLOSE_FLUSH_MS, 'flushing').catch(() => undefined);
      await this.destroyClient(CloseCode.NORMAL, 'client closed');
    })();
    return this.closing;
  }

  private async openFileStream(kind: 'upload' | 'download', timeoutMs?: number): Promise<FileTransfer> {
    const stallMs = timeoutMs ?? DEFAULT_FILE_STALL_TIMEOUT_MS;
    if (this.closed) throw new RpcError(StatusCode.UNAVAILABLE, CLOSED_MESSAGE, { cause: this.closedReason });
    await this.fileSlots.acquire(stallMs);
    let t: FileTransfer;
    try {
      t = new FileTransfer(this.client.connection.newStream('bidi'), kind, stallMs, this.maxFrameBytes);
    } catch (err) {
      this.fileSlots.release();
      if (this.closed) throw new RpcError(StatusCode.UNAVAILABLE, CLOSED_MESSAGE, { cause: err });
      throw new RpcError(StatusCode.RESOURCE_EXHAUSTED, 'no file stream could be opened on this connection', {
        cause: err,
      });
    }
    this.transfers.add(t);
    // Closed while waiting for the slot: finish() did not see this transfer.
    if (this.closed) t.fail(new RpcError(StatusCode.UNAVAILABLE, CLOSED_MESSAGE, { cause: this.closedReason }));
    return t;
  }

  /** The transfer is over: its stream is let go, then its slot. */
  private closeFileStream(t: FileTransfer, graceful: boolean): void {
    if (!this.transfers.delete(t)) return;
    void t.close(graceful).finally(() => this.fileSlots.release());
  }

  private takeId(): number {
    // uint32 on the wire; wrap around long before any id could still be in flight.
    const id = this.nextId;
    this.nextId = id >= 0xffff_ffff ? 1 : id + 1;
    return id;
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    clearTimeout(p.timer);
    this.pending.delete(id);
    return p;
  }

  private onFrame(bytes: Uint8Array): void {
    if (this.closed) return;
    let frame: ServerFrame;
    try {
      frame = ServerFrame.decode(bytes);
    } catch {
      this.abort(CloseCode.MALFORMED_FRAME, 'undecodable server frame');
      return;
    }
    const kind = frame.kind;
    if (kind?.$case === 'response') {
      const { id, status, payload } = kind.value;
      const p = this.settle(id);
      if (!p) return; // timed out already
      const code = status?.code ?? StatusCode.OK;
      if (code === StatusCode.OK) p.resolve(payload);
      else p.reject(new RpcError(code, status?.message || `${p.method} failed with status ${code}`));
    } else if (kind?.$case === 'push') {
      for (const handler of this.pushHandlers) {
        try {
          handler(kind.value);
        } catch {
          // A failing handler must not stop the read loop or the other handlers.
        }
      }
    }
    // An empty or unknown frame kind comes from a newer server: skip it.
  }

  private onStreamEnd(end: FrameStreamEnd): void {
    if (this.closed) return;
    if (end.kind === 'frame-too-large') {
      this.abort(CloseCode.FRAME_TOO_LARGE, end.error.message);
    } else if (end.kind === 'eof') {
      // The server finished its side (it drains): answer with our FIN so its graceful close can
      // complete, and wait for its CONNECTION_CLOSE, which carries the reason.
      this.failPending(new RpcError(StatusCode.UNAVAILABLE, CLOSED_MESSAGE));
      void this.frames.closeWrite();
      setTimeout(() => {
        if (!this.closed) this.abort(CloseCode.NORMAL, 'server ended the stream');
      }, 2_000).unref();
    } else if (end.kind === 'truncated') {
      this.abort(CloseCode.PROTOCOL_VIOLATION, 'stream ended mid-frame');
    } else {
      // The connection is going away; its error event tells why.
      this.failPending(new RpcError(StatusCode.UNAVAILABLE, CLOSED_MESSAGE, { cause: end.error }));
    }
  }

  /** Closes the connection because the server broke the protocol. */
  private abort(code: CloseCode, reason: string): void {
    this.end ??= { by: 'local', isApp: true, code, reason };
    // First, so the server hears this code rather than the plain close finish() would send.
    void this.destroyClient(code, reason);
    this.finish(
      new ConnectionClosedError(
        `closed the connection to ${this.address}: ${describeCloseCode(code)} (${reason})`,
        this.end,
      ),
    );
  }

  /** Closes the QUIC connection and socket once, with the first code asked for. */
  private destroyClient(code: number, reason: string): Promise<void> {
    this.destroying ??= this.client
      .destroy({ isApp: true, errorCode: code, reason: Buffer.from(reason), force: true })
      .catch(() => undefined);
    return this.destroying;
  }

  private closeError(): ConnectionClosedError {
    const end = this.end;
    const how = end ? describeConnectionEnd(end) : 'closed';
    return new ConnectionClosedError(`connection to ${this.address} ended: ${how}`, end);
  }

  private failPending(err: RpcError): void {
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(err);
  }

  private finish(reason: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.closedReason = reason;
    const closedError = new RpcError(StatusCode.UNAVAILABLE, CLOSED_MESSAGE, { cause: reason });
    this.failPending(closedError);
    this.fileSlots.close(closedError);
    for (const t of this.transfers) t.fail(closedError);
    for (const handler of this.closeHandlers.splice(0)) {
      try {
        handler(reason);
      } catch {
        // One failing handler must not keep the others from hearing about the close.
      }
    }
    // Our own close() destroys the client after flushing; after any other end, release the socket now.
    if (reason) void this.destroyClient(CloseCode.NORMAL, 'closing');
  }
}

function describeConnectFailure(err: unknown, address: string, timeoutMs: number): string {
  if (err instanceof quicErrors.ErrorQUICClientCreateTimeout) {
    return `no answer from ${address} within ${formatMs(timeoutMs)}`;
  }
  if (err instanceof quicErrors.ErrorQUICConnectionLocalTLS) {
    return `the server at ${address} presented a certificate this client does not trust`;
  }
  if (err instanceof quicErrors.ErrorQUICConnectionPeerTLS) {
    const code = (err.data as { errorCode?: number } | undefined)?.errorCode;
    if (code === 0x100 + 120) return `the server at ${address} does not speak the qpq/1 protocol`;
    return `the server at ${address} refused the TLS handshake`;
  }
  return `cannot connect to ${address}: ${err instanceof Error ? err.message : String(err)}`;
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: timed out after ${formatMs(ms)}`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
