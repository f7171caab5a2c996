import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import { startPostgres, type PostgresHandle } from './postgres.js';
import { canUsePdeathsig, childPids, processAlive } from './processes.js';

const started: PostgresHandle[] = [];
after(async () => {
  await Promise.allSettled(started.map((h) => h.stop()));
});

async function query<T extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

function refusesConnections(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

test('starts a real Postgres that stores rows, and stop() leaves no Postgres process behind', async () => {
  const pgh = await startPostgres();
  started.push(pgh);
  assert.equal(pgh.external, false);
  assert.ok(pgh.pid !== undefined);
  console.log(`postgres started in ${pgh.startMs} ms`);

  const url = await pgh.createDatabase('qpq_app');
  assert.match(url, /\/qpq_app$/);
  await query(url, 'create table notes (id int primary key, body text)');
  await query(url, 'insert into notes values (1, $1)', ['hello']);
  assert.deepEqual(await query(url, 'select body from notes'), [{ body: 'hello' }]);
  assert.equal(await pgh.createDatabase('qpq_app'), url, 'creating an existing database is a no-op');
  assert.deepEqual(await query(url, 'select count(*)::int as n from notes'), [{ n: 1 }]);

  const pid = pgh.pid;
  const backends = childPids(pid);
  assert.ok(backends.length > 0, 'a running postmaster has child processes');
  const t = Date.now();
  await pgh.stop();
  console.log(`postgres stopped in ${Date.now() - t} ms`);
  assert.equal(processAlive(pid), false, 'postmaster is gone');
  assert.deepEqual(
    backends.filter((p) => processAlive(p)),
    [],
    'no backend or auxiliary process remains',
  );
  assert.equal(await refusesConnections(pgh.url), true);
  await pgh.stop(); // idempotent
});

test('a persistent data directory keeps its data across restarts', async () => {
  const dir = join(await mkdtemp(join(tmpdir(), 'qpq-pg-test-')), 'data');
  await chmod(join(dir, '..'), 0o755); // mkdtemp makes it 0700; as root, Postgres runs as another user
  try {
    const first = await startPostgres({ dir });
    started.push(first);
    const url = await first.createDatabase('keep');
    await query(url, 'create table t (v text)');
    await query(url, "insert into t values ('survives')");
    await first.stop();

    const second = await startPostgres({ dir });
    started.push(second);
    const again = await second.createDatabase('keep');
    assert.deepEqual(await query(again, 'select v from t'), [{ v: 'survives' }]);
    await second.stop();
    assert.ok(existsSync(join(dir, 'PG_VERSION')), 'persistent data is not removed');
  } finally {
    await rm(join(dir, '..'), { recursive: true, force: true });
  }
});

test('a throwaway cluster removes its data on stop', async () => {
  const pgh = await startPostgres();
  started.push(pgh);
  const rows = await query<{ dir: string }>(pgh.url, "select current_setting('data_directory') as dir");
  const dataDir = rows[0]?.dir ?? '';
  assert.ok(existsSync(dataDir));
  await pgh.stop();
  assert.equal(existsSync(dataDir), false);
});

test('a taken port fails start-up with one clear line', async () => {
  const holder = await startPostgres();
  started.push(holder);
  const port = Number(new URL(holder.url).port);
  await assert.rejects(startPostgres({ port }), new RegExp(`port ${port}/tcp is already in use`));
  await holder.stop();
});

test(
  'Postgres dies with the process that started it, even when that process is SIGKILLed',
  {
    skip: !canUsePdeathsig() && 'needs setpriv --pdeathsig (Linux util-linux ≥ 2.33)',
  },
  async () => {
    // A test process killed by a timeout must not leave a cluster running.
    const script = [
      "import { startPostgres } from './libs/testnet/src/postgres.ts';",
      'const h = await startPostgres();',
      'console.log(h.pid);',
      'setInterval(() => {}, 1000);',
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: join(import.meta.dirname, '..', '..', '..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const pid = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(Number(out.trim()));
      });
      child.once('exit', () => reject(new Error('helper exited before starting Postgres')));
    });
    assert.equal(processAlive(pid), true);
    const backends = childPids(pid);
    child.kill('SIGKILL');
    const deadline = Date.now() + 10_000;
    while ((processAlive(pid) || backends.some((p) => processAlive(p))) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(processAlive(pid), false, 'postmaster is gone');
    assert.deepEqual(
      backends.filter((p) => processAlive(p)),
      [],
      'its backends are gone',
    );
  },
);

test(
  'as root, a data directory the postgres user cannot reach is refused with one clear line',
  {
    skip: process.getuid?.() !== 0 && 'only meaningful as root',
  },
  async () => {
    const locked = await mkdtemp(join(tmpdir(), 'qpq-pg-locked-'));
    try {
      await chmod(locked, 0o700);
      await mkdir(join(locked, 'inner'));
      await assert.rejects(startPostgres({ dir: join(locked, 'inner', 'data') }), /not reachable by user postgres/);
    } finally {
      await rm(locked, { recursive: true, force: true });
    }
  },
);

test('QPQ_DATABASE_URL: databases are created on that server and stop() leaves it running', async () => {
  const server = await startPostgres();
  started.push(server);
  const saved = process.env.QPQ_DATABASE_URL;
  process.env.QPQ_DATABASE_URL = server.url;
  try {
    const ext = await startPostgres();
    assert.equal(ext.external, true);
    assert.equal(ext.url, server.url);
    const url = await ext.createDatabase('qpq_ext');
    await ext.stop();
    assert.deepEqual(await query(url, 'select 1 as one'), [{ one: 1 }], 'the external server still answers');
    await ext.dropDatabase('qpq_ext');
    const names = await query<{ datname: string }>(server.url, 'select datname from pg_database');
    assert.ok(!names.some((r) => r.datname === 'qpq_ext'));
  } finally {
    if (saved === undefined) delete process.env.QPQ_DATABASE_URL;
    else process.env.QPQ_DATABASE_URL = saved;
    await server.stop();
  }
});
