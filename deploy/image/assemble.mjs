// What goes into qpq's container images, in one place. The Dockerfile runs this inside `docker build`
// and deploy/image/stage.ts runs it without Docker, so both produce the same layout. Plain JavaScript
// on Node's standard library only: it runs in the image build before any package is installed.
//
//   node deploy/image/assemble.mjs manifests DEST     (cwd: the build context) the lockfile, every
//                                                      workspace's package.json and this script
//   node deploy/image/assemble.mjs install            (cwd: those manifests) npm ci, production only
//   node deploy/image/assemble.mjs assemble SRC OUT [TARGET…]
//                                                      (cwd: that install) OUT/<target>/ for each target:
//                                                      the image's /app
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Image target → the arguments `node` gets in that image's ENTRYPOINT (the Dockerfile has one final
 * stage per target, named the same; deploy/image/stage.integration.test.ts checks that the two agree). The
 * entry file decides the workspace; `--import` preloads must resolve from /app.
 */
export const TARGETS = {
  gateway: ['--import', 'tsx', 'services/gateway/src/bin.ts'],
  auth: ['--import', 'tsx', 'services/auth/src/bin.ts'],
  keypackage: ['--import', 'tsx', 'services/keypackage/src/bin.ts'],
  delivery: ['--import', 'tsx', 'services/delivery/src/bin.ts'],
  ktlog: ['--import', 'tsx', 'services/ktlog/src/bin.ts'],
  blob: ['--import', 'tsx', 'services/blob/src/bin.ts'],
  // The CLI's launcher registers tsx itself, as the installed `qpq` command does.
  cli: ['clients/cli/bin/qpq.mjs'],
};

/** Root files every image carries: tsx compiles with the repository's tsconfig, as in development. */
const ROOT_FILES = ['tsconfig.json', 'tsconfig.base.json'];
/** Files of npm packages nothing reads at run time: type declarations and source maps (near half the bytes). */
const COMPILE_TIME_ONLY = /\.d\.[cm]?ts$|\.(?:[cm]?js|d\.[cm]?ts)\.map$/;

function fail(message) {
  process.stderr.write(`assemble: ${message}\n`);
  process.exit(1);
}

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));

