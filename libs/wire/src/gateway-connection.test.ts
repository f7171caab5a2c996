import { QUICServer, events, type QUICConnection } from '@matrixai/quic';
import { ClientFrame, Push, ServerFrame } from '@qpq/proto';
import { makeDevCerts } from '@qpq/testnet';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CloseCode } from './close-codes.js';
import { connectionEnd, on, type ConnectionEnd } from './events.js';
import { FrameStream } from './frame-stream.js';
import { ConnectionClosedError, GatewayConnectError, GatewayConnection } from './gateway-connection.js';
import { encodeServerPushFrame } from './push-frame.js';
import { quicLogger, quicTransportConfig, serverCrypto } from './quic-config.js';
import { RpcError, StatusCode } from './rpc-error.js';

const MAX_FRAME = 64 * 1024;
const text = (b: Uint8Array) => Buffer.from(b).toString();
const bytes = (s: string) => new Uint8Array(Buffer.from(s));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A small gateway stand-in speaking the real protocol: one stream per connection, ClientFrame in,
 * ServerFrame out. Methods: "echo" (answers after an optional delay in ms given as "delay:N|text"),
 * "fail" (NOT_FOUND), "push" (pushes KeyPackagesLow, then answers), "silent" (never answers).
 * Oversized frames close only that connection with FRAME_TOO_LARGE.
 */
class TestServer {
  readonly connections = new Set<QUICConnection>();
  readonly streams = new Map<QUICConnection, FrameStream>();
  /** How each connection ended, as the server saw it. */
  readonly ends: ConnectionEnd[] = [];
  private constructor(readonly server: QUICServer) {}

  static async start(certPem: string, keyPem: string): Promise<TestServer> {
    const server = new QUICServer({
      crypto: serverCrypto(),
      config: { ...quicTransportConfig(), key: keyPem, cert: certPem, verifyPeer: false },
      logger: quicLogger('TestServer'),
    });
    const ts = new TestServer(server);
    on(server, events.EventQUICServerConnection, (e) => ts.accept(e.detail));
    await server.start({ host: '127.0.0.1', port: 0 });
    return ts;
  }

  get port(): number {
    return this.server.port;
  }

  /** Closes one connection gracefully the way a draining gateway does: FIN, then SHUTTING_DOWN. */
  async drain(conn: QUICConnection): Promise<void> {
    await this.streams.get(conn)?.closeWrite();
    await conn.stop({ isApp: true, errorCode: CloseCode.SHUTTING_DOWN, reason: Buffer.from('drain'), force: true });
  }

  async stop(): Promise<void> {
    await this.server.stop({ force: true });
  }

  private accept(conn: QUICConnection): void {
    this.connections.add(conn);
    on(conn, events.EventQUICConnectionStopped, () => this.connections.delete(conn), { once: true });
    on(conn, events.EventQUICConnectionError, (e) => this.ends.push(connectionEnd(e.detail)), { once: true });
    on(conn, events.EventQUICConnectionStream, (e) => {
      const frames: FrameStream = new FrameStream(e.detail, {
        maxFrameBytes: MAX_FRAME,
        onFrame: (frame) => this.answer(frames, frame),
        onEnd: (end) => {
          if (end.kind === 'frame-too-large') {
            void conn.stop({
              isApp: true,
              errorCode: CloseCode.FRAME_TOO_LARGE,
              reason: Buffer.from(end.error.message),
              force: true,
            });
          }
        },
      });
      this.streams.set(conn, frames);
    });
  }

  private answer(frames: FrameStream, bytes: Uint8Array): void {
    const frame = ClientFrame.decode(bytes);
    if (frame.kind?.$case !== 'request') return;
    const { id, method, payload } = frame.kind.value;
    const respond = (code: number, message: string, out: Uint8Array = new Uint8Array()) =>
      void frames
        .send(
          ServerFrame.encode({
            kind: { $case: 'response', value: { id, status: { code, message }, payload: out } },
          }).finish(),
        )
        .catch(() => undefined);
    if (method === 'echo') {
      const m = /^delay:(\d+)\|/.exec(text(payload));
      setTimeout(() => respond(0, '', payload), m ? Number(m[1]) : 0);
    } else if (method === 'garbage') {
      void frames.send(Uint8Array.from([0x0f, 0x0f, 0x0f]));
    } else if (method === 'fail') {
      respond(StatusCode.NOT_FOUND, 'no such user: carol');
    } else if (method === 'push') {
      const push = Push.encode({
        kind: { $case: 'keyPackagesLow', value: { oneTimeRemaining: 3, lowWaterMark: 10 } },
      }).finish();
      void frames.send(encodeServerPushFrame(push));
      respond(0, '');
    } else if (method !== 'silent') {
      respond(StatusCode.UNIMPLEMENTED, `unknown method ${method}`);
    }
  }
}

