import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PassphraseRequiredError, StoreError } from './errors.js';
import { LocalStore, STORE_FILES } from './store.js';

const root = mkdtempSync(join(tmpdir(), 'qpq-store-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => join(root, `d${n++}`, 'nested', 'data');
const FAST_SCRYPT = { scryptN: 1 << 10 };

/** Every way a secret could sit in a file as text. */
function assertAbsent(file: Buffer, secret: string): void {
  const forms = [
    secret,
    Buffer.from(secret).toString('base64'),
    Buffer.from(secret).toString('base64url'),
    Buffer.from(secret).toString('hex'),
  ];
  const asText = file.toString('latin1');
  for (const f of forms) assert.ok(!asText.includes(f), `file contains ${JSON.stringify(f)}`);
}

describe('LocalStore', () => {
  it('keeps no plaintext on disk, and a new process reads it back', async () => {
    const dir = freshDir();
    const store = await LocalStore.open(dir, { env: {} });
    const secret = 'attack at dawn, the password is hunter2';
    await store.update((doc) => {
      doc.account = {
        username: 'alice-marker',
        address: 'alice-marker@example.org',
        accountId: 'acc',
        deviceId: 'dev',
        sessionToken: 'session-token-marker-0123456789',
        sessionExpiresAtMs: 0,
        server: '127.0.0.1:7000',
      };
      doc.conversations['bob@example.org'] = {
        kind: 'dm',
        peer: 'bob@example.org',
        sendGroupId: 'ab',
        groupIds: ['ab'],
        history: [
          { id: 'm1', direction: 'out', from: 'alice-marker@example.org', text: secret, sentAtMs: 1, storedAtMs: 1 },
        ],
      };
    });
    const file = readFileSync(join(dir, STORE_FILES.document));
    for (const s of [
      secret,
      'hunter2',
      'alice-marker',
      'session-token-marker-0123456789',
      'bob@example.org',
      '"history"',
    ]) {
      assertAbsent(file, s);
    }
    const reopened = await LocalStore.open(dir, { env: {} });
    const doc = await reopened.read();
    assert.equal(doc.conversations['bob@example.org']?.history[0]?.text, secret);
    assert.equal(doc.account?.sessionToken, 'session-token-marker-0123456789');
  });

  it('creates the data dir with its parents, readable only by its owner', async () => {
    const dir = freshDir();
    const store = await LocalStore.open(dir, { env: {} });
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(store.exists(), false, 'no store before the first update');
    await store.update(() => undefined);
    assert.equal(statSync(join(dir, STORE_FILES.key)).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, STORE_FILES.document)).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(dir, STORE_FILES.key)).length, 32);
  });

  it('refuses a wrong key with one clear line', async () => {
    const dir = freshDir();
    const store = await LocalStore.open(dir, { env: {} });
    await store.update((doc) => {
      doc.cursor.processedSeq = 7;
    });
    writeFileSync(join(dir, STORE_FILES.key), randomBytes(32));
    const other = await LocalStore.open(dir, { env: {} });
    await assert.rejects(other.read(), (err: unknown) => {
      assert.ok(err instanceof StoreError);
      assert.match(err.message, /^cannot decrypt .*store\.enc: wrong key or damaged file$/);
      assert.ok(!err.message.includes('\n'));
      return true;
    });
  });

  it('refuses a tampered file', async () => {
    const dir = freshDir();
    const store = await LocalStore.open(dir, { env: {} });
    await store.update(() => undefined);
    const path = join(dir, STORE_FILES.document);
    const bytes = readFileSync(path);
    bytes[bytes.length - 1]! ^= 1;
    writeFileSync(path, bytes);
    await assert.rejects((await LocalStore.open(dir, { env: {} })).read(), /wrong key or damaged file/);
  });

  it('derives the key from QPQ_PASSPHRASE when it was set at creation, and asks for it later', async () => {
    const dir = freshDir();
    const store = await LocalStore.open(dir, { env: { QPQ_PASSPHRASE: 'open sesame' }, ...FAST_SCRYPT });
    await store.update((doc) => {
      doc.cursor.ackedSeq = 3;
    });
    assert.equal(existsSync(join(dir, STORE_FILES.key)), false, 'no key file beside a passphrase store');
    assert.ok(store.passphraseProtected);

    await assert.rejects(LocalStore.open(dir, { env: {} }), (err: unknown) => {
      assert.ok(err instanceof PassphraseRequiredError);
      assert.equal(err.message, 'this data dir is passphrase-protected: set QPQ_PASSPHRASE');
      return true;
    });
    await assert.rejects(LocalStore.open(dir, { env: { QPQ_PASSPHRASE: 'wrong' } }), {
      message: 'wrong QPQ_PASSPHRASE for this data dir',
    });
    const right = await LocalStore.open(dir, { env: { QPQ_PASSPHRASE: 'open sesame' } });
    assert.equal((await right.read()).cursor.ackedSeq, 3);
  });

  it('writes nothing when the change fails', async () => {
    const dir = freshDir();
    const store = await LocalStore.open(dir, { env: {} });
    await store.update((doc) => {
      doc.cursor.processedSeq = 1;
    });
    await assert.rejects(
      store.update((doc) => {
        doc.cursor.processedSeq = 99;
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal((await store.read()).cursor.processedSeq, 1);
    assert.equal((await (await LocalStore.open(dir, { env: {} })).read()).cursor.processedSeq, 1);
  });

  it('loses no update when several processes change one data dir at once', async () => {
    const dir = freshDir();
    await (await LocalStore.open(dir, { env: {} })).update(() => undefined);
    const worker = fileURLToPath(new URL('./store.test-worker.ts', import.meta.url));
    const perProcess = 25;
    const runs = [0, 1, 2].map(
      (i) =>
        new Promise<number>((resolve) => {
          const child = spawn(process.execPath, ['--import', 'tsx', worker, dir, String(perProcess), `w${i}`], {
            stdio: ['ignore', 'ignore', 'inherit'],
          });
          child.on('exit', (code) => resolve(code ?? 1));
        }),
    );
    // And this process too, with two store objects of its own.
    const a = await LocalStore.open(dir, { env: {} });
    const b = await LocalStore.open(dir, { env: {} });
    const local = Array.from({ length: perProcess }, (_, i) =>
      (i % 2 ? a : b).update((doc) => {
        doc.cursor.processedSeq += 1;
      }),
    );
    await Promise.all(local);
    assert.deepEqual(await Promise.all(runs), [0, 0, 0]);
    const doc = await (await LocalStore.open(dir, { env: {} })).read();
    assert.equal(doc.cursor.processedSeq, 4 * perProcess);
    assert.equal(existsSync(join(dir, STORE_FILES.lock)), false, 'the lock is released');
  });

  it('takes over a lock left by a process that died', async () => {
    const dir = freshDir();
    const store = await LocalStore.open(dir, { env: {}, lockTimeoutMs: 2_000 });
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    writeFileSync(join(dir, STORE_FILES.lock), `${dead} deadbeef\n`);
    const started = Date.now();
    await store.update((doc) => {
      doc.cursor.processedSeq = 5;
    });
    assert.ok(Date.now() - started < 1_000);
    assert.equal((await store.read()).cursor.processedSeq, 5);
  });

  it('waits for a live holder and then says who holds the lock', async () => {
    const dir = freshDir();
    const store = await LocalStore.open(dir, { env: {}, lockTimeoutMs: 300 });
    writeFileSync(join(dir, STORE_FILES.lock), `${process.ppid} cafe\n`);
    await assert.rejects(
      store.update(() => undefined),
      (err: unknown) => {
        assert.ok(err instanceof StoreError);
        assert.match(err.message, new RegExp(`locked by another qpq process \\(pid ${process.ppid}\\)`));
        return true;
      },
    );
  });
});
