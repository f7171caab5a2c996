import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as tls from 'node:tls';
import { makeDevCerts, type DevCerts } from './certs.js';

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'qpq-certs-test-'));
  dirs.push(dir);
  return dir;
}

/**
 * A TLS 1.3 server as `serverName` that demands a client certificate, and a client as `clientName`
 * that verifies the server as "localhost" on 127.0.0.1. Resolves with what each side saw.
 */
async function handshake(
  server: { certs: DevCerts; name: string },
  client: { certs: DevCerts; name: string },
): Promise<{ peerCN: string; clientAuthorized: boolean }> {
  const s = server.certs.files(server.name);
  const c = client.certs.files(client.name);
  let peerCN = '';
  const srv = tls.createServer(
    {
      ca: readFileSync(s.ca),
      cert: readFileSync(s.cert),
      key: readFileSync(s.key),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    },
    (socket) => {
      const cn = socket.getPeerCertificate().subject.CN;
      peerCN = Array.isArray(cn) ? cn.join(',') : (cn ?? '');
      socket.end('hi');
    },
  );
  srv.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  try {
    return await new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: readFileSync(c.ca),
        cert: readFileSync(c.cert),
        key: readFileSync(c.key),
        minVersion: 'TLSv1.3',
      });
      let data = '';
      socket.on('data', (d: Buffer) => (data += d.toString()));
      socket.on('end', () => {
        if (data === 'hi') resolve({ peerCN, clientAuthorized: socket.authorized });
        else reject(new Error('server closed without answering (client certificate refused)'));
      });
      socket.on('error', reject);
    });
  } finally {
    srv.close();
  }
}

test('two holders complete a mutual-TLS handshake and the server reads the client CN', async () => {
  const certs = await makeDevCerts(await freshDir(), ['auth', 'gateway']);
  const seen = await handshake({ certs, name: 'auth' }, { certs, name: 'gateway' });
  assert.equal(seen.clientAuthorized, true, 'client trusts the server via the dev CA');
  assert.equal(seen.peerCN, 'gateway');
});

test('a client certificate from another CA is refused', async () => {
  const ours = await makeDevCerts(await freshDir(), ['auth']);
  const theirs = await makeDevCerts(await freshDir(), ['gateway']);
  // The client trusts our CA (so it accepts the server) but presents a certificate from another CA.
  const client = { ...theirs, files: (n: string) => ({ ...theirs.files(n), ca: ours.caPath }) };
  await assert.rejects(handshake({ certs: ours, name: 'auth' }, { certs: client, name: 'gateway' }));
});

test('certificates carry CN, SANs, both EKUs and PKCS#8 P-256 keys', async () => {
  const certs = await makeDevCerts(await freshDir(), ['edge', 'delivery']);
  for (const name of ['edge', 'delivery']) {
    const f = certs.files(name);
    const cert = new X509Certificate(readFileSync(f.cert));
    const ca = new X509Certificate(readFileSync(certs.caPath));
    assert.equal(cert.subject, `CN=${name}`);
    assert.ok(cert.verify(ca.publicKey) && cert.checkIssued(ca), 'issued by the dev CA');
    assert.equal(cert.ca, false);
    assert.equal(ca.ca, true);
    const sans = (cert.subjectAltName ?? '').split(', ');
    for (const san of ['DNS:localhost', `DNS:${name}`, 'IP Address:127.0.0.1']) assert.ok(sans.includes(san), san);
    assert.ok(cert.checkHost('localhost') && cert.checkIP('127.0.0.1'));
    assert.deepEqual([...(cert.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const keyPem = readFileSync(f.key, 'utf8');
    assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----/, 'PKCS#8');
    const key = createPrivateKey(keyPem);
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(cert.checkPrivateKey(key));
  }
  assert.throws(() => certs.files('nobody'), /no dev certificate named nobody/);
});

test('valid files are reused; a broken leaf is reissued under the same CA; new names join it', async () => {
  const dir = await freshDir();
  const first = await makeDevCerts(dir, ['gateway', 'auth']);
  const caPem = readFileSync(first.caPath, 'utf8');
  const gatewayPem = readFileSync(first.files('gateway').cert, 'utf8');
  const authPem = readFileSync(first.files('auth').cert, 'utf8');

  const second = await makeDevCerts(dir, ['gateway', 'auth', 'keypackage']);
  assert.equal(readFileSync(second.caPath, 'utf8'), caPem, 'the CA is kept (the CLI trusts it)');
  assert.equal(readFileSync(second.files('gateway').cert, 'utf8'), gatewayPem);

  // auth's certificate no longer matches its key: it must be made anew, under the same CA.
  writeFileSync(second.files('auth').cert, gatewayPem);
  const third = await makeDevCerts(dir, ['gateway', 'auth', 'keypackage']);
  const reissued = readFileSync(third.files('auth').cert, 'utf8');
  assert.notEqual(reissued, gatewayPem);
  assert.notEqual(reissued, authPem);
  assert.equal(readFileSync(third.caPath, 'utf8'), caPem);
  const seen = await handshake({ certs: third, name: 'keypackage' }, { certs: third, name: 'auth' });
  assert.equal(seen.peerCN, 'auth');
});

test('a broken CA is replaced and every certificate is reissued under the new one', async () => {
  const dir = await freshDir();
  const first = await makeDevCerts(dir, ['gateway']);
  const caPem = readFileSync(first.caPath, 'utf8');
  writeFileSync(join(dir, 'ca-key.pem'), 'not a key');
  const second = await makeDevCerts(dir, ['gateway', 'auth']);
  assert.notEqual(readFileSync(second.caPath, 'utf8'), caPem);
  const seen = await handshake({ certs: second, name: 'auth' }, { certs: second, name: 'gateway' });
  assert.equal(seen.peerCN, 'gateway');
});
