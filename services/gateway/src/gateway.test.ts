/**
 * The gateway in this process against real NATS and real QUIC clients, with no backends running:
 * everything the gateway decides on its own (routing, session gate, limits, protocol violations,
 * drain) without auth, keypackage or delivery. network.test.ts covers the paths through them.
 */
import { QUICClient } from '@matrixai/quic';
import { AuthServiceService, BlobServiceService, ClientFrame, DeliveryServiceService, ServerFrame } from '@qpq/proto';
import { freeTcpPort, makeDevCerts, metricValue, type NatsHandle, startNats, waitFor } from '@qpq/testnet';
import {
  clientCrypto,
  CloseCode,
  ConnectionClosedError,
  GatewayConnection,
  quicLogger,
  quicTransportConfig,
  RpcError,
  StatusCode,
} from '@qpq/wire';
import { RawQuicClient } from '@qpq/wire/testing';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { GatewayConfig } from './config.js';
import { GatewayService } from './index.js';

process.env.QPQ_LOG_LEVEL ??= 'warn';

const MAX_FRAME = 64 * 1024;
const IN_FLIGHT = 2;

const withTimeout = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([
    p,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms).unref()),
  ]);

describe('gateway without backends', () => {
  let dir: string;
  let nats: NatsHandle;
  let gateway: GatewayService;
  let ca: string;
  let port: number;
  const clients: GatewayConnection[] = [];
  const connect = async () => {
    const c = await GatewayConnection.connect({
      host: '127.0.0.1',
      port,
      ca,
      timeoutMs: 5_000,
      maxFrameBytes: MAX_FRAME,
    });
    clients.push(c);
    return c;
  };
  const expectStatus = async (p: Promise<unknown>, code: number, message: RegExp) =>
    assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof RpcError, String(err));
      assert.equal(err.code, code, `${err.code}: ${err.message}`);
      assert.match(err.message, message);
      return true;
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'qpq-gateway-'));
    const [certs, natsHandle, deadPort] = await Promise.all([
      makeDevCerts(join(dir, 'certs'), ['gateway', 'edge']),
      startNats({ dir: join(dir, 'nats') }),
      freeTcpPort(),
    ]);
    nats = natsHandle;
    ca = readFileSync(certs.caPath, 'utf8');
    const internal = certs.files('gateway');
    const edge = certs.files('edge');
    const nowhere = `127.0.0.1:${deadPort}`;
    const cfg: GatewayConfig = {
      listen: { host: '127.0.0.1', port: 0 },
      metricsListen: { host: '127.0.0.1', port: 0 },
      drainTimeoutMs: 3_000,
      rpcTimeoutMs: 1_500,
      domain: 'localhost',
      maxMessageBytes: 1024 * 1024,
      tls: internal,
      edgeTls: { cert: edge.cert, key: edge.key },
      backends: { auth: nowhere, keypackage: nowhere, delivery: nowhere, ktlog: nowhere, blob: nowhere },
      natsUrl: nats.url,
      maxFrameBytes: MAX_FRAME,
      sessionCacheTtlMs: 10_000,
      maxConnections: 100,
      maxRequestsInFlight: IN_FLIGHT,
      idleTimeoutMs: 30_000,
      maxFileStreams: 4,
      fileStreamTimeoutMs: 60_000,
    };
    gateway = await (await GatewayService.create(cfg)).start();
    port = Number(gateway.quicAddress.split(':').pop());
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await gateway?.stop();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('/readyz says ready and /metrics counts connections', async () => {
    const ready = await fetch(`http://${gateway.httpAddress}/readyz`);
    assert.equal(ready.status, 200);
    const c = await connect();
    // The gateway counts a connection once its side of the handshake is done; a request proves it.
    await expectStatus(c.request('/x/y', new Uint8Array()), StatusCode.UNIMPLEMENTED, /unknown method/);
    const metrics = await (await fetch(`http://${gateway.httpAddress}/metrics`)).text();
    assert.match(metrics, /^qpq_gateway_connections(\{[^}]*\})? [1-9]/m, metrics);
    assert.match(metrics, /^qpq_gateway_frames_total\{[^}]*direction="in"[^}]*\} [1-9]/m);
  });

  test('an unknown method is answered UNIMPLEMENTED, and ValidateSession is not callable', async () => {
    const c = await connect();
    await expectStatus(
      c.request('/qpq.v1.Nope/Nothing', new Uint8Array()),
      StatusCode.UNIMPLEMENTED,
      /^unknown method \/qpq\.v1\.Nope\/Nothing$/,
    );
    await expectStatus(
      c.request(AuthServiceService.validateSession.path, new Uint8Array()),
      StatusCode.UNIMPLEMENTED,
      /unknown method/,
    );
  });

  test('file transfers are not requests: streaming BlobService methods are unknown, its unary ones need a session', async () => {
    const c = await connect();
    for (const method of [BlobServiceService.upload, BlobServiceService.download]) {
      await expectStatus(c.request(method.path, new Uint8Array()), StatusCode.UNIMPLEMENTED, /^unknown method/);
    }
    for (const method of [BlobServiceService.getUpload, BlobServiceService.deleteBlob]) {
      await expectStatus(
        c.request(method.path, new Uint8Array()),
        StatusCode.UNAUTHENTICATED,
        /attach a session first/,
      );
    }
  });

  test('a method that needs a session is refused before attaching', async () => {
    const c = await connect();
    await expectStatus(
      c.request(DeliveryServiceService.fetch.path, new Uint8Array()),
      StatusCode.UNAUTHENTICATED,
      /^attach a session first$/,
    );
    await expectStatus(
      c.request(AuthServiceService.logout.path, new Uint8Array()),
      StatusCode.UNAUTHENTICATED,
      /attach a session first/,
    );
  });

  test('requests past the in-flight limit get RESOURCE_EXHAUSTED; a down backend gives a plain message', async () => {
    const c = await connect();
    // Auth is not running: these wait for it until the RPC deadline (1.5 s).
    const slow = Array.from({ length: IN_FLIGHT }, () =>
      c.request(AuthServiceService.startLogin.path, new Uint8Array()),
    );
    const settled = slow.map((p) => p.catch((err: unknown) => err));
    await new Promise((r) => setTimeout(r, 100));
    await expectStatus(
      c.request(AuthServiceService.startLogin.path, new Uint8Array()),
      StatusCode.RESOURCE_EXHAUSTED,
      /too many requests in flight/,
    );
    for (const err of await Promise.all(settled)) {
      assert.ok(err instanceof RpcError);
      assert.ok(err.code === StatusCode.DEADLINE_EXCEEDED || err.code === StatusCode.UNAVAILABLE, String(err.code));
      assert.match(err.message, /the account service/);
      assert.doesNotMatch(err.message, /127\.0\.0\.1|ECONNREFUSED/);
    }
  });

  test('a malformed frame closes only that client; others keep being served', async () => {
    const bystander = await connect();
    const raw = await RawQuicClient.connect({ port, ca });
    // Field 1 with wire type 7: not protobuf.
    await raw.sendFrame(Uint8Array.from([0x0f, 0x01]));
    const end = await raw.ended(5_000);
    assert.deepEqual([end.by, end.isApp, end.code], ['peer', true, CloseCode.MALFORMED_FRAME]);
    await expectStatus(bystander.request('/x/y', new Uint8Array()), StatusCode.UNIMPLEMENTED, /unknown method/);
    await raw.destroy();
  });

  test('an empty frame is malformed too', async () => {
    const raw = await RawQuicClient.connect({ port, ca });
    await raw.sendFrame(ClientFrame.encode({ kind: undefined }).finish());
    const end = await raw.ended(5_000);
    assert.equal(end.code, CloseCode.MALFORMED_FRAME);
    await raw.destroy();
  });

  test('an oversized frame closes only that client; others keep being served', async () => {
    const bystander = await connect();
    const raw = await RawQuicClient.connect({ port, ca });
    void raw.sendFrame(new Uint8Array(MAX_FRAME + 1)).catch(() => undefined);
    const end = await raw.ended(5_000);
    assert.deepEqual([end.by, end.isApp, end.code], ['peer', true, CloseCode.FRAME_TOO_LARGE]);
    await expectStatus(bystander.request('/x/y', new Uint8Array()), StatusCode.UNIMPLEMENTED, /unknown method/);
    await raw.destroy();
  });

  test('/metrics counts frame bytes both ways, length prefix included', async () => {
    const metric = (name: string, labels: Record<string, string>) => metricValue(gateway.httpAddress, name, labels);
    const bytesIn = (await metric('qpq_gateway_frame_bytes_total', { direction: 'in' }))!;
    const bytesOut = (await metric('qpq_gateway_frame_bytes_total', { direction: 'out' }))!;
    const responses = (await metric('qpq_gateway_frames_total', { direction: 'out', kind: 'response' })) ?? 0;
    assert.ok(bytesIn !== undefined && bytesOut !== undefined, 'both directions are on /metrics');

    // One request by hand, so its size is known; the answer is an UNIMPLEMENTED response of known size.
    const request = ClientFrame.encode({
      kind: { $case: 'request', value: { id: 7, method: '/x/y', payload: new Uint8Array() } },
    }).finish();
    const response = ServerFrame.encode({
      kind: {
        $case: 'response',
        value: {
          id: 7,
          status: { code: StatusCode.UNIMPLEMENTED, message: 'unknown method /x/y' },
          payload: new Uint8Array(),
        },
      },
    }).finish();
    const raw = await RawQuicClient.connect({ port, ca });
    try {
      await raw.sendFrame(request);
      await waitFor(
        'the response sent',
        async () =>
          (await metric('qpq_gateway_frames_total', { direction: 'out', kind: 'response' })) === responses + 1,
      );
      assert.equal(
        await metric('qpq_gateway_frame_bytes_total', { direction: 'in' }),
        bytesIn + 4 + request.byteLength,
      );
      assert.equal(
        await metric('qpq_gateway_frame_bytes_total', { direction: 'out' }),
        bytesOut + 4 + response.byteLength,
      );
    } finally {
      await raw.destroy();
    }
  });

  test('/metrics counts QUIC failures by kind: handshake, connection, stream', async () => {
    const errors = (kind: string) => metricValue(gateway.httpAddress, 'qpq_gateway_quic_errors_total', { kind });
    const before = {
      handshake: (await errors('handshake'))!,
      connection: (await errors('connection'))!,
      stream: (await errors('stream'))!,
    };
    for (const [kind, n] of Object.entries(before)) assert.ok(n !== undefined, `kind="${kind}" is on /metrics`);
    const RESET = new Error('reset by the test');
    const quicClient = (config: Record<string, unknown> = {}) =>
      QUICClient.createQUICClient(
        {
          host: '127.0.0.1',
          port,
          localHost: '127.0.0.1',
          serverName: 'localhost',
          crypto: clientCrypto,
          config: { ...quicTransportConfig(), ca, verifyPeer: true, ...config },
          // A stream reset with RESET carries error code 7; every other reset, 0 (the library's default).
          reasonToCode: (_type, reason) => (reason === RESET ? 7 : 0),
          logger: quicLogger('test-client'),
        },
        { timer: 5_000 },
      );

    // A client that does not speak qpq/1 fails the handshake (the client itself learns it ~3 s later).
    const refused = quicClient({ applicationProtos: ['not-qpq'] }).then(
      () => assert.fail('the handshake succeeded'),
      () => undefined,
    );
    await waitFor('a handshake error', async () => (await errors('handshake')) === before.handshake + 1);

    // A stream reset with an error code, then the connection closed with a transport error code.
    const client = await quicClient();
    const stream = client.connection.newStream('bidi');
    const writer = stream.writable.getWriter();
    await writer.write(new Uint8Array([0, 0])); // half a length prefix: the gateway sees the stream
    await new Promise((r) => setTimeout(r, 100));
    await writer.abort(RESET);
    await waitFor('a stream error', async () => (await errors('stream')) === before.stream + 1);
    await client.destroy({ isApp: false, errorCode: 1, reason: Buffer.from('internal error'), force: true });
    await waitFor('a connection error', async () => (await errors('connection')) === before.connection + 1);

    // A normal close counts nothing.
    const polite = await connect();
    await expectStatus(polite.request('/x/y', new Uint8Array()), StatusCode.UNIMPLEMENTED, /unknown method/);
    await polite.close();
    await new Promise((r) => setTimeout(r, 200));
    await refused;
    assert.deepEqual(
      { handshake: await errors('handshake'), connection: await errors('connection'), stream: await errors('stream') },
      { handshake: before.handshake + 1, connection: before.connection + 1, stream: before.stream + 1 },
    );
  });

  // Last: it stops the gateway.
  test('stop() drains: /readyz turns 503, requests in flight are answered, then clients get SHUTTING_DOWN', async () => {
    const c = await connect();
    await expectStatus(c.request('/x/y', new Uint8Array()), StatusCode.UNIMPLEMENTED, /unknown method/);
    const closed = new Promise<Error | undefined>((resolve) => c.onClose(resolve));
    // In flight until the backend deadline (1.5 s): the drain must wait for its answer.
    const inFlight = c.request(AuthServiceService.startLogin.path, new Uint8Array()).catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const stopping = gateway.stop();
    const readyz = await fetch(`http://${gateway.httpAddress}/readyz`);
    assert.equal(readyz.status, 503);
    const answer = await inFlight;
    assert.ok(answer instanceof RpcError);
    assert.match(answer.message, /the account service/, 'answered by the gateway, not cut off by the close');
    await stopping;
    assert.ok(Date.now() - started < 3_000 + 1_500, 'drain stays within QPQ_DRAIN_TIMEOUT');
    const reason = await withTimeout(closed, 5_000, 'client close');
    assert.ok(reason instanceof ConnectionClosedError, String(reason));
    assert.equal(reason.closeCode, CloseCode.SHUTTING_DOWN);
  });
});
