// The client ends of the transport scenarios, one per transport and kind of work, so that QUIC and
// TLS figures come out of the same loops: a closed loop of round trips with a fixed number of
// requests in flight, and a one-way stream of frames to a sink that reports what it received.
import { QUICClient } from '@matrixai/quic';
import { ClientFrame, ServerFrame } from '@qpq/proto';
import {
  clientCrypto,
  encodeFrame,
  FrameDecoder,
  FrameStream,
  GatewayConnection,
  quicLogger,
  quicTransportConfig,
  RpcError,
} from '@qpq/wire';
import { once } from 'node:events';
import { connect, type TLSSocket } from 'node:tls';
import { decodeSummary, UNIMPLEMENTED, UNROUTED_METHOD, type SinkSummary } from './transport-protocol.js';

const CONNECT_TIMEOUT_MS = 10_000;
/** Bytes a QUIC sender lets queue in the library before waiting: enough to keep packets going. */
const QUIC_QUEUE_BYTES = 256 * 1024;
/** Frames written between looks at the clock. */
const BATCH = 64;

export interface Endpoint {
  port: number;
  /** PEM of the CA the server's certificate (name `localhost`) is checked against. */
  ca: string;
}

/** One connection that makes round trips: a request of `payload` answered by the server. */
export interface RoundTripper {
  roundTrip(payload: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** One connection that sends frames one way and learns from the sink what arrived. */
export interface FrameSender {
  /**
   * Sends frames of `payload` until `until` (performance.now()), then finishes; what the sink counted,
   * and for QUIC what the sender's quiche counted meanwhile (packets sent and lost, RTT, window).
   */
  sendUntil(payload: Uint8Array, until: number): Promise<SinkSummary & { transport?: Record<string, number> }>;
  close(): Promise<void>;
}

/** The real client SDK's connection (GatewayConnection) to a gateway or to the rpc QUIC listener. */
export async function quicRoundTripper(at: Endpoint): Promise<RoundTripper> {
  const conn = await GatewayConnection.connect({
    host: '127.0.0.1',
    port: at.port,
    ca: at.ca,
    timeoutMs: CONNECT_TIMEOUT_MS,
  });
  return {
    async roundTrip(payload) {
      try {
        await conn.request(UNROUTED_METHOD, payload);
      } catch (err) {
        if (err instanceof RpcError && err.code === UNIMPLEMENTED) return;
        throw err;
      }
      throw new Error(`${UNROUTED_METHOD} was answered OK, not UNIMPLEMENTED`);
    },
    close: () => conn.close(),
  };
}

/** A QUIC connection with the gateway's transport config; each sendUntil on a new stream. */
export async function quicFrameSender(at: Endpoint): Promise<FrameSender> {
  const client = await QUICClient.createQUICClient(
    {
      host: '127.0.0.1',
      port: at.port,
      localHost: '127.0.0.1',
      serverName: 'localhost',
      crypto: clientCrypto,
      config: { ...quicTransportConfig(), ca: at.ca, verifyPeer: true },
      logger: quicLogger('bench-sender'),
    },
    { timer: CONNECT_TIMEOUT_MS },
  );
  return {
    async sendUntil(payload, until) {
      const before = quicheOf(client).stats();
      let summary: SinkSummary | undefined;
      const frames = new FrameStream(client.connection.newStream('bidi'), {
        onFrame: (frame) => (summary = decodeSummary(frame)),
      });
      let last: Promise<void> = Promise.resolve();
      do {
        for (let i = 0; i < BATCH; i++) {
          last = frames.send(payload);
          last.catch(() => undefined); // the last one is awaited, and the stream fails as a whole
          if (frames.queuedBytes > QUIC_QUEUE_BYTES) await last;
        }
      } while (performance.now() < until);
      await last;
      await frames.closeWrite();
      const end = await frames.ended;
      if (end.kind !== 'eof' || !summary) throw new Error(`the sink's stream ended ${end.kind} without a summary`);
      const after = quicheOf(client).stats();
      const path = quicheOf(client).pathStats()[0];
      const transport = {
        quic_packets_sent: after.sent - before.sent,
        quic_packets_lost: after.lost - before.lost,
        ...(path ? { quic_rtt_ms: path.rtt, quic_cwnd_bytes: path.cwnd } : {}),
      };
      return { ...summary, transport };
    },
    close: () => client.destroy({ force: true }),
  };
}

/** The parts of quiche's connection (not in the library's types) the sender reads its counters from. */
interface QuicheCounters {
  stats(): { sent: number; lost: number };
  /** rtt in milliseconds, cwnd in bytes. */
  pathStats(): { rtt: number; cwnd: number }[];
}
const quicheOf = (client: QUICClient) => (client.connection as unknown as { conn: QuicheCounters }).conn;

/** The same round trips over TLS/TCP: ClientFrame requests matched to ServerFrame responses by id. */
export async function tlsRoundTripper(at: Endpoint): Promise<RoundTripper> {
  const socket = await openTls(at);
  const pending = new Map<number, { resolve(): void; reject(err: Error): void }>();
  const decoder = new FrameDecoder();
  let nextId = 1;
  const failAll = (err: Error) => {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  socket.on('data', (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) {
      const decoded = ServerFrame.decode(frame);
      if (decoded.kind?.$case !== 'response') continue;
      const { id, status } = decoded.kind.value;
      const p = pending.get(id);
      pending.delete(id);
      if (status?.code === UNIMPLEMENTED) p?.resolve();
      else p?.reject(new Error(`answered ${status?.code}, not UNIMPLEMENTED`));
    }
  });
  socket.on('close', () => failAll(new Error('the TLS connection closed')));
  socket.on('error', (err) => failAll(err));
  return {
    roundTrip(payload) {
      const id = nextId++;
      const bytes = ClientFrame.encode({
        kind: { $case: 'request', value: { id, method: UNROUTED_METHOD, payload } },
      }).finish();
      return new Promise<void>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        socket.write(encodeFrame(bytes));
      });
    },
    async close() {
      socket.destroy();
    },
  };
}

