// A benchmark's own server in a process of its own (a TLS baseline, a bare framing server): a program
// run with tsx that prints one line once it listens (its ports) and exits when its stdin closes.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { withDeadline } from './scenarios/blob-deadline.js';
import type { BenchContext } from './scenario.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

export interface ChildServer {
  readonly pid: number | undefined;
  /** What it printed once it listened. */
  readonly firstLine: string;
  /** Closes its stdin and waits for it to exit (SIGKILL after a grace period). Idempotent. */
  stop(): Promise<void>;
}

export interface ChildServerOptions {
  /** For errors, e.g. 'the TLS baseline server'. */
  what: string;
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Node flags before `--import tsx` (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

/** Starts `program`; stopped with the run (ctx.own) if not before. */
export async function startChildServer(
  ctx: BenchContext,
  program: string,
  opts: ChildServerOptions,
): Promise<ChildServer> {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', program], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = ctx.own(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin?.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  });
  try {
    const line = await withDeadline(ctx.signal, START_TIMEOUT_MS, `starting ${opts.what}`, (signal) =>
      firstLine(child.stdout!, signal, opts.what),
    );
    return { pid: child.pid, firstLine: line, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function firstLine(stream: NodeJS.ReadableStream, signal: AbortSignal, what: string): Promise<string> {
  const lines = createInterface({ input: stream });
  return new Promise<string>((resolve, reject) => {
    const settle = (fn: () => void) => {
      signal.removeEventListener('abort', onAbort);
      lines.off('line', onLine);
      lines.off('close', onClose);
      lines.close();
      fn();
    };
    const onLine = (line: string) => settle(() => resolve(line));
    const onClose = () => settle(() => reject(new Error(`${what} exited before it listened`)));
    const onAbort = () => settle(() => reject(signal.reason));
    lines.on('line', onLine);
    lines.on('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
