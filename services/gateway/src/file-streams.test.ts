/**
 * The gateway in this process in front of the real auth and blob services (Postgres, NATS, mutual
 * TLS) and real QUIC clients: file bytes on file streams of their own, streamed to and from the
 * blob service.
 */
import { AuthService, authEnv, envToConfig as authConfig } from '@qpq/auth';
import { BlobService, blobEnv, envToConfig as blobConfig, type BlobConfig } from '@qpq/blob';
import {
  AuthServiceService as Auth,
  BlobServiceService as Blob,
  SessionServiceService as Session,
  type UploadBegin,
} from '@qpq/proto';
import { readEnv } from '@qpq/runtime';
import {
  callGateway as call,
  freeTcpPort,
  gatewayCaller,
  opaqueLogin,
  opaqueRegister,
  ServiceTestBed,
  waitFor,
} from '@qpq/testnet';
import { CloseCode, ConnectionClosedError, GatewayConnection, RpcError, StatusCode } from '@qpq/wire';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { GatewayConfig } from './config.js';
import { GatewayService } from './index.js';

process.env.QPQ_LOG_LEVEL ??= 'warn';

const MiB = 1024 * 1024;
const MAX_FILE_STREAMS = 2;

async function expectStatus(p: Promise<unknown>, code: number, message: RegExp): Promise<RpcError> {
  let caught: RpcError | undefined;
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof RpcError, String(err));
    assert.equal(err.code, code, `${err.code}: ${err.message}`);
    assert.match(err.message, message);
    caught = err;
    return true;
  });
  return caught!;
}

/** A full garbage collection on demand (the test runner starts node without --expose-gc). */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest();

/** `bytes` from `from` in pieces of `piece` bytes, as a file read would hand them over. */
async function* piecesOf(bytes: Uint8Array, from = 0, piece = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let at = from; at < bytes.byteLength; at += piece)
    yield bytes.subarray(at, Math.min(at + piece, bytes.byteLength));
}

/** An upload of all of `bytes` under a new upload id. */
const beginOf = (bytes: Uint8Array): UploadBegin => ({
  uploadId: randomUUID(),
  size: BigInt(bytes.byteLength),
  sha256: sha256(bytes),
  expiresAtMs: 0n,
  offset: 0n,
});

/** The downloaded bytes' SHA-256 and count, without keeping them. */
async function digestOf(bytes: AsyncIterable<Uint8Array>): Promise<{ hex: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of bytes) {
    hash.update(chunk);
    size += chunk.byteLength;
  }
  return { hex: hash.digest('hex'), size };
}

