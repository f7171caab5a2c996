import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDevCerts } from '@qpq/testnet';
import { MAX_TEXT_BYTES, QpqClient } from './client.js';
import { NotLoggedInError, ServerUnreachableError, UsageError } from './errors.js';

// What a client does before (or without) a server: the errors a person sees. The whole exchange with
// real services is in tests/integration.

const root = mkdtempSync(join(tmpdir(), 'qpq-client-offline-'));
let caPath: string;
let silentPort: number;
const silent = createSocket('udp4');
before(async () => {
  caPath = (await makeDevCerts(join(root, 'certs'), ['gateway'])).caPath;
  // A UDP port that is open but never answers: a QUIC handshake to it can only time out.
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
  silentPort = silent.address().port;
});
after(() => {
  silent.close();
  rmSync(root, { recursive: true, force: true });
});
let n = 0;

describe('QpqClient without a server', () => {
  it('says it cannot reach the server, naming it', async () => {
    const client = await QpqClient.open({
      dataDir: join(root, `d${n++}`),
      server: `127.0.0.1:${silentPort}`,
      ca: caPath,
      connectTimeoutMs: 500,
    });
    try {
      await assert.rejects(client.register('alice', 'pw'), (err: unknown) => {
        assert.ok(err instanceof ServerUnreachableError, String(err));
        assert.equal(err.message, `cannot reach the server at 127.0.0.1:${silentPort} (no answer within 500 ms)`);
        return true;
      });
    } finally {
      await client.close();
    }
  });

  it('refuses a malformed server address', async () => {
    await assert.rejects(QpqClient.open({ dataDir: join(root, `d${n++}`), server: 'localhost' }), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.equal(err.message, 'invalid server address "localhost": expected HOST:PORT');
      return true;
    });
  });

  it('needs an account before connecting or sending', async () => {
    const dataDir = join(root, `d${n++}`);
    const client = await QpqClient.open({ dataDir, ca: caPath });
    await assert.rejects(client.sendText('bob', 'hi'), NotLoggedInError);
    await assert.rejects(client.connect(), {
      message: `no account in ${dataDir}: run qpq register or qpq login first`,
    });
    assert.deepEqual(await client.takeUnshown(), []);
    await client.close();
  });

  it('refuses a message too long for the server before queuing it', async () => {
    const client = await QpqClient.open({ dataDir: join(root, `d${n++}`), ca: caPath });
    const text = 'é'.repeat(MAX_TEXT_BYTES / 2 + 1); // 2 bytes each in UTF-8
    await assert.rejects(client.sendText('bob', text), (err: unknown) => {
      assert.ok(err instanceof UsageError, String(err));
      assert.equal(err.message, `message too long: ${MAX_TEXT_BYTES + 2} bytes; the limit is ${MAX_TEXT_BYTES} bytes`);
      return true;
    });
    assert.equal(await client.pendingOutbox(), 0);
    // At the limit it is not the size that stops it (here: no account yet).
    await assert.rejects(client.sendText('bob', 'x'.repeat(MAX_TEXT_BYTES)), NotLoggedInError);
    await client.close();
  });
});