/** The same one-way frames over TLS/TCP; a new connection per sendUntil (TCP has one stream). */
export async function tlsFrameSender(at: Endpoint): Promise<FrameSender> {
  return {
    async sendUntil(payload, until) {
      const socket = await openTls(at);
      try {
        const decoder = new FrameDecoder();
        const summary = new Promise<SinkSummary>((resolve, reject) => {
          socket.on('data', (chunk: Buffer) => {
            const [frame] = decoder.push(chunk);
            if (frame) resolve(decodeSummary(frame));
          });
          socket.once('close', () => reject(new Error('the TLS sink closed without a summary')));
          socket.once('error', reject);
        });
        summary.catch(() => undefined); // awaited below
        const closed = once(socket, 'close');
        closed.catch(() => undefined);
        const frame = encodeFrame(payload);
        do {
          for (let i = 0; i < BATCH; i++) {
            if (!socket.write(frame)) await Promise.race([once(socket, 'drain'), closed]);
          }
        } while (performance.now() < until && !socket.destroyed);
        socket.end();
        return await summary;
      } finally {
        socket.destroy();
      }
    },
    async close() {},
  };
}

async function openTls(at: Endpoint): Promise<TLSSocket> {
  const socket = connect({ host: '127.0.0.1', port: at.port, ca: at.ca, servername: 'localhost' });
  // No Nagle, as QUIC sends at once: a lone request must not wait for a delayed ACK.
  socket.setNoDelay(true);
  const timer = setTimeout(() => socket.destroy(new Error('TLS handshake timed out')), CONNECT_TIMEOUT_MS);
  try {
    await once(socket, 'secureConnect');
  } finally {
    clearTimeout(timer);
  }
  return socket;
}

/**
 * Round trips done in `ms` with `inFlight` requests outstanding at all times (a closed loop: each
 * answer sends the next request). Stops sending at the deadline and waits for the last answers.
 */
export async function closedLoop(rt: RoundTripper, payload: Uint8Array, inFlight: number, ms: number): Promise<number> {
  const until = performance.now() + ms;
  let done = 0;
  const worker = async () => {
    while (performance.now() < until) {
      await rt.roundTrip(payload);
      done++;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return done / ((performance.now() - start) / 1000);
}
