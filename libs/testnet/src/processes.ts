import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, readdirSync, statSync, writeSync } from 'node:fs';

/** A child process this library started and is responsible for stopping. */
export interface OwnedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly hasExited: () => boolean;
}

export interface SpawnOwnedOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended to this file. */
  logFile?: string;
  uid?: number;
  gid?: number;
}

let pdeathsigSupported: boolean | undefined;

/**
 * Whether `setpriv --pdeathsig` exists (util-linux ≥ 2.33). With it, a child is killed by the kernel
 * when this process dies however it dies (SIGKILL, test-runner timeout), so a crashed test leaves no
 * Postgres, NATS or service behind.
 */
export function canUsePdeathsig(): boolean {
  if (pdeathsigSupported === undefined) {
    if (process.platform !== 'linux') pdeathsigSupported = false;
    else {
      const res = spawnSync('setpriv', ['--help'], { encoding: 'utf8', timeout: 5000 });
      pdeathsigSupported = res.status === 0 && res.stdout.includes('--pdeathsig');
    }
  }
  return pdeathsigSupported;
}

const owned = new Set<OwnedProcess>();
let exitHookInstalled = false;

/**
 * Last line of defence when the parent exits normally without stopping its children (a test that
 * forgot `destroy()`): children run in their own process group, so nothing else would stop them.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of owned) if (!p.hasExited()) killGroup(p.pid);
  });
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** SIGKILL to the process and its whole process group (Postgres backends share the postmaster's). */
function killGroup(pid: number): void {
  killQuietly(-pid, 'SIGKILL');
  killQuietly(pid, 'SIGKILL');
}

/**
 * Spawns a process in its own process group (so a Ctrl-C in the terminal reaches only the
 * orchestrator, which then stops everything in order), with output appended to a log file.
 */
export function spawnOwned(command: string, args: string[], opts: SpawnOwnedOptions = {}): OwnedProcess {
  const fd = opts.logFile ? openSync(opts.logFile, 'a') : undefined;
  const [cmd, argv] = canUsePdeathsig()
    ? ['setpriv', ['--pdeathsig', 'KILL', '--', command, ...args]]
    : [command, args];
  let child: ChildProcess;
  try {
    child = spawn(cmd, argv, {
      cwd: opts.cwd,
      env: opts.env,
      uid: opts.uid,
      gid: opts.gid,
      detached: true,
      stdio: ['ignore', fd ?? 'ignore', fd ?? 'ignore'],
    });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.once('error', () => {
      done = true;
      resolve({ code: null, signal: null });
    });
  });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const proc: OwnedProcess = { child, pid: child.pid, exited, hasExited: () => done };
  owned.add(proc);
  void exited.then(() => owned.delete(proc));
  installExitHook();
  return proc;
}

/** Waits for the process to exit, up to `ms`; true when it did. */
export async function waitForExit(proc: OwnedProcess, ms: number): Promise<boolean> {
  if (proc.hasExited()) return true;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const result = await Promise.race([proc.exited.then(() => true as const), timeout]);
  clearTimeout(timer);
  return result;
}

/**
 * Stops a process: `signal` first, then SIGKILL (to it and to any children it left) when it has
 * not exited after `graceMs`. Resolves once it is gone.
 */
export async function stopProcess(proc: OwnedProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (proc.hasExited()) return;
  const children = childPids(proc.pid);
  killQuietly(proc.pid, signal);
  if (await waitForExit(proc, graceMs)) return;
  for (const pid of [...children, ...childPids(proc.pid)]) killQuietly(pid, 'SIGKILL');
  killGroup(proc.pid);
  await waitForExit(proc, 5000);
}

/** Pids whose parent is `pid` (Linux /proc; empty elsewhere). */
export function childPids(pid: number): number[] {
  if (process.platform !== 'linux') return [];
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid) follows the command name, which is in parentheses and may contain spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // the process went away while we looked
    }
  }
  return out;
}

/** Whether a process with this pid exists (and is not a zombie). */
export function processAlive(pid: number): boolean {
  if (process.platform === 'linux') {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The last `lines` lines of a log file ('' when it does not exist). */
export function tailFile(path: string, lines = 40): string {
  try {
    const size = statSync(path).size;
    const fd = openSync(path, 'r');
    try {
      const len = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      return buf
        .toString('utf8')
        .split('\n')
        .slice(-lines - 1)
        .join('\n')
        .trimEnd();
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** Appends one line to a log file (used to mark restarts in a service's log). */
export function appendLine(path: string, line: string): void {
  const fd = openSync(path, 'a');
  try {
    writeSync(fd, `${line}\n`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Polls `check` every `intervalMs` until it returns true, `ms` passes (throws `onTimeout()`), or
 * `abort` fires. `check` may throw to fail fast (e.g. the process died).
 */
export async function pollUntil(
  check: () => Promise<boolean> | boolean,
  opts: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal; onTimeout: () => Error },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    opts.signal?.throwIfAborted();
    if (await check()) return;
    if (Date.now() >= deadline) throw opts.onTimeout();
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}

/** True when a service's probe URL (`/readyz`) answers 200 within a second. */
export async function isReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}