// About 80 MiB cross this QUIC stack at 1–2 MiB/s (the library's own cost, see docs/architecture.md):
// about four minutes on an idle 2-core machine, more when it is shared (scripts/test.mjs allows 15).
describe('gateway file streams', { timeout: 900_000 }, () => {
  let bed: ServiceTestBed;
  let auth: AuthService;
  let blob: BlobService;
  let blobCfg: BlobConfig;
  let gateway: GatewayService;
  let ca: string;
  let port: number;
  const clients: GatewayConnection[] = [];

  const connect = async () => {
    const c = await GatewayConnection.connect({ host: '127.0.0.1', port, ca, timeoutMs: 5_000 });
    clients.push(c);
    return c;
  };

  /** A new account's device, attached on a new connection; answers the connection and its token. */
  const attachedDevice = async () => {
    const c = await connect();
    const username = `file${randomBytes(4).toString('hex')}`;
    await opaqueRegister(gatewayCaller(c), username, 'pw');
    const { sessionToken } = await opaqueLogin(gatewayCaller(c), username, 'pw');
    await call(c, Session.attach, { sessionToken });
    return { conn: c, sessionToken };
  };

  before(async () => {
    bed = await ServiceTestBed.create({
      service: 'auth',
      certNames: ['edge', 'blob'],
      env: { QPQ_DOMAIN: 'localhost' },
    });
    ({ service: auth } = await bed.startService(() => AuthService.create(authConfig(readEnv(authEnv, bed.env())))));
    const blobTls = bed.certs.files('blob');
    // The same database as auth; the blob service keeps to its own schema.
    blobCfg = blobConfig(readEnv(blobEnv, bed.env({ QPQ_TLS_CERT: blobTls.cert, QPQ_TLS_KEY: blobTls.key })));
    blob = await (await BlobService.create(blobCfg)).start();
    const nowhere = `127.0.0.1:${await freeTcpPort()}`;
    const edge = bed.certs.files('edge');
    const cfg: GatewayConfig = {
      listen: { host: '127.0.0.1', port: 0 },
      metricsListen: { host: '127.0.0.1', port: 0 },
      // Room for the upload the drain test lets finish.
      drainTimeoutMs: 60_000,
      rpcTimeoutMs: 5_000,
      domain: 'localhost',
      maxMessageBytes: 1024 * 1024,
      tls: bed.certs.files('gateway'),
      edgeTls: { cert: edge.cert, key: edge.key },
      backends: {
        auth: auth.grpcAddress,
        keypackage: nowhere,
        delivery: nowhere,
        ktlog: nowhere,
        blob: blob.grpcAddress,
      },
      natsUrl: bed.nats.url,
      maxFrameBytes: 1024 * 1024,
      sessionCacheTtlMs: 10_000,
      maxConnections: 100,
      maxRequestsInFlight: 16,
      idleTimeoutMs: 30_000,
      maxFileStreams: MAX_FILE_STREAMS,
      fileStreamTimeoutMs: 5 * 60_000,
    };
    gateway = await (await GatewayService.create(cfg)).start();
    port = Number(gateway.quicAddress.split(':').pop());
    ca = readFileSync(bed.certs.caPath, 'utf8');
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await gateway?.stop();
    await blob?.stop();
    await bed?.destroy(() => auth?.stop());
  });

  test('20 MiB up and down byte-identical, with requests answered on the same connection meanwhile', async (t) => {
    const { conn } = await attachedDevice();
    const file = randomBytes(20 * MiB);
    const begin = beginOf(file);

    let sent = 0;
    let uploading = true;
    const startedUp = performance.now();
    const uploaded = conn
      .uploadFile(begin, piecesOf(file), { onSent: (n) => (sent = n) })
      .finally(() => (uploading = false));
    await waitFor('the upload under way', () => sent >= 2 * MiB, 30_000);
    const during = performance.now();
    const devices = await call(conn, Auth.listDevices, {});
    const requestMs = performance.now() - during;
    assert.equal(devices.devices.length, 1);
    assert.ok(uploading, 'the request was answered while the upload was still going');
    const answer = await uploaded;
    const upSeconds = (performance.now() - startedUp) / 1000;
    assert.deepEqual(answer, {
      blobId: Buffer.from(begin.sha256).toString('hex'),
      complete: true,
      stored: begin.size,
      expiresAtMs: answer.expiresAtMs,
    });
    assert.ok(answer.expiresAtMs > BigInt(Date.now()));
    assert.equal(sent, file.byteLength);

    const startedDown = performance.now();
    const { info, bytes } = await conn.downloadFile({ blobId: answer.blobId, offset: 0n });
    assert.equal(info.size, begin.size);
    const [downloaded, devicesAgain] = await Promise.all([
      digestOf(bytes),
      call(conn, Auth.listDevices, {}).then((r) => ({ r, at: performance.now() })),
    ]);
    const downSeconds = (performance.now() - startedDown) / 1000;
    assert.equal(devicesAgain.r.devices.length, 1);
    assert.ok(devicesAgain.at - startedDown < downSeconds * 1000, 'answered during the download');
    assert.equal(downloaded.size, file.byteLength);
    assert.equal(downloaded.hex, Buffer.from(begin.sha256).toString('hex'), 'the download is byte-identical');
    t.diagnostic(
      `20 MiB: upload ${(20 / upSeconds).toFixed(1)} MiB/s, download ${(20 / downSeconds).toFixed(1)} MiB/s; ` +
        `a request during the upload took ${requestMs.toFixed(0)} ms`,
    );

    const metrics = await (await fetch(`http://${gateway.httpAddress}/metrics`)).text();
    assert.match(metrics, /^qpq_gateway_file_bytes_total\{[^}]*direction="in"[^}]*\} (\d+)/m);
    const bytesIn = Number(/^qpq_gateway_file_bytes_total\{[^}]*direction="in"[^}]*\} (\d+)/m.exec(metrics)?.[1]);
    assert.ok(bytesIn >= file.byteLength, `file bytes in: ${bytesIn}`);
    assert.match(metrics, /^qpq_gateway_file_streams_total\{[^}]*kind="upload"[^}]*outcome="ok"[^}]*\} [1-9]/m);
    assert.match(metrics, /^qpq_gateway_file_streams_total\{[^}]*kind="download"[^}]*outcome="ok"[^}]*\} [1-9]/m);
    assert.match(metrics, /^qpq_gateway_file_streams(\{[^}]*\})? 0$/m, 'no file stream left open');
  });

  test('a declared size over the limit is refused at once, naming the limit, before the bytes go out', async (t) => {
    const { conn } = await attachedDevice();
    const size = blobCfg.maxBlobBytes + 1;
    let pulled = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      const piece = new Uint8Array(64 * 1024);
      while (pulled < size) {
        pulled += piece.byteLength;
        yield piece;
      }
    }
    const begin: UploadBegin = {
      uploadId: randomUUID(),
      size: BigInt(size),
      sha256: new Uint8Array(32),
      expiresAtMs: 0n,
      offset: 0n,
    };
    const started = performance.now();
    await expectStatus(
      conn.uploadFile(begin, endless()),
      StatusCode.RESOURCE_EXHAUSTED,
      /file too large: the limit is 52,428,800 bytes/,
    );
    const ms = performance.now() - started;
    assert.ok(pulled < 8 * MiB, `the client stopped sending early (${pulled} bytes taken from the file)`);
    assert.ok(ms < 5_000, `refused at once (${ms.toFixed(0)} ms)`);
    t.diagnostic(`refused after ${ms.toFixed(0)} ms, ${pulled} bytes taken from the file`);
    // Nothing of it was kept, and the connection goes on.
    await expectStatus(call(conn, Blob.getUpload, { uploadId: begin.uploadId }), StatusCode.NOT_FOUND, /./);
  });

  test('a file stream without a session is refused UNAUTHENTICATED; the connection goes on', async () => {
    const c = await connect();
    const file = randomBytes(64 * 1024);
    await expectStatus(
      c.uploadFile(beginOf(file), piecesOf(file)),
      StatusCode.UNAUTHENTICATED,
      /attach a session first/,
    );
    await expectStatus(
      c.downloadFile({ blobId: sha256(file).toString('hex'), offset: 0n }),
      StatusCode.UNAUTHENTICATED,
      /attach a session first/,
    );
    await expectStatus(
      call(c, Blob.getUpload, { uploadId: randomUUID() }),
      StatusCode.UNAUTHENTICATED,
      /attach a session first/,
    );
    await opaqueRegister(gatewayCaller(c), `nosess${randomBytes(4).toString('hex')}`, 'pw');
  });

  test(`more than ${MAX_FILE_STREAMS} file streams at once: the extra one is refused RESOURCE_EXHAUSTED`, async () => {
    const { conn } = await attachedDevice();
    const file = randomBytes(6 * MiB);
    const { blobId } = await conn.uploadFile(beginOf(file), piecesOf(file));
    // Downloads whose bytes nobody reads stay open: the gateway waits for the client's window.
    const open = [];
    for (let i = 0; i < MAX_FILE_STREAMS; i++) open.push(await conn.downloadFile({ blobId, offset: 0n }));
    await expectStatus(
      conn.downloadFile({ blobId, offset: 0n }),
      StatusCode.RESOURCE_EXHAUSTED,
      new RegExp(`too many file transfers at once on this connection \\(at most ${MAX_FILE_STREAMS}\\)`),
    );
    for (const d of open) assert.equal((await digestOf(d.bytes)).hex, sha256(file).toString('hex'));
    // Room again once they are done.
    const again = await conn.downloadFile({ blobId, offset: 3n * BigInt(MiB) });
    assert.equal((await digestOf(again.bytes)).hex, sha256(file.subarray(3 * MiB)).toString('hex'));
  });

  test('an upload cut off halfway resumes on a new connection from the stored offset', async (t) => {
    const { conn, sessionToken } = await attachedDevice();
    const file = randomBytes(16 * MiB);
    const begin = beginOf(file);
    let sentBefore = 0;
    await expectStatus(
      conn.uploadFile(begin, piecesOf(file), {
        onSent: (n) => {
          sentBefore = n;
          if (n >= file.byteLength / 2) void conn.close();
        },
      }),
      StatusCode.UNAVAILABLE,
      /closed/,
    );

    const again = await connect();
    await call(again, Session.attach, { sessionToken });
    // The blob service stores what reached it once it sees the call cancelled: wait for it to settle.
    let last = -1n;
    const stored = await waitFor(
      'the stored offset to settle',
      async () => {
        const now = (await call(again, Blob.getUpload, { uploadId: begin.uploadId })).stored;
        const settled = now === last ? now : undefined;
        last = now;
        return settled;
      },
      10_000,
      300,
    );
    assert.ok(stored >= BigInt(file.byteLength / 4), `the first half was mostly stored (${stored} bytes)`);
    assert.ok(stored <= BigInt(sentBefore), `no more stored (${stored}) than was sent (${sentBefore})`);

    let sentAfter = 0;
    const answer = await again.uploadFile({ ...begin, offset: stored }, piecesOf(file, Number(stored)), {
      onSent: (n) => (sentAfter = n),
    });
    assert.equal(answer.complete, true);
    assert.equal(answer.blobId, Buffer.from(begin.sha256).toString('hex'));
    assert.equal(sentAfter, file.byteLength - Number(stored), 'only the rest was sent again');
    const { bytes } = await again.downloadFile({ blobId: answer.blobId, offset: 0n });
    assert.equal((await digestOf(bytes)).hex, answer.blobId);
    t.diagnostic(`cut at ${sentBefore} bytes sent, ${stored} stored; resumed with ${sentAfter} bytes`);
  });

  test('the gateway holds no file: memory stays flat while 50 MiB passes up and down', async (t) => {
    const { conn } = await attachedDevice();
    /** `mebibytes` MiB made of one random MiB: the test itself holds no more than that. */
    const fileOf = (mebibytes: number) => {
      const block = randomBytes(MiB);
      const hash = createHash('sha256');
      for (let i = 0; i < mebibytes; i++) hash.update(block);
      const begin: UploadBegin = {
        uploadId: randomUUID(),
        size: BigInt(mebibytes * MiB),
        sha256: hash.digest(),
        expiresAtMs: 0n,
        offset: 0n,
      };
      async function* bytes(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < mebibytes; i++) {
          for (let at = 0; at < MiB; at += 64 * 1024) yield block.subarray(at, at + 64 * 1024);
        }
      }
      return { begin, bytes };
    };
    const upAndDown = async (mebibytes: number) => {
      const { begin, bytes } = fileOf(mebibytes);
      const answer = await conn.uploadFile(begin, bytes());
      assert.equal(answer.complete, true);
      const download = await conn.downloadFile({ blobId: answer.blobId, offset: 0n });
      const downloaded = await digestOf(download.bytes);
      assert.deepEqual(downloaded, { hex: answer.blobId, size: mebibytes * MiB });
    };

    // A first, smaller transfer settles what any long-running process settles once (compiled code,
    // pools, the allocator's arenas), so what follows is what a transfer costs.
    await upAndDown(10);
    // Garbage swings the heap by far more than what is held, so a full GC every 500 ms lets the samples
    // show what is held: a gateway that kept the file would add 50 MiB by the end of the upload and
    // keep it through the download. What is in flight at once (QUIC stream windows both ends, HTTP/2
    // windows, a blob part) grows with the transfer's speed: ~10 MiB here with client, gateway and
    // services in one process, with peaks of ~28 when a burst is caught between two frames. So the
    // figure is the median of the samples over the last two thirds of the transfer (as
    // tests/integration/files.test.ts reads the services' own after-GC figure), not one sample.
    const gc = collector();
    gc();
    const before = process.memoryUsage();
    // What is held: the JS heap and the buffers' bytes (`external` also counts bytes V8 frees lazily).
    const live = (m: NodeJS.MemoryUsage) => m.heapUsed + m.arrayBuffers;
    let rssPeak = before.rss;
    const liveSamples: number[] = [];
    let samples = 0;
    const sampler = setInterval(() => {
      if (++samples % 10 === 0) {
        gc();
        liveSamples.push(live(process.memoryUsage()));
      }
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }, 50);
    const started = performance.now();
    try {
      await upAndDown(50);
    } finally {
      clearInterval(sampler);
    }
    gc();
    const rssGrowth = (rssPeak - before.rss) / MiB;
    const late = liveSamples.slice(Math.floor(liveSamples.length / 3)).sort((a, b) => a - b);
    assert.ok(late.length >= 3, `only ${liveSamples.length} memory samples were taken`);
    const liveGrowth = ((late[Math.floor(late.length / 2)] as number) - live(before)) / MiB;
    const livePeak = ((late[late.length - 1] as number) - live(before)) / MiB;
    t.diagnostic(
      `50 MiB up and down in ${((performance.now() - started) / 1000).toFixed(0)} s with the gateway, the blob ` +
        `and auth services and the client in this one process: RSS ${(before.rss / MiB).toFixed(0)} MiB before, ` +
        `peak +${rssGrowth.toFixed(1)} MiB, +${((process.memoryUsage().rss - before.rss) / MiB).toFixed(1)} MiB after; ` +
        `JS heap + buffers after each GC, last two thirds (${late.length} samples): median +${liveGrowth.toFixed(1)} MiB, ` +
        `peak +${livePeak.toFixed(1)} MiB`,
    );
    assert.ok(liveGrowth < 24, `live memory grew by ${liveGrowth.toFixed(1)} MiB (median)`);
    assert.ok(rssGrowth < 64, `RSS grew by ${rssGrowth.toFixed(1)} MiB`);
  });

  // Last: it stops the gateway.
  test('a draining gateway lets a running upload finish and refuses new file streams, then closes', async () => {
    const { conn } = await attachedDevice();
    const file = randomBytes(4 * MiB);
    let sent = 0;
    const uploading = conn.uploadFile(beginOf(file), piecesOf(file), { onSent: (n) => (sent = n) });
    await waitFor('the upload under way', () => sent >= MiB, 30_000);
    const closed = new Promise<Error | undefined>((resolve) => conn.onClose(resolve));
    const stopping = gateway.stop();
    await waitFor('the drain', async () => (await fetch(`http://${gateway.httpAddress}/readyz`)).status === 503);
    await expectStatus(
      conn.downloadFile({ blobId: sha256(file).toString('hex'), offset: 0n }),
      StatusCode.UNAVAILABLE,
      /shutting down/,
    );
    const answer = await uploading;
    assert.equal(answer.complete, true, 'the upload under way finished');
    await stopping;
    const reason = await closed;
    assert.ok(reason instanceof ConnectionClosedError, String(reason));
    assert.equal(reason.closeCode, CloseCode.SHUTTING_DOWN);
  });
});
