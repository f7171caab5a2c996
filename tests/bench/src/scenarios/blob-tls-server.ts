// The server end of the TLS baselines (tls.upload, tls.download), run as its own process by
// blob-tls-baseline.ts so that, like the gateway, it encrypts and decrypts on a core of its own
// rather than sharing the benchmark's event loop. Not a scenario: a tiny program.
//
// The protocol is in blob-tls-protocol.ts. The server writes in 64 KiB writes honouring
// backpressure, as the client does. Prints its port on stdout; exits when its stdin closes (the
// benchmark ended or died). Certificate and key: the files named by BENCH_TLS_CERT and BENCH_TLS_KEY.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type TLSSocket } from 'node:tls';
import { ACK, HEADER_BYTES, OP_DOWNLOAD, OP_UPLOAD } from './blob-tls-protocol.js';

const WRITE_BYTES = 64 * 1024;

/** The bytes of the last upload, sent back by a download. */
let kept: Buffer = Buffer.alloc(0);

function serve(socket: TLSSocket): void {
  let header = Buffer.alloc(0);
  let length = -1;
  const parts: Buffer[] = [];
  let received = 0;
  const fail = (why: string) => {
    process.stderr.write(`tls baseline server: ${why}\n`);
    socket.destroy();
  };
  // A client that closes at once after its last byte may reset the connection: harmless, and the
  // client checks everything that matters (its download counted and hashed, its upload answered).
  socket.on('error', () => undefined);
  // No Nagle: the last piece and the one-byte answer must not wait for a delayed ACK (40 ms).
  socket.setNoDelay(true);
  socket.on('data', (chunk: Buffer) => {
    let data = chunk;
    if (length < 0) {
      header = Buffer.concat([header, data]);
      if (header.length < HEADER_BYTES) return;
      const op = header[0];
      length = Number(header.readBigUInt64BE(1));
      data = header.subarray(HEADER_BYTES);
      if (op === OP_DOWNLOAD) {
        if (length !== kept.length) return fail(`download of ${length} bytes, but ${kept.length} are kept`);
        void sendKept(socket).catch((err: unknown) => fail(String(err)));
        return;
      }
      if (op !== OP_UPLOAD) return fail(`unknown op ${op}`);
    }
    if (data.length === 0) return;
    parts.push(data);
    received += data.length;
    if (received > length) return fail(`upload sent ${received} bytes, more than the ${length} announced`);
    if (received === length) {
      socket.end(Buffer.of(ACK));
      kept = Buffer.concat(parts);
      parts.length = 0;
    }
  });
}

async function sendKept(socket: TLSSocket): Promise<void> {
  // A client that went away never drains: stop sending then.
  const closed = once(socket, 'close');
  closed.catch(() => undefined);
  for (let at = 0; at < kept.length; at += WRITE_BYTES) {
    if (!socket.write(kept.subarray(at, at + WRITE_BYTES))) {
      await Promise.race([once(socket, 'drain'), closed]);
      if (socket.destroyed) return;
    }
  }
  socket.end();
}

const cert = readFileSync(process.env.BENCH_TLS_CERT ?? '');
const key = readFileSync(process.env.BENCH_TLS_KEY ?? '');
const server = createServer({ cert, key }, serve);
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  process.stdout.write(`${address.port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
