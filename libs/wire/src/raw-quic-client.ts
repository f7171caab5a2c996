import { events, QUICClient } from '@matrixai/quic';
import { connectionEnd, on, type ConnectionEnd } from './events.js';
import { encodeFrame } from './framing.js';
import { clientCrypto, quicLogger, quicTransportConfig } from './quic-config.js';

export interface RawQuicClientOptions {
  /** Default 127.0.0.1. */
  host?: string;
  port: number;
  /** PEM of the CA the gateway's edge certificate is checked against (server name "localhost"). */
  ca: string;
  /** For the handshake (default 5 s). */
  timeoutMs?: number;
}

/**
 * A QUIC client for tests that sends whatever bytes it is told to, framed or not: the misbehaving
 * client a gateway must cut off alone. It opens one bidirectional stream, as a real client does,
 * and never reads it. Exported as `@qpq/wire/testing`, apart from what real clients use.
 *
 * @example
 * const raw = await RawQuicClient.connect({ port, ca });
 * await raw.sendFrame(Uint8Array.from([0x0f, 0x01]));
 * assert.equal((await raw.ended()).code, CloseCode.MALFORMED_FRAME);
 * await raw.destroy();
 */
export class RawQuicClient {
  private constructor(
    readonly client: QUICClient,
    private readonly end: Promise<ConnectionEnd>,
    private readonly writer: WritableStreamDefaultWriter<Uint8Array>,
  ) {}

  static async connect(opts: RawQuicClientOptions): Promise<RawQuicClient> {
    const client = await QUICClient.createQUICClient(
      {
        host: opts.host ?? '127.0.0.1',
        port: opts.port,
        localHost: '127.0.0.1',
        serverName: 'localhost',
        crypto: clientCrypto,
        config: { ...quicTransportConfig(), ca: opts.ca, verifyPeer: true },
        logger: quicLogger('raw-client'),
      },
      { timer: opts.timeoutMs ?? 5_000 },
    );
    // Listening before the stream opens: the peer may close as soon as it sees the stream.
    const end = new Promise<ConnectionEnd>((resolve) =>
      on(client.connection, events.EventQUICConnectionError, (e) => resolve(connectionEnd(e.detail))),
    );
    const writer = client.connection.newStream('bidi').writable.getWriter();
    // A write cut off by the close also rejects `closed`; the test looks at `ended()` instead.
    writer.closed.catch(() => undefined);
    return new RawQuicClient(client, end, writer);
  }

  /** Writes `bytes` to the stream as they are: no length prefix, no limit. */
  write(bytes: Uint8Array): Promise<void> {
    return this.writer.write(bytes);
  }

  /** Writes `payload` behind its 4-byte big-endian length, however large it is. */
  sendFrame(payload: Uint8Array): Promise<void> {
    return this.write(encodeFrame(payload, Number.POSITIVE_INFINITY));
  }

  /** How the connection ended (who closed it, with which code); rejects if it is still open after `timeoutMs`. */
  ended(timeoutMs = 5_000): Promise<ConnectionEnd> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the connection was not closed within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([this.end, timeout]).finally(() => clearTimeout(timer));
  }

  destroy(): Promise<void> {
    return this.client.destroy({ force: true });
  }
}
