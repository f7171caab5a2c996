/**
 * The `qpq` command as a person or a script runs it, against the whole system (every service its own
 * process, real Postgres, NATS and QUIC). The CA is found the way `npm run dev` leaves it: no --ca.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TestNetwork } from '@qpq/testnet';

const BIN = fileURLToPath(new URL('../../clients/cli/bin/qpq.mjs', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'qpq-cli-net-'));
let net: TestNetwork;

before(async () => {
  net = await TestNetwork.create();
});
after(async () => {
  await net?.destroy();
  rmSync(root, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function qpq(who: string, args: string[], input?: string): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: {
        PATH: process.env.PATH,
        HOME: join(root, 'home'),
        // Where the dev launcher keeps its certificates (certs/ca.pem): the CLI trusts that CA itself.
        QPQ_DEV_DIR: net.dir,
        QPQ_SERVER: net.gatewayAddresses[0],
        QPQ_DATA_DIR: join(root, who),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

function ok(run: Run): Run {
  assert.equal(run.code, 0, `exit 0 expected; stderr: ${run.stderr}`);
  return run;
}

const jsonLines = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('qpq against the whole network', { timeout: 240_000 }, () => {
  it('registers with no flags beyond the server', async () => {
    const alice = ok(await qpq('alice', ['register', '-u', 'alice', '-p', 'alice pw']));
    assert.match(alice.stdout, /^registered alice@\S+ \(device [0-9a-f-]{36}\)\n$/);
    const bob = ok(await qpq('bob', ['--json', 'register', '-u', 'bob', '-p', 'bob pw']));
    const [info] = jsonLines(bob.stdout);
    assert.equal(info?.username, 'bob');
    assert.match(String(info?.address), /^bob@/);
  });

  it('sends, and recv prints each message once as JSON lines', async () => {
    ok(await qpq('alice', ['send', 'bob', 'hello bob']));
    ok(await qpq('alice', ['send', 'bob', 'are you there?']));
    const first = ok(await qpq('bob', ['recv', '--json']));
    assert.deepEqual(
      jsonLines(first.stdout).map((m) => [m.from, m.text, m.conversation]),
      [
        ['alice@localhost', 'hello bob', 'alice@localhost'],
        ['alice@localhost', 'are you there?', 'alice@localhost'],
      ],
    );
    const again = ok(await qpq('bob', ['--json', 'recv']));
    assert.equal(again.stdout, '', 'nothing is shown twice');
  });

  it('recv --wait exits 0 after the wait when nothing comes', async () => {
    const run = ok(await qpq('bob', ['recv', '--wait', '1']));
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, '');
    assert.ok(run.ms >= 1_000, `returned after ${run.ms} ms`);
  });

  it('recv --wait returns as soon as a message arrives', async () => {
    const waiting = qpq('alice', ['recv', '--wait', '30', '--json']);
    await new Promise((r) => setTimeout(r, 2_500));
    ok(await qpq('bob', ['send', 'alice', 'yes, here']));
    const run = ok(await waiting);
    assert.deepEqual(
      jsonLines(run.stdout).map((m) => m.text),
      ['yes, here'],
    );
    assert.ok(run.ms < 25_000, `waited ${run.ms} ms`);
  });

  it('the REPL reads a pipe line by line and /quit leaves nothing unsent', async () => {
    const run = ok(await qpq('bob', ['repl', '-u', 'bob', '-p', 'bob pw'], '/dm alice\nline one\nline two\n/quit\n'));
    assert.match(run.stdout, /talking to alice@localhost/);
    const got = ok(await qpq('alice', ['recv', '--json']));
    assert.deepEqual(
      jsonLines(got.stdout).map((m) => m.text),
      ['line one', 'line two'],
    );
  });

  it('the REPL registers a new person and prints what arrives while it runs', async () => {
    // carol's REPL stays open (stdin open) for a while; alice writes to her meanwhile.
    const started = Date.now();
    const child = spawn(process.execPath, [BIN, '--json', 'repl', '-u', 'carol', '-p', 'carol pw'], {
      env: {
        PATH: process.env.PATH,
        HOME: join(root, 'home'),
        QPQ_DEV_DIR: net.dir,
        QPQ_SERVER: net.gatewayAddresses[0],
        QPQ_DATA_DIR: join(root, 'carol'),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', r));
    const until = async (what: () => boolean, ms: number) => {
      const end = Date.now() + ms;
      while (!what() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      assert.ok(what(), `timed out; output so far: ${stdout}`);
    };
    await until(() => stdout.includes('"logged in as carol@'), 30_000);
    ok(await qpq('alice', ['send', 'carol', 'welcome, carol']));
    await until(() => stdout.includes('welcome, carol'), 15_000);
    child.stdin.end('/quit\n');
    assert.equal(await exited, 0);
    const message = jsonLines(stdout).find((l) => l.type === 'message');
    assert.equal(message?.from, 'alice@localhost');
    assert.equal(message?.conversation, 'alice@localhost');
    assert.ok(Date.now() - started < 60_000);
  });

  it('a wrong password is one line and a non-zero exit', async () => {
    const run = await qpq('alice-2', ['login', '-u', 'alice', '-p', 'wrong']);
    assert.equal(run.code, 1);
    assert.equal(run.stderr, 'qpq: wrong username or password\n');
    assert.equal(run.stdout, '');
  });

  it('an unknown recipient is one line and a non-zero exit', async () => {
    const run = await qpq('alice', ['send', 'nobody', 'hi']);
    assert.equal(run.code, 1);
    assert.equal(run.stderr, 'qpq: no such user: nobody\n');
  });

  it('a group run from a piped REPL script: create, invite, say, rename, members, reply, react, verify, /quit', async () => {
    ok(await qpq('dana', ['register', '-u', 'dana', '-p', 'dana pw']));
    const script = [
      '/create-group crew',
      '/invite alice',
      '/invite dana',
      'hello crew',
      '/rename crew2',
      '/members',
      '/disappear 1h',
      '/history',
      '/quit',
      '',
    ].join('\n');
    const bob = ok(await qpq('bob', ['--json', 'repl', '-u', 'bob', '-p', 'bob pw'], script));
    const lines = jsonLines(bob.stdout);
    const errors = lines.filter((l) => l.type === 'error');
    assert.deepEqual(errors, [], 'every command worked');
    const members = lines.find((l) => l.type === 'members') as { members?: { address: string }[] } | undefined;
    assert.deepEqual(
      members?.members?.map((m) => m.address),
      ['alice@localhost', 'bob@localhost', 'dana@localhost'],
    );
    const history = lines.find((l) => l.type === 'history') as { items?: { text: string; status?: string }[] };
    assert.equal(history?.items?.at(-1)?.text, 'hello crew');

    const alice = ok(await qpq('alice', ['--json', 'recv', '--wait', '5']));
    const got = jsonLines(alice.stdout).find((m) => m.text === 'hello crew');
    assert.equal(got?.from, 'bob@localhost');
    assert.equal(got?.group, 'crew2', 'recv --json names the group');
    assert.match(String(got?.conversation), /^[0-9a-f]{64}$/);

    const reply = ok(
      await qpq(
        'alice',
        ['--json', 'repl', '-u', 'alice', '-p', 'alice pw'],
        '/switch #crew2\n/reply 1 hi bob\n/react 👍 1\n/verify bob\n/quit\n',
      ),
    );
    const replyLines = jsonLines(reply.stdout);
    assert.deepEqual(
      replyLines.filter((l) => l.type === 'error'),
      [],
    );
    const safety = replyLines.find((l) => l.type === 'safety-number');
    assert.match(String(safety?.number), /^(\d{5} ){11}\d{5}$/);

    const dana = ok(await qpq('dana', ['--json', 'recv', '--wait', '5']));
    const texts = jsonLines(dana.stdout).map((m) => [m.from, m.text, m.group, m.replyTo !== undefined]);
    assert.deepEqual(texts, [
      ['bob@localhost', 'hello crew', 'crew2', false],
      ['alice@localhost', 'hi bob', 'crew2', true],
    ]);
    const bobVerify = ok(await qpq('bob', ['--json', 'repl', '-u', 'bob', '-p', 'bob pw'], '/verify alice\n/quit\n'));
    const bobSafety = jsonLines(bobVerify.stdout).find((l) => l.type === 'safety-number');
    assert.equal(bobSafety?.number, safety?.number, 'both sides compute the same number');
  });
});
