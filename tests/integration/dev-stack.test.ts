// `npm run dev` as a person runs it: it prints `qpq ready`, the CLI works against it with no flags,
// SIGTERM stops every process it started (Postgres and NATS included) within 20 s, and a port it needs
// being taken is one clear line.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { jsonLines, repoRoot } from './support.js';

const qpqBin = join(repoRoot, 'clients', 'cli', 'bin', 'qpq.mjs');

const freshDevDir = () => join(tmpdir(), `qpq-devstack-${randomBytes(4).toString('hex')}`);

interface Dev {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startDev(devDir: string): Dev {
  const child = spawn(process.execPath, [join(repoRoot, 'scripts', 'dev.mjs')], {
    cwd: repoRoot,
    env: { ...process.env, QPQ_DEV_DIR: devDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function until(what: string, check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The CLI with no --server and no --ca: it must find the dev stack by itself. */
function qpqPlain(
  devDir: string,
  dataDir: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [qpqBin, '--data-dir', dataDir, ...args], {
      cwd: repoRoot,
      env: { ...process.env, QPQ_DEV_DIR: devDir, QPQ_SERVER: '', QPQ_CA: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every descendant pid of `pid` (via /proc), so the test can check nothing outlives the stack. */
async function descendants(pid: number): Promise<number[]> {
  const { readdir, readFile } = await import('node:fs/promises');
  const parents = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    parents.set(Number(entry), ppid);
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parents) {
      if (parent !== p) continue;
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

describe('npm run dev', { timeout: 240_000 }, () => {
  test('comes up, serves the CLI with no flags, and stops everything on SIGTERM within 20 s', async () => {
    // A dev dir that does not exist yet, as on a fresh machine: the launcher creates it.
    const devDir = freshDevDir();
    const dev = startDev(devDir);
    try {
      await until(
        'the qpq ready line',
        () => /^qpq ready: gateway quic:\/\/127\.0\.0\.1:7000/m.test(dev.stdout()),
        90_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\nstdout: ${dev.stdout()}\nstderr: ${dev.stderr()}`);
      });
      const alice = join(devDir, 'alice');
      const bob = join(devDir, 'bob');
      for (const [dir, user] of [
        [alice, 'alice'],
        [bob, 'bob'],
      ] as const) {
        const r = await qpqPlain(devDir, dir, ['register', '-u', user, '-p', `${user} password`]);
        assert.equal(r.code, 0, r.stderr);
      }
      const sent = await qpqPlain(devDir, alice, ['send', 'bob', 'hello through npm run dev']);
      assert.equal(sent.code, 0, sent.stderr);
      const got = await qpqPlain(devDir, bob, ['recv', '--wait', '10', '--json']);
      assert.equal(got.code, 0, got.stderr);
      assert.deepEqual(
        jsonLines(got.stdout).map((m) => m['text']),
        ['hello through npm run dev'],
      );

      const children = await descendants(dev.child.pid!);
      assert.ok(children.length >= 6, `postgres, nats and the services run under it (${children.length})`);
      const stopAt = Date.now();
      dev.child.kill('SIGTERM');
      assert.equal(await dev.exited, 0, dev.stderr());
      const tookMs = Date.now() - stopAt;
      assert.ok(tookMs < 20_000, `stopped in ${tookMs} ms`);
      assert.match(dev.stdout(), /qpq dev: stopped/);
      await until('every child process gone', () => children.every((pid) => !alive(pid)), 5_000);
    } finally {
      if (dev.child.exitCode === null) {
        dev.child.kill('SIGTERM');
        await dev.exited;
      }
    }
  });

  test('refuses to start with one clear line when a port it needs is taken', async () => {
    const blocker = createServer();
    // A stack stopped a moment ago may still be letting go of the port.
    for (let attempt = 0; ; attempt++) {
      const bound = await new Promise<boolean>((resolve) => {
        blocker.once('error', () => resolve(false));
        blocker.listen(7102, '127.0.0.1', () => resolve(true));
      });
      if (bound) break;
      if (attempt >= 50) throw new Error('port 7102 stays taken by something else');
      await new Promise((r) => setTimeout(r, 200));
    }
    try {
      const dev = startDev(freshDevDir());
      const code = await Promise.race([
        dev.exited,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('still running after 60 s')), 60_000)),
      ]);
      assert.notEqual(code, 0);
      const lines = dev.stderr().trim().split('\n');
      assert.equal(lines.length, 1, dev.stderr());
      assert.match(lines[0]!, /7102/);
    } finally {
      blocker.close();
    }
  });
});