/** The workspace folders (relative, '/'-separated) named by the root package.json's `workspaces` globs. */
export function workspaceDirs(root) {
  const manifest = readJson(join(root, 'package.json'));
  const patterns = Array.isArray(manifest.workspaces) ? manifest.workspaces : (manifest.workspaces?.packages ?? []);
  const found = new Set();
  for (const pattern of patterns) {
    let dirs = [''];
    for (const segment of pattern.split('/').filter(Boolean)) {
      if (segment === '**') throw new Error(`workspace pattern ${pattern}: '**' is not supported here`);
      const re = new RegExp(`^${segment.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
      dirs = dirs.flatMap((dir) => {
        const abs = join(root, dir);
        if (!existsSync(abs)) return [];
        return readdirSync(abs, { withFileTypes: true })
          .filter((e) => e.isDirectory() && e.name !== 'node_modules' && re.test(e.name))
          .map((e) => (dir ? `${dir}/${e.name}` : e.name));
      });
    }
    for (const dir of dirs) if (existsSync(join(root, dir, 'package.json'))) found.add(dir);
  }
  return [...found].sort();
}

/** `manifests DEST`: what `npm ci` needs, and nothing that changes with the sources (keeps Docker's cache). */
function manifests(dest) {
  const root = process.cwd();
  const self = relative(root, fileURLToPath(import.meta.url));
  if (self.startsWith('..') || isAbsolute(self)) fail(`run me from the build context (I am at ${self})`);
  const files = ['package.json', 'package-lock.json', self, ...workspaceDirs(root).map((w) => `${w}/package.json`)];
  for (const file of files) {
    if (!existsSync(join(root, file))) fail(`${file} is missing from the build context (see .dockerignore)`);
    mkdirSync(dirname(join(dest, file)), { recursive: true });
    copyFileSync(join(root, file), join(dest, file));
  }
  process.stdout.write(`assemble: ${files.length} manifest files in ${dest}\n`);
}

/**
 * `install`: the production dependencies of every target's workspace, exactly as locked. Install
 * scripts are not run: no production dependency needs one (npm 11's allowScripts lets only the
 * test-only embedded Postgres run its script), and none should run with the build's privileges.
 */
function install() {
  const all = workspaceDirs(process.cwd());
  const entries = Object.values(TARGETS).map((args) => args[args.length - 1]);
  const workspaces = [...new Set(entries.map((entry) => all.find((w) => entry.startsWith(`${w}/`))))];
  if (workspaces.includes(undefined)) fail("a target's entry file is in no workspace");
  const args = ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'];
  for (const w of workspaces) args.push(`--workspace=${w}`);
  process.stdout.write(`assemble: npm ${args.join(' ')}\n`);
  try {
    execFileSync('npm', args, {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, npm_config_update_notifier: 'false' },
    });
  } catch {
    fail('npm ci failed');
  }
}

/**
 * Finds the folder Node would load `name` from when imported by code in `fromDir` (relative to
 * `root`): the first `node_modules/<name>` up the tree. Answers the real folder and, when the hit is a
 * symlink (a workspace), the link itself.
 */
function resolvePackage(root, fromDir, name) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    if (basename(dir) !== 'node_modules') {
      const candidate = join(dir, 'node_modules', name);
      const abs = join(root, candidate);
      let stat;
      try {
        stat = lstatSync(abs);
      } catch {
        stat = undefined;
      }
      if (stat?.isSymbolicLink()) {
        const real = relative(root, realpathSync(abs));
        if (real.startsWith('..') || isAbsolute(real)) throw new Error(`${candidate} links outside the install`);
        return { dir: real, link: { path: candidate, target: readlinkSync(abs) } };
      }
      if (stat) return { dir: candidate };
    }
    if (dir === '.' || dir === '' || dir === sep) return undefined;
  }
}

/**
 * The packages a workspace loads at run time: its dependencies, optional and peer dependencies that
 * are installed, and theirs, transitively. devDependencies are never followed, so test-only
 * workspaces (libs/testnet) and tools never reach an image. Type packages are left out: nothing
 * loads them at run time.
 */
function closure(root, start) {
  const packages = new Set([start]);
  const links = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const dir = queue.shift();
    const manifest = readJson(join(root, dir, 'package.json'));
    const optional = new Set(Object.keys(manifest.optionalDependencies ?? {}));
    for (const [name, meta] of Object.entries(manifest.peerDependenciesMeta ?? {}))
      if (meta?.optional) optional.add(name);
    const names = new Set([
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
      ...optional,
    ]);
    for (const name of [...names].sort()) {
      if (name.startsWith('@types/')) continue;
      const found = resolvePackage(root, dir, name);
      if (!found) {
        if (optional.has(name)) continue; // e.g. a native build for another platform
        throw new Error(`${dir} depends on ${name}, which is not installed`);
      }
      if (found.link) links.set(found.link.path, found.link.target);
      if (!packages.has(found.dir)) {
        packages.add(found.dir);
        queue.push(found.dir);
      }
    }
  }
  return { packages, links };
}

/** Copies a tree, keeping file modes (native binaries stay executable) and symlinks as they are. */
function copyTree(src, dest, keep) {
  mkdirSync(dest, { recursive: true });
  for (const entry of readdirSync(src, { withFileTypes: true })) {
    const from = join(src, entry.name);
    const to = join(dest, entry.name);
    if (!keep(entry)) continue;
    if (entry.isSymbolicLink()) symlinkSync(readlinkSync(from), to);
    else if (entry.isDirectory()) copyTree(from, to, keep);
    else if (entry.isFile()) copyFileSync(from, to);
  }
}

/** Module specifiers a source file loads at run time (type-only imports are erased by tsx). */
export function runtimeSpecifiers(code) {
  const text = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  const found = new Set();
  for (const m of text.matchAll(/^[ \t]*(?:import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]/gm)) {
    const [, typeOnly, clause, specifier] = m;
    const named = /^\{([^}]*)\}$/.exec(clause.trim());
    const items = named
      ? named[1]
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : [];
    const allTypes = items.length > 0 && items.every((s) => s.startsWith('type '));
    if (!typeOnly && !allTypes) found.add(specifier);
  }
  for (const m of text.matchAll(/^[ \t]*import\s*['"]([^'"]+)['"]/gm)) found.add(m[1]);
  for (const m of text.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) found.add(m[1]);
  return [...found];
}

const BUILTINS = new Set(builtinModules);

/** The file a workspace's package.json `exports` maps `subpath` ('.', './testing') to. */
function exportedFile(root, workspace, subpath) {
  const { exports } = readJson(join(root, workspace, 'package.json'));
  const bySubpath = exports && typeof exports === 'object' && Object.keys(exports).some((k) => k.startsWith('.'));
  let target = bySubpath ? exports[subpath] : subpath === '.' ? exports : undefined;
  while (target && typeof target === 'object') target = target.import ?? target.node ?? target.default;
  return typeof target === 'string' ? join(workspace, target) : undefined;
}

/**
 * The workspace source files the entry file loads, following relative imports, dynamic imports
 * with a literal specifier and imports of @qpq/* workspaces (through their `exports`), so test
 * helpers that live in src/ stay out. Every bare import must be a package of the target's
 * production closure: that is what catches a dependency that works in the repository only because
 * npm hoisted it there. Answers the files and the problems found.
 */
function sourceGraph(root, source, entry, packages) {
  const files = new Set([entry]);
  const queue = [entry];
  const problems = [];
  while (queue.length > 0) {
    const file = queue.shift();
    const abs = join(source, file);
    if (!existsSync(abs)) {
      problems.push(`${file} is missing from the sources`);
      continue;
    }
    const add = (next) => {
      if (!files.has(next)) {
        files.add(next);
        queue.push(next);
      }
    };
    for (const specifier of runtimeSpecifiers(readFileSync(abs, 'utf8'))) {
      if (specifier.startsWith('node:') || BUILTINS.has(specifier)) continue;
      if (specifier.startsWith('.')) {
        const target = join(dirname(file), specifier);
        const hit = [target, target.replace(/\.js$/, '.ts'), target.replace(/\.mjs$/, '.mts')].find(
          (c) => existsSync(join(source, c)) && lstatSync(join(source, c)).isFile(),
        );
        if (hit) add(hit);
        else problems.push(`${file} imports ${specifier}, which does not exist`);
        continue;
      }
      const parts = specifier.split('/');
      const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
      const found = resolvePackage(root, dirname(file), name);
      if (!found || !packages.has(found.dir)) {
        problems.push(`${file} imports ${specifier}, which is not a production dependency here`);
      } else if (found.link) {
        const subpath = `.${specifier.slice(name.length)}`;
        const target = exportedFile(root, found.dir, subpath);
        if (target) add(target);
        else problems.push(`${file} imports ${specifier}, which ${found.dir}/package.json does not export`);
      }
    }
  }
  return { files, problems };
}

function copyFile(src, dest) {
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(src, dest);
}

function assemble(source, out, targets) {
  const root = process.cwd();
  const workspaces = workspaceDirs(root);
  let failed = 0;
  for (const target of targets) {
    const args = TARGETS[target];
    if (!args) fail(`unknown target ${target} (targets: ${Object.keys(TARGETS).join(', ')})`);
    const entry = args[args.length - 1];
    const start = workspaces.find((w) => entry.startsWith(`${w}/`));
    if (!start) fail(`${target}: ${entry} is in no workspace`);
    const dest = join(out, target);
    rmSync(dest, { recursive: true, force: true });
    mkdirSync(dest, { recursive: true });
    try {
      const { packages, links } = closure(root, start);
      const { files, problems } = sourceGraph(root, source, entry, packages);
      // `node --import tsx` resolves the preload from the working directory, /app.
      for (let i = 0; i < args.length - 1; i++) {
        if (args[i] !== '--import') continue;
        const found = resolvePackage(root, '.', args[i + 1]);
        if (!found || !packages.has(found.dir)) {
          problems.push(`--import ${args[i + 1]} is not a production dependency of ${start} installed at the top`);
        }
      }
      if (problems.length > 0) throw new Error(`${target}: would fail at run time:\n  ${problems.join('\n  ')}`);
      for (const file of ROOT_FILES) copyFile(join(source, file), join(dest, file));
      const shipped = [...packages].filter((dir) => workspaces.includes(dir)).sort();
      // Node reads a workspace's package.json for "type" and "exports".
      for (const dir of shipped) copyFile(join(source, dir, 'package.json'), join(dest, dir, 'package.json'));
      for (const file of files) copyFile(join(source, file), join(dest, file));
      for (const dir of packages) {
        // A package's own node_modules holds other packages, copied only when they are needed.
        if (workspaces.includes(dir)) continue;
        copyTree(join(root, dir), join(dest, dir), (e) => e.name !== 'node_modules' && !COMPILE_TIME_ONLY.test(e.name));
      }
      for (const [path, link] of links) {
        mkdirSync(dirname(join(dest, path)), { recursive: true });
        symlinkSync(link, join(dest, path));
      }
      process.stdout.write(
        `assemble: ${target}: ${packages.size - shipped.length} packages, ${files.size} source files of ${shipped.join(' ')}\n`,
      );
    } catch (err) {
      process.stderr.write(`assemble: ${err instanceof Error ? err.message : String(err)}\n`);
      failed++;
    }
  }
  if (failed > 0) fail(`${failed} of ${targets.length} targets failed`);
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const [command, ...args] = process.argv.slice(2);
  if (command === 'manifests' && args.length === 1) manifests(resolve(args[0]));
  else if (command === 'install' && args.length === 0) install();
  else if (command === 'assemble' && args.length >= 2) {
    const [source, out, ...targets] = args;
    assemble(resolve(source), resolve(out), targets.length > 0 ? targets : Object.keys(TARGETS));
  } else {
    fail('usage: assemble.mjs manifests DEST | install | assemble SOURCE OUT [TARGET…]');
  }
}
