import {
  AttachRequest,
  AuthServiceService,
  DeliveryServiceService,
  KeyPackageServiceService,
  KeyTransparencyServiceService,
  SessionServiceService,
  type Push,
} from '@qpq/proto';
import { isIP } from 'node:net';
import { GatewayConnectError, GatewayConnection } from '@qpq/wire';
import type { ResolvedCa } from './ca.js';
import { GrpcCode, ServerUnreachableError, UsageError, isRpcFailure, oneLine } from './errors.js';

/**
 * Methods whose repetition changes nothing (reads, cumulative acks, uploads stored once by hash, every
 * key-transparency call): the
 * session repeats them after a dropped connection. Enqueue is retried by the outbox with its message
 * id instead; a claim hands out KeyPackages and is never repeated blindly.
 */
const RETRYABLE_METHODS = new Set<string>([
  DeliveryServiceService.fetch.path,
  DeliveryServiceService.ack.path,
  KeyPackageServiceService.countKeyPackages.path,
  KeyPackageServiceService.uploadKeyPackages.path,
  AuthServiceService.resolveUser.path,
  AuthServiceService.listDevices.path,
  ...Object.values(KeyTransparencyServiceService).map((m) => m.path),
]);
const RETRY_DELAYS_MS = [250, 1000, 2500];

/** A method as ts-proto's grpc-js output describes it (e.g. `AuthServiceService.startLogin`). */
export interface MethodDefinition<Req, Res> {
  path: string;
  requestSerialize(value: Req): Buffer;
  responseDeserialize(value: Buffer): Res;
}

export interface ServerAddress {
  host: string;
  port: number;
  /** "host:port" as the person wrote it, for messages. */
  text: string;
}

export interface GatewaySessionOptions {
  server: ServerAddress;
  /** The CA to trust, resolved when the first connection opens (so offline commands need none). */
  ca: () => ResolvedCa;
  /** Name the gateway's certificate must carry; default: the host when it is a name, else 'localhost'. */
  serverName?: string;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /**
   * A gateway that vanished without closing (a crash) is noticed after this long without an answer to
   * keep-alives. Default 10 s: a client should find out well before a person gives up.
   */
  maxIdleTimeoutMs?: number;
}

/**
 * Parses "host:port" (IPv6 as "[::1]:7000").
 * @example parseServerAddress('127.0.0.1:7000') // { host: '127.0.0.1', port: 7000, text: '127.0.0.1:7000' }
 */
export function parseServerAddress(text: string): ServerAddress {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:\s]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`invalid server address ${JSON.stringify(text)}: expected HOST:PORT`);
  }
  return { host: m[1], port, text };
}

/** Why no connection could be opened, in one line: unreachable, or a TLS problem worth its own words. */
function connectFailure(server: string, caSource: string, err: unknown): ServerUnreachableError {
  const message = err instanceof Error ? oneLine(err.message) : String(err);
  if (err instanceof GatewayConnectError && /certificate|TLS|protocol/.test(message)) {
    const hint = /certificate/.test(message) ? ` (trusted CA: ${caSource}; pass --ca FILE)` : '';
    return new ServerUnreachableError(server, { cause: err, message: `${message}${hint}` });
  }
  if (err instanceof GatewayConnectError && /^no answer from/.test(message)) {
    return new ServerUnreachableError(server, { cause: err, detail: message.replace(`from ${server} `, '') });
  }
  return new ServerUnreachableError(server, { cause: err, detail: message });
}

/** A request that never reached a live connection; safe to send again. */
function connectionLost(server: string, cause: unknown): ServerUnreachableError {
  const detail = cause instanceof Error ? oneLine(cause.message) : undefined;
  return new ServerUnreachableError(server, {
    cause,
    detail: detail ? `connection lost: ${detail}` : 'connection lost',
  });
}

/**
 * One authenticated session with the gateway over a QUIC connection that is opened lazily and
 * re-opened (and re-attached with the session token) after it drops. Pushes from every connection
 * reach the same handlers; `onReconnect` tells the owner to fetch what it may have missed.
 */
export class GatewaySession {
  private conn: GatewayConnection | undefined;
  private connecting: Promise<GatewayConnection> | undefined;
  private sessionToken: string | undefined;
  private closed = false;
  private readonly pushHandlers: ((push: Push) => void)[] = [];
  private readonly reconnectHandlers: (() => void)[] = [];
  private readonly closeHandlers: ((reason?: Error) => void)[] = [];
  private everAttached = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private keepConnected = false;

  constructor(private readonly opts: GatewaySessionOptions) {}

  get server(): string {
    return this.opts.server.text;
  }

  onPush(handler: (push: Push) => void): void {
    this.pushHandlers.push(handler);
  }

  /** Called after a dropped connection was replaced and re-attached. */
  onReconnect(handler: () => void): void {
    this.reconnectHandlers.push(handler);
  }

  /** Called when a connection drops (before any reconnect). */
  onDisconnect(handler: (reason?: Error) => void): void {
    this.closeHandlers.push(handler);
  }

  /**
   * Keeps a connection open in the background (re-opening it after a drop, with backoff) so pushes
   * keep coming — for long-running clients such as the REPL or `recv --wait`.
   */
  stayConnected(): void {
    this.keepConnected = true;
  }

  /** Binds this session to a device: every later connection attaches with this token first. */
  async attach(token: string): Promise<void> {
    this.sessionToken = token;
    const conn = await this.connection();
    await this.attachOn(conn, token);
  }

