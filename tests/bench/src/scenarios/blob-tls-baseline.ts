// The baselines of blob.upload and blob.download: the same bytes over TLS over TCP on loopback (a
// connection per transfer, as each file gets a QUIC stream of its own), to a server in its own process
// (blob-tls-server.ts), written in the same 64 KiB pieces. What a plain encrypted byte stream does on
// this machine, without QUIC, the gateway, gRPC or storage.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { addAbortSignal } from 'node:stream';
import { connect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { startChildServer } from '../child-server.js';
import type { BenchContext } from '../scenario.js';
import { withDeadline } from './blob-deadline.js';
import { ACK, OP_DOWNLOAD, OP_UPLOAD, transferHeader } from './blob-tls-protocol.js';

const SERVER_PROGRAM = fileURLToPath(new URL('./blob-tls-server.ts', import.meta.url));
const CONNECT_TIMEOUT_MS = 10_000;

export interface TlsCertFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface TlsBaseline {
  /** The server process. */
  readonly pid: number | undefined;
  /** Negotiated protocol and cipher, e.g. `TLSv1.3 TLS_AES_256_GCM_SHA384`. */
  readonly cipher: string;
  /** Sends `data` in `pieceBytes` writes; seconds from the first byte until the server's answer that all arrived. */
  upload(data: Uint8Array, pieceBytes: number, signal: AbortSignal): Promise<number>;
  /**
   * Has the server send back the last upload (`size` bytes) and reads it all, hashing as it goes;
   * seconds from the request until the last byte. Throws when the bytes are not those uploaded.
   */
  download(size: number, sha256: Buffer, signal: AbortSignal): Promise<number>;
  /** Stops the server process. Idempotent. */
  stop(): Promise<void>;
}

/** Starts the server process with `files`' certificate and key (clients trust `files.ca`, name `localhost`). */
export async function startTlsBaseline(ctx: BenchContext, files: TlsCertFiles): Promise<TlsBaseline> {
  const server = await startChildServer(ctx, SERVER_PROGRAM, {
    what: 'the TLS baseline server',
    env: { BENCH_TLS_CERT: files.cert, BENCH_TLS_KEY: files.key },
  });
  const { stop } = server;
  try {
    const port = Number(server.firstLine);
    const ca = readFileSync(files.ca);
    const open = (signal: AbortSignal) => openConnection(port, ca, signal);

    const probe = await open(ctx.signal);
    const cipher = `${probe.getProtocol() ?? '?'} ${probe.getCipher().standardName}`;
    probe.end();

    return {
      pid: server.pid,
      cipher,
      async upload(data, pieceBytes, signal) {
        const socket = await open(signal);
        try {
          const answered = socketEvent<[Buffer]>(socket, 'data', signal);
          answered.catch(() => undefined); // awaited below; a failure while writing is reported first
          const start = performance.now();
          socket.write(transferHeader(OP_UPLOAD, data.length));
          for (let at = 0; at < data.length; at += pieceBytes) {
            const last = at + pieceBytes >= data.length;
            // Not after the last piece: the server may answer and close before 'drain' is emitted.
            if (!socket.write(data.subarray(at, at + pieceBytes)) && !last) await socketEvent(socket, 'drain', signal);
          }
          const [answer] = await answered;
          const seconds = (performance.now() - start) / 1000;
          if (answer[0] !== ACK) throw new Error(`the TLS baseline server answered ${answer[0]}, not ${ACK}`);
          return seconds;
        } finally {
          socket.destroy();
        }
      },
      async download(size, sha256, signal) {
        const socket = await open(signal);
        try {
          const hash = createHash('sha256');
          let received = 0;
          let seconds = NaN;
          const start = performance.now();
          socket.write(transferHeader(OP_DOWNLOAD, size));
          addAbortSignal(signal, socket);
          // Read on to the server's end (not timed), so that the connection closes cleanly.
          for await (const chunk of socket) {
            hash.update(chunk as Buffer);
            received += (chunk as Buffer).length;
            if (received >= size && Number.isNaN(seconds)) seconds = (performance.now() - start) / 1000;
          }
          if (received !== size) throw new Error(`the TLS baseline download gave ${received} bytes of ${size}`);
          if (!hash.digest().equals(sha256)) throw new Error('the TLS baseline download is not the bytes uploaded');
          return seconds;
        } finally {
          socket.destroy();
        }
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function openConnection(port: number, ca: Buffer, signal: AbortSignal): Promise<TLSSocket> {
  const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
  // No Nagle: the last piece must not wait for a delayed ACK (40 ms), as the server's answer doesn't.
  socket.setNoDelay(true);
  try {
    await withDeadline(signal, CONNECT_TIMEOUT_MS, 'a TLS handshake', (s) => socketEvent(socket, 'secureConnect', s));
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return socket;
}

/**
 * The next `event` of `socket`, with its arguments. Unlike events.once it fails when the connection
 * closes first ('drain' is never emitted on a closed socket), as well as on 'error' and on `signal`.
 */
function socketEvent<A extends unknown[] = unknown[]>(
  socket: TLSSocket,
  event: string,
  signal: AbortSignal,
): Promise<A> {
  return new Promise<A>((resolve, reject) => {
    const settle = (fn: () => void) => {
      socket.off(event, onEvent);
      socket.off('error', onError);
      socket.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      fn();
    };
    const onEvent = (...args: unknown[]) => settle(() => resolve(args as A));
    const onError = (err: Error) => settle(() => reject(err));
    const onClose = () =>
      settle(() => reject(new Error(`the TLS baseline connection closed while waiting for ${event}`)));
    const onAbort = () => settle(() => reject(signal.reason));
    if (signal.aborted) return onAbort();
    socket.on(event, onEvent);
    socket.once('error', onError);
    socket.once('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
