import Logger, { formatting, Handler, LogLevel, StreamHandler, type LogRecord } from '@matrixai/logger';
import type { QUICClientConfigInput, QUICClientCrypto, QUICServerCrypto, ServerCryptoOps } from '@matrixai/quic';
import { createHmac, randomBytes, timingSafeEqual, webcrypto } from 'node:crypto';

/**
 * QUIC settings shared by the gateway and the client, so both ends agree on ALPN, stream limits and
 * timeouts. Facts behind the numbers: /tmp/research/quic/NOTES.md and DESIGN.md §5.
 */

/** The ALPN both ends must offer; a peer without it fails the handshake (no_application_protocol). */
export const ALPN = 'qpq/1';

export const quicDefaults = {
  /**
   * Streams the peer may open. A session uses one long-lived stream; a few more leave room for
   * later features (file chunks on their own streams) without letting a peer open hundreds.
   */
  initialMaxStreamsBidi: 4,
  /** Per-stream read buffer. 256 KiB instead of the library's 4 KiB: bulk transfer ~1.5× faster. */
  readableChunkSize: 256 * 1024,
  /** A peer that vanished (no keep-alive answered) is noticed after this long. The library's default 0 means never. */
  maxIdleTimeoutMs: 30_000,
  /** Must stay under maxIdleTimeoutMs (the library refuses the config otherwise). */
  keepAliveIntervalMs: 10_000,
} as const;

export interface TransportOptions {
  maxIdleTimeoutMs?: number;
  keepAliveIntervalMs?: number;
}

/** The transport part of a QUICConfig (no TLS material): ALPN, stream limits, idle timeout and keep-alive. */
export function quicTransportConfig(opts: TransportOptions = {}): QUICClientConfigInput {
  const maxIdleTimeout = opts.maxIdleTimeoutMs ?? quicDefaults.maxIdleTimeoutMs;
  const keepAlive =
    opts.keepAliveIntervalMs ?? Math.min(quicDefaults.keepAliveIntervalMs, Math.floor(maxIdleTimeout / 3));
  return {
    applicationProtos: [ALPN],
    initialMaxStreamsBidi: quicDefaults.initialMaxStreamsBidi,
    // qpq never uses unidirectional streams.
    initialMaxStreamsUni: 0,
    readableChunkSize: quicDefaults.readableChunkSize,
    maxIdleTimeout,
    keepAliveIntervalTime: keepAlive,
  };
}

/** A log line from the QUIC library, for a sink that writes it in the process's own log format. */
export interface QuicLogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  logger: string;
  msg: string;
}

class SinkHandler extends Handler {
  constructor(private readonly sink: (line: QuicLogLine) => void) {
    super();
  }
  override handle(record: LogRecord): void {
    const level =
      record.level >= LogLevel.ERROR
        ? 'error'
        : record.level >= LogLevel.WARN
          ? 'warn'
          : record.level >= LogLevel.INFO
            ? 'info'
            : 'debug';
    this.sink({ level, logger: record.keys, msg: record.msg ?? '' });
  }
  emit(): void {}
}

/**
 * A logger for the QUIC library at WARN: its default logs every stream open/close at INFO on stderr.
 * Give `sink` to route its lines into the process's own logs (the gateway's JSON logs).
 */
export function quicLogger(name: string, sink?: (line: QuicLogLine) => void, level: LogLevel = LogLevel.WARN): Logger {
  const handler = sink
    ? new SinkHandler(sink)
    : new StreamHandler(formatting.format`${formatting.level}:${formatting.keys}:${formatting.msg}`);
  return new Logger(name, level, [handler]);
}

const toBuffer = (d: ArrayBuffer | ArrayBufferView): Buffer =>
  ArrayBuffer.isView(d) ? Buffer.from(d.buffer, d.byteOffset, d.byteLength) : Buffer.from(d);

/**
 * HMAC-SHA256 for the server's connection ids and stateless-retry tokens (NOT the TLS key).
 * `sign` must return a real ArrayBuffer: the library reads 20 bytes of it as a connection id, and
 * a Node Buffer would be copied whole instead.
 */
const serverCryptoOps: ServerCryptoOps = {
  async sign(key, data) {
    const mac = createHmac('sha256', toBuffer(key)).update(toBuffer(data)).digest();
    return mac.buffer.slice(mac.byteOffset, mac.byteOffset + mac.byteLength) as ArrayBuffer;
  },
  async verify(key, data, sig) {
    const mac = createHmac('sha256', toBuffer(key)).update(toBuffer(data)).digest();
    const given = toBuffer(sig);
    return given.length === mac.length && timingSafeEqual(given, mac);
  },
};

/**
 * The server's crypto: a fresh random HMAC key per process. Retry tokens and connection ids only
 * have to verify within the process that minted them.
 */
export function serverCrypto(key: Uint8Array = randomBytes(32)): QUICServerCrypto {
  const copy = new Uint8Array(key);
  return { key: copy.buffer, ops: serverCryptoOps };
}

/** The client's crypto: random bytes for its connection ids. */
export const clientCrypto: QUICClientCrypto = {
  ops: {
    async randomBytes(data: ArrayBuffer) {
      webcrypto.getRandomValues(new Uint8Array(data));
    },
  },
};