  /**
   * One request/response; throws the server's RpcError, or ServerUnreachableError when the connection
   * failed. Calls that are safe to repeat (RETRYABLE_METHODS) are tried again, on a fresh connection,
   * when the connection dropped under them or the server said UNAVAILABLE: a gateway or service that
   * restarts costs a person nothing.
   */
  async call<Req, Res>(method: MethodDefinition<Req, Res>, request: Req, timeoutMs?: number): Promise<Res> {
    const attempts = RETRYABLE_METHODS.has(method.path) ? RETRY_DELAYS_MS.length + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.callOnce(method, request, timeoutMs);
      } catch (err) {
        const transient =
          err instanceof ServerUnreachableError || (isRpcFailure(err) && err.code === GrpcCode.UNAVAILABLE);
        if (attempt >= attempts || !transient || this.closed) throw err;
        await new Promise((r) => setTimeout(r, RETRY_DELAYS_MS[attempt - 1]));
      }
    }
  }

  private async callOnce<Req, Res>(method: MethodDefinition<Req, Res>, request: Req, timeoutMs?: number): Promise<Res> {
    const conn = await this.connection();
    let answer: Uint8Array;
    try {
      answer = await conn.request(
        method.path,
        new Uint8Array(method.requestSerialize(request)),
        timeoutMs ?? this.opts.requestTimeoutMs ?? 15_000,
      );
    } catch (err) {
      if (!isRpcFailure(err)) {
        this.drop(conn);
        throw connectionLost(this.server, err);
      }
      // No answer in time, or the connection closed under the request: the gateway may be gone without
      // a word (a crash sends no close). Go on with a fresh connection rather than wait for the idle
      // timeout to notice.
      if (err.code === GrpcCode.DEADLINE_EXCEEDED || err.code === GrpcCode.UNAVAILABLE) this.drop(conn);
      throw err;
    }
    return method.responseDeserialize(Buffer.from(answer.buffer, answer.byteOffset, answer.byteLength));
  }

  /**
   * Runs `use` on the attached connection: file transfers open their own QUIC streams beside the
   * session's. A connection that drops under it is a ServerUnreachableError (the caller resumes on a
   * fresh one); any other failure (the server's answer, a file that cannot be read) is thrown as it came.
   */
  async withConnection<T>(use: (conn: GatewayConnection) => Promise<T>): Promise<T> {
    const conn = await this.connection();
    try {
      return await use(conn);
    } catch (err) {
      if (conn.isClosed) {
        this.drop(conn);
        throw connectionLost(this.server, err);
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const conn = this.conn ?? (await this.connecting?.catch(() => undefined));
    this.conn = undefined;
    this.connecting = undefined;
    await conn?.close().catch(() => undefined);
  }

  private async connection(): Promise<GatewayConnection> {
    if (this.closed) throw new ServerUnreachableError(this.server, { detail: 'client closed' });
    if (this.conn) return this.conn;
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async open(): Promise<GatewayConnection> {
    const { server } = this.opts;
    const ca = this.opts.ca();
    let conn: GatewayConnection;
    try {
      const serverName = this.opts.serverName ?? (isIP(server.host) ? undefined : server.host);
      conn = await GatewayConnection.connect({
        host: server.host,
        port: server.port,
        ca: ca.pem,
        ...(serverName !== undefined ? { serverName } : {}),
        timeoutMs: this.opts.connectTimeoutMs ?? 10_000,
        maxIdleTimeoutMs: this.opts.maxIdleTimeoutMs ?? 10_000,
      });
    } catch (err) {
      throw connectFailure(server.text, ca.source, err);
    }
    if (this.closed) {
      await conn.close().catch(() => undefined);
      throw new ServerUnreachableError(server.text, { detail: 'client closed' });
    }
    conn.onPush((push) => {
      for (const h of this.pushHandlers) h(push);
    });
    conn.onClose((reason) => {
      if (this.conn !== conn) return;
      this.conn = undefined;
      for (const h of this.closeHandlers) h(reason);
      this.scheduleReconnect(1);
    });
    if (this.sessionToken !== undefined) {
      try {
        await this.attachOn(conn, this.sessionToken);
      } catch (err) {
        await conn.close().catch(() => undefined);
        throw err;
      }
    }
    this.conn = conn;
    return conn;
  }

  private async attachOn(conn: GatewayConnection, token: string): Promise<void> {
    const method = SessionServiceService.attach;
    let answer: Uint8Array;
    try {
      answer = await conn.request(
        method.path,
        AttachRequest.encode({ sessionToken: token }).finish(),
        this.opts.requestTimeoutMs ?? 15_000,
      );
    } catch (err) {
      if (isRpcFailure(err)) throw err;
      throw connectionLost(this.server, err);
    }
    method.responseDeserialize(Buffer.from(answer));
    const reattached = this.everAttached;
    this.everAttached = true;
    if (reattached) for (const h of this.reconnectHandlers) queueMicrotask(h);
  }

  private drop(conn: GatewayConnection): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    void conn.close().catch(() => undefined);
    this.scheduleReconnect(1);
  }

  private scheduleReconnect(attempt: number): void {
    if (!this.keepConnected || this.closed || this.reconnectTimer) return;
    const delay = Math.min(250 * 2 ** (attempt - 1), 5_000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closed || this.conn) return;
      this.connection().catch((err: unknown) => {
        // A refused session will not get better by retrying.
        if (isRpcFailure(err) && err.code === GrpcCode.UNAUTHENTICATED) {
          for (const h of this.closeHandlers) h(err instanceof Error ? err : undefined);
          return;
        }
        this.scheduleReconnect(attempt + 1);
      });
    }, delay);
    this.reconnectTimer.unref?.();
  }
}
