// Builds the runtime layout of every container image without Docker: the build context filtered by
// .dockerignore, then the Dockerfile's build steps (deploy/image/assemble.mjs manifests, install,
// assemble) in a staging folder, then each image's /app read back with the configuration its final
// stage in the Dockerfile gives it.
//
//   node --import tsx deploy/image/stage.ts [--dir DIR] [TARGET…]
import { execFile } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TARGETS } from './assemble.mjs';
import { copyBuildContext } from './dockerignore.js';
import { finalStages, imageConfig, parseDockerfile, type ImageConfig } from './dockerfile.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ASSEMBLER = 'deploy/image/assemble.mjs';
/** `npm ci` of every production dependency; generous for a cold npm cache. */
const INSTALL_TIMEOUT_MS = 10 * 60_000;
const STEP_TIMEOUT_MS = 2 * 60_000;

export interface StagedImage {
  readonly target: string;
  /** The image's WORKDIR (/app) on this machine. */
  readonly dir: string;
  readonly config: ImageConfig;
  /** Regular files and their apparent size (what the image layer holds, before compression). */
  readonly files: number;
  readonly bytes: number;
  /** The part of `bytes` under node_modules. */
  readonly nodeModulesBytes: number;
}

export interface StagedImages {
  /** The staging folder: context/ (Docker's /src), app/ (the install), out/<target>/ (each image's /app). */
  readonly dir: string;
  readonly images: ReadonlyMap<string, StagedImage>;
  /** Milliseconds of each step. */
  readonly timings: { readonly context: number; readonly install: number; readonly assemble: number };
}

export interface StageOptions {
  /** Staging folder (emptied first). Default: a new folder under the OS temp dir. */
  dir?: string;
  /** Default: every target. */
  targets?: readonly string[];
  /** The repository to build from. Default: this one. */
  root?: string;
}

/** A build step that failed, with the end of its output. */
export class StageError extends Error {
  override readonly name = 'StageError';
}

/**
 * The environment of the build steps: ours without what npm or Node put there for the process that
 * started us (npm test sets npm_config_local_prefix to the repository, which `npm ci` would obey).
 */
function buildEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_registry', 'npm_config_cache', 'npm_config_userconfig']);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.toLowerCase().startsWith('npm_') && !keep.has(k.toLowerCase())) continue;
    if (k === 'INIT_CWD' || k === 'NODE_OPTIONS' || k === 'NODE_PATH') continue;
    env[k] = v;
  }
  return env;
}

function step(args: string[], cwd: string, timeoutMs: number): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      process.execPath,
      args,
      { cwd, env: buildEnv(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (!err) return resolvePromise(stdout);
        const output = `${stdout}${stderr}`.trim().split('\n').slice(-30).join('\n');
        const why = err.killed ? `timed out after ${timeoutMs / 1000} s` : `failed (exit ${String(err.code)})`;
        reject(new StageError(`\`node ${args.join(' ')}\` in ${cwd} ${why}:\n${output}`));
      },
    );
  });
}

/** Regular files under `dir` and their apparent size; symlinks count as nothing. */
export async function folderSize(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const sub = await folderSize(path);
      files += sub.files;
      bytes += sub.bytes;
    } else if (entry.isFile()) {
      files++;
      bytes += (await lstat(path)).size;
    }
  }
  return { files, bytes };
}

/**
 * What the Dockerfile and the assembler must agree on for one target; answers the disagreements.
 * The staged /app stands in for the image's only because the final stage copies /out/<target>
 * into its WORKDIR, and runs the entry file the assembler followed.
 */
