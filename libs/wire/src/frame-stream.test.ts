// FrameStream over a real QUIC connection (both ends in this process): frames sent in a burst are
// written to QUIC together, so these check that batching keeps every frame whole and in order, that
// each send settles, and that a FIN sent behind queued frames arrives after all of them.
import { QUICClient, QUICServer, events, type QUICStream } from '@matrixai/quic';
import { makeDevCerts } from '@qpq/testnet';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { on } from './events.js';
import { FrameStream, StreamClosedError, type FrameStreamEnd } from './frame-stream.js';
import { clientCrypto, quicLogger, quicTransportConfig, serverCrypto } from './quic-config.js';

const TIMEOUT_MS = 20_000;

/** What the server end of one stream received, and how its reading ended. */
interface Received {
  frames: Buffer[];
  ended: Promise<FrameStreamEnd>;
}

describe('FrameStream over QUIC', { timeout: 60_000 }, () => {
  let dir: string;
  let server: QUICServer;
  let client: QUICClient;
  const received: Received[] = [];
  let nextStream: ((r: Received) => void) | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'qpq-frame-stream-'));
    const certs = await makeDevCerts(join(dir, 'certs'), ['edge']);
    const edge = certs.files('edge');
    server = new QUICServer({
      crypto: serverCrypto(),
      config: {
        ...quicTransportConfig(),
        key: readFileSync(edge.key, 'utf8'),
        cert: readFileSync(edge.cert, 'utf8'),
        verifyPeer: false,
      },
      logger: quicLogger('frame-stream-test'),
    });
    on(server, events.EventQUICServerConnection, (e) =>
      on(e.detail, events.EventQUICConnectionStream, (s) => accept(s.detail)),
    );
    await server.start({ host: '127.0.0.1', port: 0 });
    client = await QUICClient.createQUICClient(
      {
        host: '127.0.0.1',
        port: server.port,
        localHost: '127.0.0.1',
        serverName: 'localhost',
        crypto: clientCrypto,
        config: { ...quicTransportConfig(), ca: readFileSync(certs.caPath, 'utf8'), verifyPeer: true },
        logger: quicLogger('frame-stream-test-client'),
      },
      { timer: TIMEOUT_MS },
    );
  });

  after(async () => {
    await client?.destroy({ force: true });
    await server?.stop({ force: true });
    await rm(dir, { recursive: true, force: true });
  });

  function accept(stream: QUICStream): void {
    const frames: Buffer[] = [];
    const fs = new FrameStream(stream, {
      maxFrameBytes: 256 * 1024,
      onFrame: (f) => void frames.push(Buffer.from(f)),
      onEnd: () => void fs.closeWrite(),
    });
    const r = { frames, ended: fs.ended };
    received.push(r);
    nextStream?.(r);
  }

  /** Opens a client stream and waits for the server to see it (it does at the first bytes). */
  function open(): { fs: FrameStream; peer: Promise<Received> } {
    const peer = new Promise<Received>((resolve) => (nextStream = resolve));
    const fs = new FrameStream(client.connection.newStream('bidi'), {
      maxFrameBytes: 256 * 1024,
      onFrame: () => undefined,
    });
    return { fs, peer };
  }

  const payload = (i: number, size: number) => Buffer.alloc(size, i % 251);

  test('a burst of frames of mixed sizes arrives whole and in order, and every send settles', async () => {
    const { fs, peer } = open();
    const sizes = Array.from({ length: 1000 }, (_, i) => [0, 1, 256, 1400, 20_000][i % 5]!);
    // Sent in one go, without waiting: all but the first join batches behind the write in progress.
    const sends = sizes.map((size, i) => fs.send(payload(i, size)));
    await Promise.all(sends);
    assert.equal(fs.queuedBytes, 0, 'nothing is left counted as queued once every send settled');
    await fs.closeWrite();
    const r = await peer;
    assert.deepEqual(await r.ended, { kind: 'eof' });
    assert.equal(r.frames.length, sizes.length);
    r.frames.forEach((f, i) => assert.ok(f.equals(payload(i, sizes[i]!)), `frame ${i} (${sizes[i]} bytes)`));
  });

  test('closeWrite right after a burst still delivers every frame before the end', async () => {
    const { fs, peer } = open();
    for (let i = 0; i < 500; i++) void fs.send(payload(i, 300));
    await fs.closeWrite();
    const r = await peer;
    assert.deepEqual(await r.ended, { kind: 'eof' });
    assert.equal(r.frames.length, 500);
    r.frames.forEach((f, i) => assert.ok(f.equals(payload(i, 300)), `frame ${i}`));
    await assert.rejects(fs.send(payload(0, 1)), StreamClosedError);
  });
});
