import Logger, { formatting, Handler, LogLevel, StreamHandler, type LogRecord } from '@matrixai/logger';
import type { QUICClientConfigInput, QUICClientCrypto, QUICServerCrypto, ServerCryptoOps } from '@matrixai/quic';
import { createHmac, randomBytes, timingSafeEqual, webcrypto } from 'node:crypto';

/**
 * QUIC settings shared by the gateway and the client, so both ends agree on ALPN, stream limits and
 * timeouts. Facts behind the numbers: /tmp/research/quic/NOTES.md and DESIGN.md §5.
 */

/** The ALPN both ends must offer; a peer without it fails the handshake (no_application_protocol). */
export const ALPN = 'qpq/1';

/**
 * File streams (one per file being uploaded or downloaded) a connection may have open at once,
 * beside its session stream. The gateway may allow fewer (QPQ_MAX_FILE_STREAMS).
 */
const MAX_FILE_STREAMS = 8;
const MAX_STREAM_WINDOW_BYTES = 2 * 1024 * 1024;

export const quicDefaults = {
  maxFileStreams: MAX_FILE_STREAMS,
  /**
   * Streams the peer may open at once: the session stream and the file streams. Past it the QUIC
   * library fails `newStream()` (and the one after it for good), so clients count their streams.
   */
  initialMaxStreamsBidi: 1 + MAX_FILE_STREAMS,
  /** Per-stream read buffer. 256 KiB instead of the library's 4 KiB: bulk transfer ~1.5× faster. */
  readableChunkSize: 256 * 1024,
  /**
   * Flow control: unread bytes a peer may send on one stream, growing from the initial window to
   * the max as the reader keeps up. It bounds what a receiver that stops reading (the gateway
   * waiting for the blob service) holds per stream; the library's default max is 16 MiB. 2 MiB in
   * flight is ~20 MiB/s at 100 ms RTT, beyond what this QUIC stack sends (DESIGN.md §5).
   */
  initialMaxStreamDataBytes: 1024 * 1024,
  maxStreamWindowBytes: MAX_STREAM_WINDOW_BYTES,
  /**
   * The connection's window: room for every stream's full window at once, so file streams parked
   * behind a slow blob service never starve the session stream (requests keep flowing).
   */
  connectionWindowBytes: (1 + MAX_FILE_STREAMS) * MAX_STREAM_WINDOW_BYTES,
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
    initialMaxStreamDataBidiLocal: quicDefaults.initialMaxStreamDataBytes,
    initialMaxStreamDataBidiRemote: quicDefaults.initialMaxStreamDataBytes,
    maxStreamWindow: quicDefaults.maxStreamWindowBytes,
    initialMaxData: quicDefaults.connectionWindowBytes,
    maxConnectionWindow: quicDefaults.connectionWindowBytes,
    // UDP payloads stay at the library's 1,350 bytes: what real paths carry without fragmenting.
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
