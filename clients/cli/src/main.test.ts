import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LocalStore } from '@qpq/sdk';

// Runs the committed launcher (bin/qpq.mjs) as a person's shell would, with no server: the failures a
// person meets before any network traffic, each one line on stderr and a non-zero exit.

const BIN = fileURLToPath(new URL('../bin/qpq.mjs', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'qpq-cli-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function qpq(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: {
        PATH: process.env.PATH,
        HOME: join(root, 'home'),
        // No dev stack here: nothing to trust unless a test says so.
        QPQ_DEV_DIR: join(root, 'no-dev-stack'),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function assertOneLineFailure(run: Run, expected: string | RegExp, code = 1): void {
  assert.equal(run.code, code, `exit status (stderr: ${run.stderr})`);
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line on stderr, got: ${JSON.stringify(run.stderr)}`);
  if (typeof expected === 'string') assert.equal(lines[0], expected);
  else assert.match(lines[0]!, expected);
  assert.equal(run.stdout, '');
}

describe('qpq (launcher, no server)', () => {
  it('prints usage for --help and exits 0', async () => {
    const run = await qpq(['--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^usage: qpq /);
    assert.match(run.stdout, /send USER TEXT/);
    assert.match(run.stdout, /send-file USER PATH/);
    assert.match(run.stdout, /download FILE_ID \[--out PATH\]/);
    assert.equal(run.stderr, '');
  });

  it('refuses a wrong call with exit status 2 and one line', async () => {
    assertOneLineFailure(
      await qpq(['frobnicate']),
      'qpq: unknown command "frobnicate": expected register, login, send, send-file, recv, download, repl or kt',
      2,
    );
    assertOneLineFailure(
      await qpq(['recv', '--wait', 'later']),
      'qpq: --wait needs a number of seconds, got "later"',
      2,
    );
    assertOneLineFailure(await qpq([]), /^qpq: no command given/, 2);
  });

  it('says to register first in an empty data dir, and creates the dir with its parents', async () => {
    const dir = join(root, `d${n++}`, 'deep', 'qpq');
    assertOneLineFailure(
      await qpq(['--data-dir', dir, 'send', 'bob', 'hi']),
      `qpq: no account in ${dir}: run qpq register or qpq login first`,
    );
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assertOneLineFailure(
      await qpq(['recv', '--json'], { QPQ_DATA_DIR: dir }),
      `qpq: no account in ${dir}: run qpq register or qpq login first`,
    );
  });

  it('says which CA is missing before it tries to connect', async () => {
    const dir = join(root, `d${n++}`);
    assertOneLineFailure(
      await qpq(['--data-dir', dir, 'register', '-u', 'alice', '-p', 'pw']),
      'qpq: no CA to trust: pass --ca FILE',
    );
    assertOneLineFailure(
      await qpq(['--data-dir', dir, '--ca', join(root, 'nope.pem'), 'login', '-u', 'alice', '-p', 'pw']),
      `qpq: cannot read the CA file ${join(root, 'nope.pem')} (no such file)`,
    );
  });

  it('refuses a file one byte over 50 MiB before anything else, naming the limit', async () => {
    const dir = join(root, `d${n++}`);
    mkdirSync(dir);
    const big = join(dir, 'big file.bin');
    writeFileSync(big, '');
    truncateSync(big, 52_428_801); // sparse: no 50 MiB written to disk
    const expected = 'qpq: big file.bin is too large to send: 52,428,801 bytes; the limit is 52,428,800 bytes (50 MiB)';
    assertOneLineFailure(await qpq(['--data-dir', join(dir, 'qpq'), 'send-file', 'bob', big]), expected);
    // --json keeps stderr to that one line: no progress lines.
    assertOneLineFailure(await qpq(['--data-dir', join(dir, 'qpq'), 'send-file', 'bob', big, '--json']), expected);
    assertOneLineFailure(
      await qpq(['--data-dir', join(dir, 'qpq'), 'send-file', 'bob', join(dir, 'nope.jpg')]),
      `qpq: no such file: ${join(dir, 'nope.jpg')}`,
    );
    assertOneLineFailure(
      await qpq(['--data-dir', join(dir, 'qpq'), 'send-file', 'bob', dir]),
      `qpq: not a file: ${dir}`,
    );
  });

  it("says when a file to download is not in this device's history", async () => {
    const dir = join(root, `d${n++}`);
    assertOneLineFailure(
      await qpq(['--data-dir', dir, 'download', 'f00d', '--out', join(root, 'x.bin')]),
      "qpq: no file f00d in this device's history",
    );
    assertOneLineFailure(await qpq(['--data-dir', dir, 'download']), 'qpq: download needs FILE_ID', 2);
  });

  it('asks for QPQ_PASSPHRASE for a passphrase-protected data dir', async () => {
    const dir = join(root, `d${n++}`);
    const store = await LocalStore.open(dir, { env: { QPQ_PASSPHRASE: 'pp' }, scryptN: 1 << 10 });
    await store.update(() => undefined);
    assertOneLineFailure(
      await qpq(['--data-dir', dir, 'recv']),
      'qpq: this data dir is passphrase-protected: set QPQ_PASSPHRASE',
    );
    assertOneLineFailure(
      await qpq(['--data-dir', dir, 'recv'], { QPQ_PASSPHRASE: 'not it' }),
      'qpq: wrong QPQ_PASSPHRASE for this data dir',
    );
    // The right passphrase opens it (and then meets the missing account).
    assertOneLineFailure(
      await qpq(['--data-dir', dir, 'recv'], { QPQ_PASSPHRASE: 'pp' }),
      `qpq: no account in ${dir}: run qpq register or qpq login first`,
    );
  });
});
