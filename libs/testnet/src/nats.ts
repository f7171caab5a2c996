import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { freeTcpPort, LOOPBACK, tcpPortFree } from './ports.js';
import { pollUntil, spawnOwned, stopProcess, tailFile } from './processes.js';

export interface NatsOptions {
  /** JetStream store directory. Default: a fresh temporary directory, removed on stop(). */
  dir?: string;
  /** Client port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number;
  /** Where nats-server's log goes. Default: `<dir>.log`, next to the store directory. */
  logFile?: string;
}

export interface NatsHandle {
  /** `nats://127.0.0.1:<port>` (or QPQ_NATS_URL). */
  readonly url: string;
  /** JetStream store directory ('' for an external server). */
  readonly storeDir: string;
  readonly external: boolean;
  readonly pid: number | undefined;
  /** Milliseconds from the call to startNats until the server accepted a client. */
  readonly startMs: number;
  /** SIGTERM, then SIGKILL after a few seconds; resolves once the process is gone. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;
const APT_TIMEOUT_MS = 5 * 60_000;

/**
 * Starts `nats-server` with JetStream on 127.0.0.1 (installing it with apt on Debian/Ubuntu as root
 * when missing), or hands out the server named by QPQ_NATS_URL when that is set.
 *
 * @example
 * const nats = await startNats();
 * const nc = await connect({ servers: nats.url });
 * await nats.stop();
 */
export async function startNats(opts: NatsOptions = {}): Promise<NatsHandle> {
  const external = process.env.QPQ_NATS_URL;
  if (external) {
    return { url: external, storeDir: '', external: true, pid: undefined, startMs: 0, stop: async () => undefined };
  }
  const started = Date.now();
  const binary = ensureNatsServer();
  const tempBase = opts.dir ? undefined : await mkdtemp(join(tmpdir(), 'qpq-nats-'));
  const storeDir = tempBase ? join(tempBase, 'jetstream') : resolve(opts.dir ?? '.');
  const logFile = opts.logFile ?? `${storeDir}.log`;
  await mkdir(storeDir, { recursive: true });
  const port = opts.port || (await freeTcpPort());

  // Checked up front because the readiness probe cannot tell our server from another's on the port.
  if (!(await tcpPortFree(port))) throw new Error(`cannot start nats-server: port ${port}/tcp is already in use`);
  // A unique server name, which the server's greeting carries: proof that the answer comes from ours.
  const serverName = `qpq-${process.pid}-${randomBytes(4).toString('hex')}`;
  const proc = spawnOwned(binary, ['-js', '-sd', storeDir, '-a', LOOPBACK, '-p', String(port), '-n', serverName], {
    logFile,
  });
  try {
    await pollUntil(
      async () => {
        if (proc.hasExited()) throw new Error(`nats-server exited during start-up:\n${tailFile(logFile, 20)}`);
        return greets(port, serverName);
      },
      {
        timeoutMs: READY_TIMEOUT_MS,
        intervalMs: 50,
        onTimeout: () => new Error(`nats-server did not accept connections within 15 s:\n${tailFile(logFile, 20)}`),
      },
    );
  } catch (err) {
    await stopProcess(proc, 'SIGTERM', STOP_GRACE_MS);
    if (tempBase) await rm(tempBase, { recursive: true, force: true });
    throw err;
  }

  let stopping: Promise<void> | undefined;
  return {
    url: `nats://${LOOPBACK}:${port}`,
    storeDir,
    external: false,
    pid: proc.pid,
    startMs: Date.now() - started,
    stop: () =>
      (stopping ??= (async () => {
        await stopProcess(proc, 'SIGTERM', STOP_GRACE_MS);
        if (tempBase) await rm(tempBase, { recursive: true, force: true });
      })()),
  };
}

/**
 * A NATS server greets every client with an `INFO {...}` line, sent only once it is serving (and,
 * with -js, once JetStream is up), so that greeting, naming our server, is the readiness signal.
 */
function greets(port: number, serverName: string): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = tcpConnect({ host: LOOPBACK, port });
    let data = '';
    const finish = (ok: boolean) => {
      socket.destroy();
      resolvePromise(ok);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString();
      const line = data.indexOf('\r\n');
      if (line >= 0) finish(data.startsWith('INFO ') && data.slice(0, line).includes(`"server_name":"${serverName}"`));
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
  });
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The path of nats-server, installed with apt when that is possible and it is missing. */
export function ensureNatsServer(): string {
  const found = findOnPath('nats-server');
  if (found) return found;
  const debianRoot = process.platform === 'linux' && process.getuid?.() === 0 && existsSync('/etc/debian_version');
  if (debianRoot && findOnPath('apt-get')) {
    process.stderr.write('qpq: nats-server is missing; installing it with apt-get…\n');
    if (!aptInstall()) {
      aptGet(['update']);
      aptInstall();
    }
    const installed = findOnPath('nats-server');
    if (installed) return installed;
  }
  throw new Error(
    'nats-server is not installed: install it (Debian/Ubuntu: `sudo apt-get install nats-server`, macOS: ' +
      '`brew install nats-server`, or a release from https://github.com/nats-io/nats-server/releases), ' +
      'or set QPQ_NATS_URL to a NATS server with JetStream',
  );
}

function aptInstall(): boolean {
  return aptGet(['install', '-y', '--no-install-recommends', 'nats-server']);
}

function aptGet(args: string[]): boolean {
  // The lock timeout lets two test processes that both found nats-server missing take turns.
  const res = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=120', ...args], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: APT_TIMEOUT_MS,
  });
  return res.status === 0;
}
