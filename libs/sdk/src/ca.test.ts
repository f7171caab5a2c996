import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { devCaPath, isLoopback, resolveCa } from './ca.js';

const root = mkdtempSync(join(tmpdir(), 'qpq-ca-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
let n = 0;

/** A dev dir holding certs/ca.pem with the given mode. */
function devDirWithCa(mode: number): NodeJS.ProcessEnv {
  const env = { QPQ_DEV_DIR: join(root, `dev${n++}`) };
  mkdirSync(join(env.QPQ_DEV_DIR, 'certs'), { recursive: true });
  writeFileSync(devCaPath(env), PEM);
  chmodSync(devCaPath(env), mode);
  return env;
}

const NO_CA = { message: 'no CA to trust: pass --ca FILE' };

describe('resolveCa', () => {
  it('trusts the dev stack CA for a server on this machine', () => {
    const env = devDirWithCa(0o644);
    for (const host of ['127.0.0.1', '127.8.9.1', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) {
      const ca = resolveCa(undefined, env, host);
      assert.equal(ca.source, 'the dev stack', host);
      assert.equal(ca.pem, PEM);
    }
  });

  it('does not trust the dev stack CA for a server elsewhere', () => {
    const env = devDirWithCa(0o644);
    for (const host of ['qpq.example.org', '10.0.0.1', '128.0.0.1', '::2', 'fe80::1', 'localhost.example.org']) {
      assert.throws(() => resolveCa(undefined, env, host), NO_CA, host);
    }
    assert.throws(() => resolveCa(undefined, env), NO_CA, 'no server named');
  });

  it('does not trust a dev stack CA that others may write', () => {
    for (const mode of [0o664, 0o646, 0o666]) {
      assert.throws(() => resolveCa(undefined, devDirWithCa(mode), '127.0.0.1'), NO_CA, mode.toString(8));
    }
  });

  it('does not trust a dev stack CA that belongs to another user', { skip: process.getuid?.() !== 0 }, () => {
    // Only root can hand a file to someone else; run as root, this shows the owner check on its own.
    const env = devDirWithCa(0o644);
    chownSync(devCaPath(env), 65534, 65534);
    assert.throws(() => resolveCa(undefined, env, '127.0.0.1'), NO_CA);
  });

  it('uses --ca and QPQ_CA whatever the server', () => {
    const env = devDirWithCa(0o666);
    const file = devCaPath(env);
    assert.equal(resolveCa(file, env, 'qpq.example.org').source, `--ca ${file}`);
    assert.equal(resolveCa(undefined, { ...env, QPQ_CA: file }, 'qpq.example.org').source, `QPQ_CA=${file}`);
  });
});

describe('isLoopback', () => {
  it('knows loopback hosts from the rest', () => {
    assert.ok(isLoopback('127.0.0.1') && isLoopback('LOCALHOST') && isLoopback('0:0:0:0:0:0:0:1'));
    assert.ok(!isLoopback('0.0.0.0') && !isLoopback('::') && !isLoopback('127.example.org'));
  });
});
