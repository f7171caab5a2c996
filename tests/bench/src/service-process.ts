// One qpq backend as its own OS process (`node --import tsx services/<name>/src/bin.ts`), as it runs
// in production: the benchmark's clients then never share an event loop (or a core's time slice
// accounting) with the service they measure. @qpq/testnet's TestNetwork always starts every service;
// a scenario about one service needs only that one.
import { freeTcpPort, isReady } from '@qpq/testnet';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
/** SIGTERM lets the service drain (QPQ_DRAIN_TIMEOUT); after this long it is killed. */
const STOP_GRACE_MS = 10_000;

export interface ServiceProcessOptions {
  /** The package under services/, e.g. `ktlog`. */
  service: string;
  /** Its QPQ_* environment; QPQ_LISTEN and QPQ_METRICS_LISTEN are added here (free ports). */
  env: Record<string, string>;
  /** stdout and stderr are appended here. */
  logFile: string;
}

export interface ServiceProcess {
  /** "127.0.0.1:<port>" of its gRPC listener. */
  readonly grpcAddress: string;
  readonly pid: number;
  /** SIGTERM (it drains), then SIGKILL after 10 s; resolves once it has exited. Idempotent. */
  stop(): Promise<void>;
}

/** Starts the service and resolves once its /readyz answers 200 (it fails fast if the process dies). */
export async function startServiceProcess(opts: ServiceProcessOptions): Promise<ServiceProcess> {
  const grpcAddress = `127.0.0.1:${await freeTcpPort()}`;
  const metricsAddress = `127.0.0.1:${await freeTcpPort()}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...opts.env,
    QPQ_LISTEN: grpcAddress,
    QPQ_METRICS_LISTEN: metricsAddress,
  };
  const fd = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    const command = [process.execPath, '--import', 'tsx', `services/${opts.service}/src/bin.ts`];
    // With pdeathsig the kernel kills the service if this process dies without stopping it (SIGKILL).
    const argv = canUsePdeathsig() ? ['setpriv', '--pdeathsig', 'KILL', '--', ...command] : command;
    // Its own process group: a Ctrl-C in the terminal reaches only the benchmark, which stops it in order.
    child = spawn(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, env, detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${opts.service}`);
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  }).then(() => {
    exited = true;
  });
  // Last resort when the benchmark exits without stopping it (a bug): nothing else would.
  const killOnExit = () => killQuietly(-pid, 'SIGKILL');
  process.once('exit', killOnExit);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (!exited) {
        killQuietly(pid, 'SIGTERM');
        if (!(await within(exit, STOP_GRACE_MS))) killQuietly(-pid, 'SIGKILL');
        await within(exit, 5_000);
      }
      process.removeListener('exit', killOnExit);
      if (!exited) throw new Error(`${opts.service} (pid ${pid}) did not exit`);
    })());

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exited) {
      throw new Error(`${opts.service} exited during start-up; last lines of ${opts.logFile}:\n${tail(opts.logFile)}`);
    }
    if (await isReady(`http://${metricsAddress}/readyz`)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${opts.service} was not ready within ${READY_TIMEOUT_MS / 1000} s; see ${opts.logFile}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { grpcAddress, pid, stop };
}

async function within(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const done = await Promise.race([promise.then(() => true as const), timeout]);
  clearTimeout(timer);
  return done;
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

let pdeathsig: boolean | undefined;
function canUsePdeathsig(): boolean {
  if (pdeathsig === undefined) {
    const res =
      process.platform === 'linux' ? spawnSync('setpriv', ['--help'], { encoding: 'utf8', timeout: 5_000 }) : undefined;
    pdeathsig = res?.status === 0 && res.stdout.includes('--pdeathsig');
  }
  return pdeathsig;
}

function tail(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
