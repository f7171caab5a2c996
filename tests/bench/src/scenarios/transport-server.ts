// The server end of the transport scenarios, run as its own process (as the gateway runs) by
// transport.ts: QUIC listeners built exactly as the gateway's edge (libs/wire quicTransportConfig,
// serverCrypto, FrameStream on each stream) and TLS-over-TCP listeners with the same framing. The
// protocol is in transport-protocol.ts. Not a scenario: a tiny program. Prints its ports as a JSON
// line; exits when its stdin closes. Certificate and key: BENCH_TLS_CERT and BENCH_TLS_KEY.
import { events, QUICServer, type QUICConnection, type QUICStream } from '@matrixai/quic';
import { FrameDecoder, FrameStream, encodeFrame, on, quicLogger, quicTransportConfig, serverCrypto } from '@qpq/wire';
import { readFileSync } from 'node:fs';
import { createServer, type TLSSocket } from 'node:tls';
import { answerRequest, encodeSummary, type TransportPorts } from './transport-protocol.js';

type Mode = 'rpc' | 'sink';

const cert = readFileSync(process.env.BENCH_TLS_CERT ?? '', 'utf8');
const key = readFileSync(process.env.BENCH_TLS_KEY ?? '', 'utf8');
const fail = (why: unknown) => process.stderr.write(`transport server: ${String(why)}\n`);

/** One frame stream on QUIC: answering requests (rpc) or counting frames (sink). */
function serveQuicStream(stream: QUICStream, mode: Mode): void {
  let frames = 0;
  let bytes = 0;
  const fs: FrameStream = new FrameStream(stream, {
    onFrame: (frame) => {
      if (mode === 'rpc') {
        fs.send(answerRequest(frame)).catch(fail);
      } else {
        frames++;
        bytes += frame.byteLength;
      }
    },
    onEnd: (end) => {
      // An rpc client ends its run by closing its connection at once (streams end in error): only a
      // sink's stream must end cleanly, with the summary still to send.
      if (end.kind !== 'eof') return mode === 'sink' ? fail(`stream ended: ${end.kind}`) : undefined;
      if (mode === 'sink') fs.send(encodeSummary({ frames, bytes })).catch(fail);
      void fs.closeWrite();
    },
  });
}

async function quicServer(mode: Mode): Promise<number> {
  const server = new QUICServer({
    crypto: serverCrypto(),
    config: { ...quicTransportConfig(), key, cert, verifyPeer: false },
    logger: quicLogger(`bench-${mode}`),
  });
  on(server, events.EventQUICServerConnection, (e) => {
    const conn: QUICConnection = e.detail;
    on(conn, events.EventQUICConnectionStream, (s) => serveQuicStream(s.detail, mode));
  });
  await server.start({ host: '127.0.0.1', port: 0 });
  return server.port;
}

/** One TLS connection of frames, as serveQuicStream. */
function serveTls(socket: TLSSocket, mode: Mode): void {
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  const decoder = new FrameDecoder();
  let frames = 0;
  let bytes = 0;
  socket.on('data', (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) {
      if (mode === 'rpc') {
        socket.write(encodeFrame(answerRequest(frame)));
      } else {
        frames++;
        bytes += frame.byteLength;
      }
    }
  });
  socket.on('end', () => {
    if (mode === 'sink') socket.end(encodeFrame(encodeSummary({ frames, bytes })));
    else socket.end();
  });
}

function tlsServer(mode: Mode): Promise<number> {
  // allowHalfOpen: the sink answers after the client's end.
  const server = createServer({ cert, key, allowHalfOpen: true }, (socket) => serveTls(socket, mode));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('no TCP address'));
      resolve(address.port);
    });
  });
}

const [quicRpc, quicSink, tlsRpc, tlsSink] = await Promise.all([
  quicServer('rpc'),
  quicServer('sink'),
  tlsServer('rpc'),
  tlsServer('sink'),
]);
const ports: TransportPorts = { quicRpc, quicSink, tlsRpc, tlsSink };
process.stdout.write(`${JSON.stringify(ports)}\n`);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
