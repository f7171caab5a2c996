// The measured path of blob.upload and blob.download: the whole system started as processes
// (@qpq/testnet's TestNetwork: Postgres, NATS, every service, the gateway) and one raw client
// connection to the gateway, registered, logged in and attached by hand, that moves blobs on QUIC
// file streams (gateway → BlobService over gRPC streaming → storage).
import { SessionServiceService } from '@qpq/proto';
import { callGateway, gatewayCaller, opaqueLogin, opaqueRegister, TestNetwork } from '@qpq/testnet';
import { GatewayConnection } from '@qpq/wire';
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchContext } from '../scenario.js';
import { piecesOf } from './blob-pieces.js';

const USERNAME = 'bench';
const PASSWORD = 'bench password, not a secret';
const CONNECT_TIMEOUT_MS = 10_000;

export interface BlobNetwork {
  readonly net: TestNetwork;
  /** Uploads `data` (its SHA-256 `sha256`) in `pieceBytes` pieces; seconds until the answer, and the blob id. */
  upload(data: Uint8Array, sha256: Buffer, pieceBytes: number): Promise<{ seconds: number; blobId: string }>;
  /** Downloads blob `blobId` whole, hashing as it goes; seconds until the last byte. Throws unless it is `sha256`. */
  download(blobId: string, size: number, sha256: Buffer, signal: AbortSignal): Promise<number>;
  /** Closes the connection and stops the whole network. Idempotent. */
  stop(): Promise<void>;
}

/** Starts the network (logs under `ctx.logDir/blob`) and a logged-in, attached client connection. */
export async function startBlobNetwork(ctx: BenchContext): Promise<BlobNetwork> {
  ctx.progress('blob: starting the whole system (Postgres, NATS, every service, a gateway)');
  const started = performance.now();
  // Our own folder (a network's own would stay behind, empty, with its logs kept elsewhere); Postgres
  // runs as user `postgres` when we are root and must be able to enter it.
  const dir = await mkdtemp(join(tmpdir(), 'qpq-bench-blob-'));
  await chmod(dir, 0o711);
  const creating = TestNetwork.create({ dir, logDir: join(ctx.logDir, 'blob'), signal: ctx.signal });
  // Owned before it is up: on Ctrl-C during start-up the run waits for create() to stop what it started.
  const stopNetwork = ctx.own(async () => {
    try {
      await (await creating.catch(() => undefined))?.destroy();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  let conn: GatewayConnection | undefined;
  const closeConnection = ctx.own(async () => conn?.close());
  const stop = async () => {
    await closeConnection();
    await stopNetwork();
  };
  try {
    const net = await creating;
    ctx.progress(`blob: system up in ${((performance.now() - started) / 1000).toFixed(1)} s; logging in by hand`);
    const address = net.gatewayAddresses[0]!;
    const colon = address.lastIndexOf(':');
    conn = await GatewayConnection.connect({
      host: address.slice(0, colon),
      port: Number(address.slice(colon + 1)),
      ca: readFileSync(net.caPath, 'utf8'),
      timeoutMs: CONNECT_TIMEOUT_MS,
    });
    const call = gatewayCaller(conn);
    await opaqueRegister(call, USERNAME, PASSWORD);
    const login = await opaqueLogin(call, USERNAME, PASSWORD);
    await callGateway(conn, SessionServiceService.attach, { sessionToken: login.sessionToken });
    const connection = conn;

    return {
      net,
      async upload(data, sha256, pieceBytes) {
        const start = performance.now();
        const answer = await connection.uploadFile(
          { uploadId: randomUUID(), size: BigInt(data.length), sha256, expiresAtMs: 0n, offset: 0n },
          piecesOf(data, pieceBytes),
        );
        const seconds = (performance.now() - start) / 1000;
        const expected = sha256.toString('hex');
        if (!answer.complete || answer.blobId !== expected) {
          throw new Error(
            `the upload was answered complete=${answer.complete} blob_id=${answer.blobId || '""'} ` +
              `stored=${answer.stored}; expected a complete blob ${expected} of ${data.length} bytes`,
          );
        }
        return { seconds, blobId: answer.blobId };
      },
      async download(blobId, size, sha256, signal) {
        const hash = createHash('sha256');
        let received = 0;
        const start = performance.now();
        const { info, bytes } = await connection.downloadFile({ blobId, offset: 0n });
        if (info.size !== BigInt(size)) throw new Error(`blob ${blobId} is ${info.size} bytes, not ${size}`);
        for await (const chunk of bytes) {
          signal.throwIfAborted();
          hash.update(chunk);
          received += chunk.length;
        }
        const seconds = (performance.now() - start) / 1000;
        if (received !== size) throw new Error(`the download of ${blobId} gave ${received} bytes of ${size}`);
        if (!hash.digest().equals(sha256)) throw new Error(`the download of ${blobId} is not the bytes uploaded`);
        return seconds;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
