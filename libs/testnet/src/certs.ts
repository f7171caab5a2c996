// @peculiar/x509 resolves its ASN.1 codecs through tsyringe, which needs the Reflect metadata API
// installed before the library is loaded.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

/** PEM file paths of one holder's certificate, its key, and the CA that issued it. */
export interface CertFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface DevCerts {
  readonly dir: string;
  /** The internal CA certificate: every service trusts it, and the CLI trusts it for the gateway. */
  readonly caPath: string;
  files(name: string): CertFiles;
}

/**
 * ECDSA P-256 with SHA-256: accepted by Node's TLS (hence grpc-js) and by quiche/BoringSSL for
 * QUIC (checked by the QUIC research in /tmp/research/quic), and the cheapest signature to verify.
 */
const KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 24 * 3600 * 1000;
const CA_LIFETIME_MS = 10 * 365 * DAY_MS;
const LEAF_LIFETIME_MS = 397 * DAY_MS;
/** Files that expire sooner than this are made anew rather than reused. */
const RENEW_BEFORE_MS = 30 * DAY_MS;
/** Tolerates clocks a little behind ours (containers, VMs). */
const BACKDATE_MS = 60 * 60 * 1000;

/**
 * Makes (or reuses) an internal CA and, for each name, a certificate with CN=<name> and SAN
 * DNS:localhost, DNS:<name>, IP:127.0.0.1 (plus DNS:127.0.0.1, because quiche checks the server name
 * only against DNS entries), usable as TLS server and client. Keys are PKCS#8 PEM. Files already in
 * `dir` are kept while they are valid, so the dev CA the CLI trusts stays the same across runs.
 *
 * Layout: `<dir>/ca.pem`, `<dir>/ca-key.pem`, `<dir>/<name>.pem`, `<dir>/<name>-key.pem`.
 *
 * @example
 * const certs = await makeDevCerts('/tmp/qpq-dev/certs', ['gateway', 'auth']);
 * const { ca, cert, key } = certs.files('auth');
 */
export async function makeDevCerts(dir: string, names: string[]): Promise<DevCerts> {
  for (const name of names) {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name) || name === 'ca') throw new Error(`invalid certificate name: ${name}`);
  }
  const root = resolve(dir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const caPath = join(root, 'ca.pem');
  const caKeyPath = join(root, 'ca-key.pem');
  const files = (name: string): CertFiles => ({
    ca: caPath,
    cert: join(root, `${name}.pem`),
    key: join(root, `${name}-key.pem`),
  });

  let ca = await loadValidCa(caPath, caKeyPath);
  const caIsNew = ca === undefined;
  if (!ca) {
    ca = await createCa();
    await writeAtomically(caKeyPath, ca.keyPem, 0o600);
    await writeAtomically(caPath, ca.certPem, 0o644);
  }
  for (const name of names) {
    const f = files(name);
    if (!caIsNew && leafIsValid(f, name, ca.certPem)) continue;
    const leaf = await createLeaf(name, ca);
    await writeAtomically(f.key, leaf.keyPem, 0o600);
    await writeAtomically(f.cert, leaf.certPem, 0o644);
  }

  const known = new Set(names);
  return {
    dir: root,
    caPath,
    files: (name) => {
      if (!known.has(name)) throw new Error(`no dev certificate named ${name} (have: ${names.join(', ')})`);
      return files(name);
    },
  };
}

interface Ca {
  certPem: string;
  keyPem: string;
  cert: x509.X509Certificate;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

async function loadValidCa(certPath: string, keyPath: string): Promise<Ca | undefined> {
  if (!existsSync(certPath) || !existsSync(keyPath)) return undefined;
  try {
    const certPem = readFileSync(certPath, 'utf8');
    const keyPem = readFileSync(keyPath, 'utf8');
    const cert = new X509Certificate(certPem);
    if (!cert.ca || !cert.checkPrivateKey(createPrivateKey(keyPem)) || !fresh(cert)) return undefined;
    if (cert.publicKey.asymmetricKeyType !== 'ec') return undefined;
    const privateKey = await webcrypto.subtle.importKey(
      'pkcs8',
      createPrivateKey(keyPem).export({ format: 'der', type: 'pkcs8' }),
      KEY_ALGORITHM,
      false,
      ['sign'],
    );
    const publicKey = await webcrypto.subtle.importKey(
      'spki',
      cert.publicKey.export({ format: 'der', type: 'spki' }),
      KEY_ALGORITHM,
      true,
      ['verify'],
    );
    return { certPem, keyPem, cert: new x509.X509Certificate(certPem), privateKey, publicKey };
  } catch {
    return undefined;
  }
}

function leafIsValid(f: CertFiles, name: string, caPem: string): boolean {
  if (!existsSync(f.cert) || !existsSync(f.key)) return false;
  try {
    const cert = new X509Certificate(readFileSync(f.cert));
    const ca = new X509Certificate(caPem);
    return (
      cert.checkIssued(ca) &&
      cert.verify(ca.publicKey) &&
      cert.checkPrivateKey(createPrivateKey(readFileSync(f.key))) &&
      cert.subject.split('\n').includes(`CN=${name}`) &&
      (cert.subjectAltName ?? '').split(', ').includes(`DNS:${name}`) &&
      cert.publicKey.asymmetricKeyType === 'ec' &&
      fresh(cert)
    );
  } catch {
    return false;
  }
}

function fresh(cert: X509Certificate): boolean {
  const now = Date.now();
  return new Date(cert.validFrom).getTime() <= now && new Date(cert.validTo).getTime() > now + RENEW_BEFORE_MS;
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return `${x509.PemConverter.encode(der, 'PRIVATE KEY')}\n`;
}

/** A positive serial number of 16 random bytes (the top bit clear, so DER never reads it as negative). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

async function createCa(): Promise<Ca> {
  const keys = await generateKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    // A random suffix tells one machine's dev CA from another's in a trust store or an error message.
    name: `CN=qpq dev CA ${randomBytes(4).toString('hex')}`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + CA_LIFETIME_MS),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certPem: `${cert.toString('pem')}\n`,
    keyPem: await privateKeyPem(keys.privateKey),
    cert,
    privateKey: keys.privateKey,
    publicKey: keys.publicKey,
  };
}

async function createLeaf(name: string, ca: Ca): Promise<{ certPem: string; keyPem: string }> {
  const keys = await generateKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${name}`,
    issuer: ca.cert.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + LEAF_LIFETIME_MS),
    publicKey: keys.publicKey,
    signingKey: ca.privateKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'dns', value: name },
        { type: 'ip', value: '127.0.0.1' },
        { type: 'dns', value: '127.0.0.1' },
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.publicKey),
    ],
  });
  return { certPem: `${cert.toString('pem')}\n`, keyPem: await privateKeyPem(keys.privateKey) };
}

/** A reader never sees half a PEM file, even when two processes make certificates at once. */
async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, content, { mode });
  await rename(tmp, path);
}