export function configProblems(target: string, config: ImageConfig): string[] {
  const problems: string[] = [];
  const args = TARGETS[target];
  if (!args) return [`the Dockerfile's stage ${target} is not a target of ${ASSEMBLER}`];
  const strip = (p: string) => p.replace(/\/+$/, '') || '/';
  const intoApp = config.copies.filter((c) => strip(c.dest) === strip(config.workdir));
  const expected = `/out/${target}`;
  if (intoApp.length !== 1 || intoApp[0]?.sources.length !== 1 || strip(intoApp[0].sources[0] ?? '') !== expected) {
    problems.push(`${target}: the image's ${config.workdir} must be exactly one COPY --from=… ${expected}/`);
  }
  const wanted = JSON.stringify(['node', ...args]);
  if (JSON.stringify(config.entrypoint) !== wanted) {
    problems.push(
      `${target}: ENTRYPOINT is ${JSON.stringify(config.entrypoint)}, ${ASSEMBLER} assembles for ${wanted}`,
    );
  }
  return problems;
}

/** Builds the layout of the images named by `targets` (default: all) in a staging folder. */
export async function stageImages(opts: StageOptions = {}): Promise<StagedImages> {
  const root = opts.root ?? repoRoot;
  const dockerfile = parseDockerfile(await readFile(join(root, 'Dockerfile'), 'utf8'));
  const finals = finalStages(dockerfile);
  const targets = opts.targets ?? finals;
  const configs = new Map(targets.map((t) => [t, imageConfig(dockerfile, t)] as const));
  const problems = [...configs].flatMap(([t, c]) => configProblems(t, c));
  const missing = Object.keys(TARGETS).filter((t) => !finals.includes(t));
  if (missing.length > 0) problems.push(`the Dockerfile has no final stage for ${missing.join(', ')}`);
  if (problems.length > 0)
    throw new StageError(`the Dockerfile and ${ASSEMBLER} disagree:\n  ${problems.join('\n  ')}`);

  const dir = opts.dir ? resolve(opts.dir) : await mkdtemp(join(tmpdir(), 'qpq-image-'));
  if (opts.dir) await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  // The images run as a non-root user, which must be able to read its /app here too.
  await chmod(dir, 0o755);
  const context = join(dir, 'context');
  const app = join(dir, 'app');
  const out = join(dir, 'out');

  let t = Date.now();
  await copyBuildContext(root, context);
  // Docker: `RUN node deploy/image/assemble.mjs manifests /manifests` in /src, COPY to /app.
  await step([ASSEMBLER, 'manifests', app], context, STEP_TIMEOUT_MS);
  const contextMs = Date.now() - t;
  t = Date.now();
  await step([ASSEMBLER, 'install'], app, INSTALL_TIMEOUT_MS);
  const installMs = Date.now() - t;
  t = Date.now();
  await step([ASSEMBLER, 'assemble', context, out, ...targets], app, STEP_TIMEOUT_MS);
  const assembleMs = Date.now() - t;

  const images = new Map<string, StagedImage>();
  for (const target of targets) {
    const imageDir = join(out, target);
    const all = await folderSize(imageDir);
    const deps = await folderSize(join(imageDir, 'node_modules')).catch(() => ({ files: 0, bytes: 0 }));
    images.set(target, {
      target,
      dir: imageDir,
      config: configs.get(target) as ImageConfig,
      files: all.files,
      bytes: all.bytes,
      nodeModulesBytes: deps.bytes,
    });
  }
  return { dir, images, timings: { context: contextMs, install: installMs, assemble: assembleMs } };
}

export const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** One line per image: size, files, dependencies' share. */
export function sizeReport(staged: StagedImages): string {
  return [...staged.images.values()]
    .map(
      (i) =>
        `${i.target.padEnd(11)} ${mib(i.bytes).padStart(10)} in ${String(i.files).padStart(5)} files ` +
        `(node_modules ${mib(i.nodeModulesBytes)})`,
    )
    .join('\n');
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { dir: { type: 'string' } }, allowPositionals: true });
  const staged = await stageImages({
    ...(values.dir ? { dir: values.dir } : {}),
    ...(positionals.length > 0 ? { targets: positionals } : {}),
  });
  const { context, install, assemble } = staged.timings;
  console.log(`staged in ${staged.dir}/out (context ${context} ms, npm ci ${install} ms, assemble ${assemble} ms)`);
  console.log(sizeReport(staged));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
