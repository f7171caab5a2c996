import { events, QUICServer, type QUICConnection } from '@matrixai/quic';
import { formatHostPort, type HostPort } from '@qpq/runtime';
import { CloseCode, describeCloseCode, on, quicLogger, quicTransportConfig, serverCrypto } from '@qpq/wire';
import { ClientConnection } from './client-connection.js';
import type { AppContext } from './context.js';
import type { Dispatch } from './dispatch.js';
import { connectionErrorKind, streamErrorKind, type QuicErrorKind } from './quic-errors.js';

/**
 * The client-facing QUIC listener (TLS 1.3, ALPN qpq/1, no client certificates: clients prove who
 * they are with a session token). Holds every open ClientConnection, refuses new ones past
 * QPQ_MAX_CONNECTIONS or while draining.
 */
export class EdgeServer {
  private readonly server: QUICServer;
  private readonly connections = new Set<ClientConnection>();
  private accepting = true;
  private started = false;

  constructor(
    private readonly ctx: AppContext,
    private readonly dispatch: Dispatch,
    tls: { cert: string; key: string },
  ) {
    const { logger } = ctx;
    this.server = new QUICServer({
      crypto: serverCrypto(),
      config: {
        ...quicTransportConfig({ maxIdleTimeoutMs: ctx.cfg.idleTimeoutMs }),
        key: tls.key,
        cert: tls.cert,
        verifyPeer: false,
      },
      // The library's own warnings, as JSON lines of this process.
      logger: quicLogger('quic', (line) => logger[line.level]({ quic: line.logger }, line.msg)),
    });
    on(this.server, events.EventQUICServerConnection, (e) => this.accept(e.detail));
    // Every connection's and stream's events reach the server too, those of connections still in
    // their handshake included (which never become a ClientConnection).
    const counted = new WeakSet<object>();
    const count = (err: unknown, kind: QuicErrorKind | undefined) => {
      // The library may dispatch one error more than once.
      if (!kind || typeof err !== 'object' || err === null || counted.has(err)) return;
      counted.add(err);
      ctx.metrics.quicErrors.add(1, { kind });
    };
    on(this.server, events.EventQUICConnectionError, (e) => count(e.detail, connectionErrorKind(e.detail)));
    on(this.server, events.EventQUICStreamError, (e) => count(e.detail, streamErrorKind(e.detail)));
  }

  /** Starts listening; answers the bound "host:port" (the real port when configured with 0). */
  async listen(at: HostPort): Promise<string> {
    await this.server.start({ host: at.host, port: at.port });
    this.started = true;
    return formatHostPort({ host: at.host, port: this.server.port });
  }

  get listening(): boolean {
    return this.started && this.accepting && !this.server.closed;
  }

  /** Client connections open now. */
  get size(): number {
    return this.connections.size;
  }

  /**
   * Stops accepting, lets each connection answer what it has in flight and closes it with
   * SHUTTING_DOWN, all by `deadline` (ms since the epoch).
   */
  async drain(deadline: number): Promise<void> {
    this.accepting = false;
    await Promise.all([...this.connections].map((c) => c.drain(deadline)));
  }

  /** Closes the socket and whatever connection is still open. */
  async stop(): Promise<void> {
    this.accepting = false;
    if (this.started) await this.server.stop({ force: true }).catch(() => undefined);
  }

  private accept(conn: QUICConnection): void {
    const refuse = (code: CloseCode) => {
      this.ctx.metrics.connectionsClosed.add(1, {
        reason: code === CloseCode.SHUTTING_DOWN ? 'shutting_down' : 'too_many_connections',
      });
      void conn
        .stop({ isApp: true, errorCode: code, reason: Buffer.from(describeCloseCode(code)), force: true })
        .catch(() => undefined);
    };
    if (!this.accepting) return refuse(CloseCode.SHUTTING_DOWN);
    if (this.connections.size >= this.ctx.cfg.maxConnections) {
      this.ctx.logger.warn({ limit: this.ctx.cfg.maxConnections }, 'connection refused: QPQ_MAX_CONNECTIONS reached');
      return refuse(CloseCode.TOO_MANY_CONNECTIONS);
    }
    const client = new ClientConnection(conn, this.ctx, this.dispatch);
    this.connections.add(client);
    void client.stopped.then(() => this.connections.delete(client));
  }
}
