// Runs a staged image the way `docker run` would run the real one: its ENTRYPOINT from its WORKDIR,
// with only its ENV (plus what the caller passes, like `-e`), as its USER when we are root. Nothing
// of the environment of the process that runs us leaks in (no NODE_PATH, no NODE_OPTIONS), and the
// staging folder sits outside the repository, so a package missing from the image cannot be found in
// the repository's node_modules instead.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { spawnOwned, waitForExit } from '@qpq/testnet';
import type { StagedImage } from './stage.js';

export interface RunImageOptions {
  /** Arguments after the ENTRYPOINT, as in `docker run IMAGE args…`. */
  args?: readonly string[];
  /** Like `docker run -e`: wins over the image's ENV. */
  env?: Readonly<Record<string, string>>;
  /** stdout and stderr are appended here. */
  logFile: string;
}

export interface ImageProcess {
  readonly pid: number;
  /** Who it runs as: the image's USER, or the current user when we are not root. */
  readonly runsAs: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  /** SIGTERM (what Kubernetes sends), SIGKILL after `graceMs`; resolves with how it ended. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }>;
  /** The last lines it wrote. */
  tail(lines?: number): string;
}

/** The image's USER as numbers; images must use a numeric user (Kubernetes' runAsNonRoot checks it). */
export function numericUser(user: string): { uid: number; gid: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(user.trim());
  if (!m) throw new Error(`USER ${JSON.stringify(user)} is not numeric (uid or uid:gid)`);
  const uid = Number(m[1]);
  return { uid, gid: m[2] === undefined ? uid : Number(m[2]) };
}

/** The command line and environment `docker run` would use, mapped to this machine. */
export function containerCommand(
  image: StagedImage,
  opts: Pick<RunImageOptions, 'args' | 'env'> = {},
): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  const [program, ...entryArgs] = image.config.entrypoint;
  // Only node is replayed: it is the image's node (same major version, checked by the tests).
  if (program !== 'node') throw new Error(`${image.target}: ENTRYPOINT starts ${String(program)}, not node`);
  const args = [...entryArgs, ...(opts.args ?? image.config.cmd)];
  const env: NodeJS.ProcessEnv = {
    // Docker's default PATH, with this machine's node first.
    PATH: `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: '/',
    ...image.config.env,
    ...opts.env,
  };
  return { command: process.execPath, args, env };
}

export function runImage(image: StagedImage, opts: RunImageOptions): ImageProcess {
  const { command, args, env } = containerCommand(image, opts);
  const asRoot = process.getuid?.() === 0;
  const ids = numericUser(image.config.user);
  const proc = spawnOwned(command, args, { cwd: image.dir, env, logFile: opts.logFile, ...(asRoot ? ids : {}) });
  const tail = (lines = 40) => {
    try {
      return readFileSync(opts.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  };
  const stop = async (graceMs = 10_000) => {
    if (proc.hasExited()) return { ...(await proc.exited), killed: false };
    proc.child.kill('SIGTERM');
    const killed = !(await waitForExit(proc, graceMs));
    if (killed) proc.child.kill('SIGKILL');
    return { ...(await proc.exited), killed };
  };
  return {
    pid: proc.pid,
    runsAs: asRoot ? `${ids.uid}:${ids.gid}` : `${process.getuid?.() ?? '?'} (not root: USER not applied)`,
    exited: proc.exited,
    hasExited: proc.hasExited,
    stop,
    tail,
  };
}

/** Runs the image to completion (like `docker run --rm`); kills it after `timeoutMs`. */
export async function runImageToExit(
  image: StagedImage,
  opts: RunImageOptions & { timeoutMs: number },
): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const proc = runImage(image, opts);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), opts.timeoutMs)));
  const first = await Promise.race([proc.exited, late]);
  clearTimeout(timer);
  if (first === 'late') {
    await proc.stop(1_000);
    throw new Error(`${image.target} did not exit within ${opts.timeoutMs / 1000} s:\n${proc.tail()}`);
  }
  return { ...first, output: proc.tail(200) };
}