describe('GatewayConnection against a real QUIC server', () => {
  let dir: string;
  let ca: string;
  let otherCa: string;
  let server: TestServer;
  const open: GatewayConnection[] = [];
  const connect = async (opts: { maxFrameBytes?: number } = {}) => {
    const conn = await GatewayConnection.connect({
      host: '127.0.0.1',
      port: server.port,
      ca,
      timeoutMs: 5_000,
      ...opts,
    });
    open.push(conn);
    return conn;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'qpq-wire-'));
    const certs = await makeDevCerts(join(dir, 'certs'), ['edge']);
    const other = await makeDevCerts(join(dir, 'other'), ['edge']);
    ca = readFileSync(certs.caPath, 'utf8');
    otherCa = readFileSync(other.caPath, 'utf8');
    const edge = certs.files('edge');
    server = await TestServer.start(readFileSync(edge.cert, 'utf8'), readFileSync(edge.key, 'utf8'));
  });

  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('answers reach the request they belong to, even out of order', async () => {
    const conn = await connect();
    const delays = [120, 10, 80, 0, 40, 160, 20, 60];
    const answers = await Promise.all(delays.map((d, i) => conn.request('echo', bytes(`delay:${d}|request ${i}`))));
    assert.deepEqual(
      answers.map(text),
      delays.map((d, i) => `delay:${d}|request ${i}`),
    );
  });

  test('a status from the server becomes an RpcError with its code and message', async () => {
    const conn = await connect();
    await assert.rejects(conn.request('fail', bytes('x')), (err: unknown) => {
      assert.ok(err instanceof RpcError);
      assert.equal(err.code, StatusCode.NOT_FOUND);
      assert.equal(err.message, 'no such user: carol');
      return true;
    });
  });

  test('pushes arrive unprompted on the same stream', async () => {
    const conn = await connect();
    const pushes: Push[] = [];
    conn.onPush((p) => pushes.push(p));
    await conn.request('push', new Uint8Array());
    for (let i = 0; i < 50 && pushes.length === 0; i++) await sleep(10);
    assert.equal(pushes.length, 1);
    assert.deepEqual(pushes[0]?.kind, { $case: 'keyPackagesLow', value: { oneTimeRemaining: 3, lowWaterMark: 10 } });
  });

  test('a request without an answer times out with DEADLINE_EXCEEDED and the connection keeps working', async () => {
    const conn = await connect();
    const started = Date.now();
    await assert.rejects(conn.request('silent', bytes('?'), 300), (err: unknown) => {
      assert.ok(err instanceof RpcError);
      assert.equal(err.code, StatusCode.DEADLINE_EXCEEDED);
      return true;
    });
    assert.ok(Date.now() - started < 2_000);
    assert.equal(conn.pendingRequests, 0);
    assert.equal(text(await conn.request('echo', bytes('still here'))), 'still here');
  });

  test('an oversized frame closes only that connection; other clients keep working', async () => {
    const bystander = await connect();
    const offender = await connect({ maxFrameBytes: 4 * MAX_FRAME });
    await offender.request('echo', bytes('hello'));
    const closed = new Promise<Error | undefined>((resolve) => offender.onClose(resolve));
    const big = offender.request('echo', new Uint8Array(2 * MAX_FRAME));
    await assert.rejects(big, (err: unknown) => err instanceof RpcError && err.code === StatusCode.UNAVAILABLE);
    const reason = await closed;
    assert.ok(reason instanceof ConnectionClosedError, String(reason));
    assert.equal(reason.closeCode, CloseCode.FRAME_TOO_LARGE);
    assert.match(reason.message, /frame too large/);
    await assert.rejects(
      offender.request('echo', bytes('again')),
      (err: unknown) => err instanceof RpcError && err.code === StatusCode.UNAVAILABLE,
    );
    assert.equal(text(await bystander.request('echo', bytes('unaffected'))), 'unaffected');
  });

  test('an undecodable frame from the server: the client closes with MALFORMED_FRAME', async () => {
    const conn = await connect();
    const endsBefore = server.ends.length;
    const closed = new Promise<Error | undefined>((resolve) => conn.onClose(resolve));
    await assert.rejects(conn.request('garbage', new Uint8Array()), (err: unknown) => {
      return err instanceof RpcError && err.code === StatusCode.UNAVAILABLE;
    });
    const reason = await closed;
    assert.ok(reason instanceof ConnectionClosedError);
    for (let i = 0; i < 100 && server.ends.length === endsBefore; i++) await sleep(10);
    const seen = server.ends.slice(endsBefore);
    assert.ok(
      seen.some((e) => e.by === 'peer' && e.isApp && e.code === CloseCode.MALFORMED_FRAME),
      JSON.stringify(seen),
    );
  });

  test('a request over our own frame limit fails alone, before it is sent', async () => {
    const conn = await connect({ maxFrameBytes: 1024 });
    await assert.rejects(conn.request('echo', new Uint8Array(2048)), (err: unknown) => {
      return err instanceof RpcError && err.code === StatusCode.RESOURCE_EXHAUSTED;
    });
    assert.equal(text(await conn.request('echo', bytes('small'))), 'small');
  });

  test('close() fails pending requests with UNAVAILABLE and reports no error', async () => {
    const conn = await connect();
    await conn.request('echo', bytes('warm'));
    const closeReasons: (Error | undefined)[] = [];
    conn.onClose((r) => closeReasons.push(r));
    const pending = assert.rejects(conn.request('silent', bytes('?'), 10_000), (err: unknown) => {
      assert.ok(err instanceof RpcError);
      assert.equal(err.code, StatusCode.UNAVAILABLE);
      assert.equal(err.message, 'connection to the server closed');
      return true;
    });
    await conn.close();
    await pending;
    assert.deepEqual(closeReasons, [undefined]);
  });

  test('a draining server ends the session with SHUTTING_DOWN', async () => {
    const before = new Set(server.connections);
    const conn = await connect();
    await conn.request('echo', bytes('hi'));
    const serverSide = [...server.connections].find((c) => !before.has(c));
    assert.ok(serverSide);
    const closed = new Promise<Error | undefined>((resolve) => conn.onClose(resolve));
    const pending = assert.rejects(
      conn.request('silent', bytes('?'), 10_000),
      (err: unknown) => err instanceof RpcError && err.code === StatusCode.UNAVAILABLE,
    );
    await server.drain(serverSide);
    await pending;
    const reason = await closed;
    assert.ok(reason instanceof ConnectionClosedError);
    assert.equal(reason.closeCode, CloseCode.SHUTTING_DOWN);
  });

  test('a gateway certificate from another CA is refused at connect', async () => {
    await assert.rejects(
      GatewayConnection.connect({ host: '127.0.0.1', port: server.port, ca: otherCa, timeoutMs: 5_000 }),
      (err: unknown) => err instanceof GatewayConnectError && /does not trust/.test(err.message),
    );
  });

  test('nothing listening: connect gives up after its timeout', async () => {
    const started = Date.now();
    await assert.rejects(
      GatewayConnection.connect({ host: '127.0.0.1', port: 9, ca, timeoutMs: 700 }),
      (err: unknown) => err instanceof GatewayConnectError && /no answer/.test(err.message),
    );
    assert.ok(Date.now() - started < 3_000);
  });

  test('a push frame built around raw Push bytes equals the generated encoding', () => {
    const push = Push.encode({
      kind: { $case: 'keyPackagesLow', value: { oneTimeRemaining: 300, lowWaterMark: 1000 } },
    }).finish();
    const envelope = Push.encode({
      kind: {
        $case: 'envelope',
        value: {
          seq: 42n,
          messageId: 'm',
          senderUser: 'alice@localhost',
          senderDeviceId: 'd',
          payload: new Uint8Array(70_000).fill(7), // a length that needs a 3-byte varint
          acceptedAtMs: 1n,
          groupId: new Uint8Array(),
        },
      },
    }).finish();
    for (const inner of [push, envelope, new Uint8Array()]) {
      const expected = ServerFrame.encode({ kind: { $case: 'push', value: Push.decode(inner) } }).finish();
      assert.deepEqual(Buffer.from(encodeServerPushFrame(inner)), Buffer.from(expected));
    }
  });
});
