/**
 * What every served call learns of its caller, over real mutual TLS: the peer's certificate name
 * (read once per connection) and the identity it may assert, and a signal that tells the handler the
 * call is over.
 */
import { Server, ServerCredentials, status as GrpcStatus, type ServerUnaryCall } from '@grpc/grpc-js';
import { makeDevCerts } from '@qpq/testnet';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { CancelledError, http2SessionOf, type CallContext } from './grpc-call.js';
import { RpcClient } from './grpc-client.js';
import { GrpcServer } from './grpc-server.js';
import { Telemetry } from './telemetry.js';
import { loadTlsFiles, type TlsFiles } from './tls.js';

const bytes = (b: Buffer) => b;
const method = (name: string) => ({
  path: `/qpq.test.Probe/${name}`,
  requestStream: false,
  responseStream: false,
  requestSerialize: bytes,
  requestDeserialize: bytes,
  responseSerialize: bytes,
  responseDeserialize: bytes,
  originalName: name,
});
const probeService = { whoAmI: method('WhoAmI'), waitForEnd: method('WaitForEnd') };

const alice = { accountId: 'acc-a', deviceId: 'dev-a', username: 'alice' };

let dir: string;
let tls: (name: string) => TlsFiles;
let telemetry: Telemetry;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'qpq-grpc-call-'));
  const certs = await makeDevCerts(dir, ['gateway', 'auth', 'delivery']);
  tls = (name) => loadTlsFiles(certs.files(name));
  telemetry = Telemetry.start('grpc-call-test');
});

after(async () => {
  await telemetry.shutdown();
  await rm(dir, { recursive: true, force: true });
});

describe('a served call', () => {
  let server: GrpcServer;
  let address: string;
  /** Each WaitForEnd handler's view once its call ended: the signal's reason. */
  const ends: unknown[] = [];
  const clients: RpcClient[] = [];
  const client = (name: string) => {
    const c = new RpcClient({ address, tls: tls(name), defaultTimeoutMs: 5_000, maxMessageBytes: 1 << 20 });
    clients.push(c);
    return c;
  };

  before(async () => {
    server = new GrpcServer({
      service: 'delivery',
      tls: tls('delivery'),
      logger: pino({ level: 'silent' }),
      telemetry,
      maxMessageBytes: 1 << 20,
    });
    server.addService('qpq.test.Probe', probeService, {
      whoAmI: async (_req: Buffer, ctx: CallContext) =>
        Buffer.from(JSON.stringify({ peer: ctx.peer, identity: ctx.identity ?? null })),
      waitForEnd: async (req: Buffer, ctx: CallContext) => {
        // 'late': the signal is first read after the call was already cancelled.
        if (req.toString() === 'late') await new Promise((r) => setTimeout(r, 300));
        const signal = ctx.signal;
        const reason = await new Promise((resolve) => {
          if (signal.aborted) resolve(signal.reason);
          else signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
        });
        ends.push(reason);
        throw reason;
      },
    });
    address = await server.listen({ host: '127.0.0.1', port: 0 });
    server.setServing(true);
  });

  after(async () => {
    for (const c of clients) c.close();
    await server.drain(1_000);
  });

  const whoAmI = async (c: RpcClient) =>
    JSON.parse((await c.callRaw(probeService.whoAmI.path, Buffer.alloc(0), { identity: alice })).toString()) as {
      peer: string | undefined;
      identity: unknown;
    };

  test('knows its peer by certificate on every call of a connection, and honours identity only from the gateway', async () => {
    const gateway = client('gateway');
    const auth = client('auth');
    const stackTraceLimit = Error.stackTraceLimit;
    // Interleaved on two connections to one server: an answer cached for the wrong connection shows.
    for (let round = 0; round < 5; round++) {
      const [g, a] = await Promise.all([whoAmI(gateway), whoAmI(auth)]);
      assert.deepEqual(g, { peer: 'gateway', identity: alice });
      assert.deepEqual(a, { peer: 'auth', identity: null });
    }
    // A new connection with another certificate is judged on its own.
    const auth2 = client('auth');
    assert.deepEqual(await whoAmI(auth2), { peer: 'auth', identity: null });
    assert.deepEqual(await whoAmI(gateway), { peer: 'gateway', identity: alice });
    // RpcClient turns stack capture off only while grpc-js starts a call.
    assert.equal(Error.stackTraceLimit, stackTraceLimit);
  });

  test('its signal aborts with CancelledError when the caller gives up, read early or late', async () => {
    ends.length = 0;
    const c = client('gateway');
    for (const when of ['early', 'late']) {
      await assert.rejects(c.callRaw(probeService.waitForEnd.path, Buffer.from(when), { timeoutMs: 150 }), {
        code: GrpcStatus.DEADLINE_EXCEEDED,
      });
    }
    const deadline = Date.now() + 5_000;
    while (ends.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(ends.length, 2);
    for (const reason of ends) assert.ok(reason instanceof CancelledError, String(reason));
    // The caller's error still tells what happened, with a stack of its own.
    const err = await c
      .callRaw(probeService.waitForEnd.path, Buffer.from('early'), { timeoutMs: 50 })
      .catch((e: Error) => e);
    assert.ok(err instanceof Error && err.stack?.includes('DEADLINE_EXCEEDED'), String(err));
  });
});

describe('http2SessionOf', () => {
  test('finds the one TLS session under every call of a connection in this grpc-js (else the peer cache is off)', async () => {
    const seen: (object | undefined)[] = [];
    const server = new Server();
    server.addService(
      { probe: method('Probe') },
      {
        probe: (call: ServerUnaryCall<Buffer, Buffer>, callback: (err: null, value: Buffer) => void) => {
          seen.push(http2SessionOf(call));
          callback(null, Buffer.alloc(0));
        },
      },
    );
    const files = tls('delivery');
    const creds = ServerCredentials.createSsl(files.ca, [{ private_key: files.key, cert_chain: files.cert }], true);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
    const opts = (name: string) =>
      new RpcClient({
        address: `127.0.0.1:${port}`,
        tls: tls(name),
        defaultTimeoutMs: 5_000,
        maxMessageBytes: 1 << 20,
      });
    const one = opts('gateway');
    const two = opts('auth');
    try {
      for (let i = 0; i < 3; i++) await one.callRaw('/qpq.test.Probe/Probe', Buffer.alloc(0));
      await two.callRaw('/qpq.test.Probe/Probe', Buffer.alloc(0));
    } finally {
      one.close();
      two.close();
      server.forceShutdown();
    }
    assert.equal(seen.length, 4);
    assert.ok(seen.every((s) => s !== undefined));
    assert.equal(seen[0], seen[1]);
    assert.equal(seen[1], seen[2]);
    assert.notEqual(seen[2], seen[3]);
  });
});
