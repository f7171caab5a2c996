// promtool (Prometheus's rule checker and rule unit-test runner): the one on PATH, else the binary from
// the Debian package `prometheus`, downloaded with apt and unpacked into the tools cache. Nothing is
// installed and no service is started.
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CommandError, findOnPath, isExecutable, run } from './exec.js';
import { toolsCacheDir } from './paths.js';

const DEBIAN_PACKAGE = 'prometheus';

/** promtool could not be found nor obtained; the message says what to do. */
export class PromtoolUnavailableError extends Error {
  override readonly name = 'PromtoolUnavailableError';
}

let pending: Promise<string> | undefined;

/**
 * Path of a promtool binary. Parallel callers are safe: each unpacks in its own temporary directory and
 * the binary reaches the cache by an atomic rename.
 *
 * @example
 * const promtool = await ensurePromtool();
 * await run(promtool, ['check', 'rules', 'deploy/grafana/alerts.yaml']);
 */
export function ensurePromtool(): Promise<string> {
  pending ??= obtainPromtool().catch((error: unknown) => {
    pending = undefined;
    throw error;
  });
  return pending;
}

async function obtainPromtool(): Promise<string> {
  const onPath = await findOnPath('promtool');
  if (onPath) return onPath;
  const target = join(toolsCacheDir, 'promtool');
  if (await isExecutable(target)) return target;

  for (const tool of ['apt-get', 'dpkg-deb']) {
    if (!(await findOnPath(tool))) {
      throw new PromtoolUnavailableError(
        `promtool is not on PATH and cannot be fetched: \`${tool}\` is missing (not a Debian-based system?). ` +
          "Install Prometheus's promtool and put it on PATH.",
      );
    }
  }

  await mkdir(toolsCacheDir, { recursive: true });
  const work = await mkdtemp(join(toolsCacheDir, '.promtool-'));
  try {
    const deb = await downloadDebianPackage(work);
    const unpacked = join(work, 'root');
    await run('dpkg-deb', ['-x', deb, unpacked], { timeoutMs: 120_000 });
    const staged = join(unpacked, 'usr', 'bin', 'promtool');
    if (!(await isExecutable(staged))) throw new PromtoolUnavailableError(`${deb} holds no usr/bin/promtool`);
    await run(staged, ['--version'], { timeoutMs: 30_000 });
    await rename(staged, target);
    return target;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** `apt-get download` into `dir`; refreshes the package lists once only if the first attempt fails. */
async function downloadDebianPackage(dir: string): Promise<string> {
  const download = () => run('apt-get', ['download', DEBIAN_PACKAGE], { cwd: dir, timeoutMs: 600_000 });
  try {
    await download();
  } catch (first) {
    try {
      await run('apt-get', ['update'], { timeoutMs: 600_000 });
      await download();
    } catch (second) {
      const why = [first, second].map((e) => (e instanceof CommandError ? e.message : String(e))).join('\n');
      throw new PromtoolUnavailableError(
        `promtool is not on PATH and \`apt-get download ${DEBIAN_PACKAGE}\` failed, even after \`apt-get update\` ` +
          `(which needs root). Install it (apt-get install ${DEBIAN_PACKAGE}) or put promtool on PATH.\n${why}`,
        { cause: second },
      );
    }
  }
  const debs = (await readdir(dir)).filter((name) => name.endsWith('.deb'));
  if (debs.length !== 1)
    throw new PromtoolUnavailableError(`apt-get download left ${debs.length} .deb files in ${dir}`);
  return join(dir, debs[0]!);
}
