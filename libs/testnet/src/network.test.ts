import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { TestNetwork, type ServiceName } from './network.js';
import { FIXED_PORTS, PortInUseError } from './ports.js';
import { processAlive } from './processes.js';

const FAKE_SERVICE = fileURLToPath(new URL('./testdata/fake-service.mjs', import.meta.url));
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const fakeCommand = (pkg: string) => ({ command: process.execPath, args: [FAKE_SERVICE, pkg] });

const networks: TestNetwork[] = [];
after(async () => {
  await Promise.allSettled(networks.map((n) => n.destroy()));
});

async function envOf(net: TestNetwork, name: ServiceName): Promise<Record<string, string>> {
  const res = await fetch(`http://${net.addressOf(name).metrics}/env`);
  return (await res.json()) as Record<string, string>;
}

/** Pids of every process the network runs (services, NATS, Postgres). */
function pidsOf(net: TestNetwork): number[] {
  const pids = net.serviceNames().flatMap((name) => net.pid(name) ?? []);
  for (const pid of [net.postgres.pid, net.nats.pid]) if (pid !== undefined) pids.push(pid);
  return pids;
}

/** Pids of processes whose command line mentions `text` (Linux; empty elsewhere). */
function processesMentioning(text: string): number[] {
  if (process.platform !== 'linux') return [];
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        return readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}

test('boots Postgres, NATS and each service as its own process, wired together; destroy() stops them all', async () => {
  const exits: string[] = [];
  const t0 = Date.now();
  const net = await TestNetwork.create({
    gateways: 2,
    serviceCommand: fakeCommand,
    serviceEnv: { delivery: { QPQ_EXTRA: 'only-delivery' } },
    onServiceExit: (name, code) => exits.push(`${name}:${code}`),
  });
  networks.push(net);
  console.log(
    `fake network up in ${Date.now() - t0} ms (postgres ${net.postgres.startMs} ms, nats ${net.nats.startMs} ms)`,
  );

  assert.deepEqual(net.serviceNames(), ['auth', 'keypackage', 'delivery', 'ktlog', 'blob', 'gateway-0', 'gateway-1']);
  assert.equal(net.gatewayAddresses.length, 2);
  assert.notEqual(net.gatewayAddresses[0], net.gatewayAddresses[1]);
  for (const addr of net.gatewayAddresses) assert.match(addr, /^127\.0\.0\.1:\d+$/);
  assert.ok(existsSync(net.caPath));

  // Each service got its own ports, the shared servers, and its own certificate.
  const auth = await envOf(net, 'auth');
  assert.equal(auth.QPQ_LISTEN, net.addressOf('auth').listen);
  assert.equal(auth.QPQ_DATABASE_URL, net.databaseUrl);
  assert.equal(auth.QPQ_NATS_URL, net.nats.url);
  assert.equal(auth.QPQ_DOMAIN, 'localhost');
  assert.equal(auth.QPQ_TLS_CA, net.caPath);
  assert.match(auth.QPQ_TLS_CERT ?? '', /auth\.pem$/);
  assert.equal((await envOf(net, 'delivery')).QPQ_EXTRA, 'only-delivery');
  assert.equal(auth.QPQ_EXTRA, undefined);
  const gw = await envOf(net, 'gateway-1');
  assert.equal(gw.QPQ_LISTEN, net.gatewayAddresses[1]);
  assert.equal(gw.QPQ_AUTH_ADDR, net.addressOf('auth').listen);
  assert.equal(gw.QPQ_KEYPACKAGE_ADDR, net.addressOf('keypackage').listen);
  assert.equal(gw.QPQ_DELIVERY_ADDR, net.addressOf('delivery').listen);
  assert.equal(gw.QPQ_KTLOG_ADDR, net.addressOf('ktlog').listen);
  assert.equal(gw.QPQ_BLOB_ADDR, net.addressOf('blob').listen);
  assert.match(gw.QPQ_TLS_CERT ?? '', /gateway\.pem$/);
  assert.match(gw.QPQ_EDGE_TLS_CERT ?? '', /edge\.pem$/);
  assert.equal(gw.QPQ_DATABASE_URL, undefined, 'the gateway holds no durable state');

  // The one database holds each service's schema.
  const client = new pg.Client({ connectionString: net.databaseUrl });
  await client.connect();
  const schemas = (await client.query<{ nspname: string }>('select nspname from pg_namespace')).rows.map(
    (r) => r.nspname,
  );
  await client.end();
  for (const s of ['auth', 'keypackage', 'delivery', 'ktlog', 'blob']) assert.ok(schemas.includes(s), s);

  // Logs: one file per process, with what the process printed.
  assert.equal(net.logFiles().length, 9);
  assert.match(readFileSync(net.logFile('gateway-0'), 'utf8'), /fake gateway: ready/);

  // stop (drains), kill (crash), start again on the same ports.
  await net.stopService('delivery');
  assert.equal(net.isRunning('delivery'), false);
  assert.match(readFileSync(net.logFile('delivery'), 'utf8'), /SIGTERM, draining/);
  await net.startService('delivery');
  assert.equal(net.isRunning('delivery'), true);
  assert.equal((await envOf(net, 'delivery')).QPQ_LISTEN, net.addressOf('delivery').listen);
  await net.killService('gateway-0');
  assert.equal(net.isRunning('gateway-0'), false);
  await net.startService('gateway-0');
  await assert.rejects(net.startService('gateway-0'), /already running/);
  assert.deepEqual(exits, [], 'stops and kills we asked for are not reported');

  // A crash we did not ask for is reported.
  await fetch(`http://${net.addressOf('keypackage').metrics}/crash`);
  for (let i = 0; i < 50 && exits.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(exits, ['keypackage:3']);

  const pids = pidsOf(net);
  const t1 = Date.now();
  await net.destroy();
  const took = Date.now() - t1;
  console.log(`destroy took ${took} ms`);
  assert.ok(took < 20_000);
  assert.deepEqual(
    pids.filter((p) => processAlive(p)),
    [],
    'no process of the network remains',
  );
  assert.ok(!existsSync(join(net.dir, 'postgres')) && !existsSync(join(net.dir, 'nats')), 'data removed');
  assert.ok(existsSync(net.logFile('auth')), 'logs are kept');
  await net.destroy(); // idempotent
  await assert.rejects(net.startService('auth'), /destroyed/);
  await rm(net.dir, { recursive: true, force: true });
});

test('with its logs kept elsewhere, destroy() leaves nothing of the folder it made', async () => {
  const logDir = await mkdtemp(join(tmpdir(), 'qpq-net-logs-'));
  const net = await TestNetwork.create({ logDir, serviceCommand: fakeCommand });
  await net.destroy();
  assert.equal(existsSync(net.dir), false, `${net.dir} removed`);
  assert.ok(existsSync(join(logDir, 'auth.log')), 'the logs stay where they were asked to go');
  await rm(logDir, { recursive: true, force: true });
});

test('a service that never becomes ready fails create() naming it, with its log, and nothing is left running', async () => {
  const base = await mkdtemp(join(tmpdir(), 'qpq-net-fail-'));
  await chmod(base, 0o755); // as root, Postgres runs as user postgres, who must be able to enter it
  const dir = join(base, 'net');
  const net = TestNetwork.create({
    dir,
    serviceCommand: (pkg) =>
      pkg === 'keypackage'
        ? {
            command: process.execPath,
            args: ['-e', 'console.log("keypackage: cannot reach the moon"); process.exit(4)'],
          }
        : fakeCommand(pkg),
  });
  await assert.rejects(net, (err: Error) => {
    assert.match(err.message, /^keypackage exited during start-up \(exit 4\)/);
    assert.match(err.message, /cannot reach the moon/);
    return true;
  });
  assert.deepEqual(processesMentioning(dir), [], 'no Postgres, NATS or service of that network remains');
  await rm(base, { recursive: true, force: true });
});

test(
  'when Postgres cannot start, the NATS server already started is stopped again',
  {
    skip: process.getuid?.() !== 0 && 'needs root (a folder the postgres user cannot enter)',
  },
  async () => {
    const base = await mkdtemp(join(tmpdir(), 'qpq-net-nopg-')); // 0700: user postgres cannot enter
    const dir = join(base, 'net');
    try {
      await assert.rejects(TestNetwork.create({ dir, serviceCommand: fakeCommand }), /not reachable by user postgres/);
      assert.deepEqual(processesMentioning(dir), [], 'no nats-server of that network remains');
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  },
);

test('fixed ports: a taken port is refused with one clear line before anything starts', async () => {
  const blocker = createServer();
  const port = FIXED_PORTS.auth.grpc;
  const listening = await new Promise<boolean>((resolve) => {
    blocker.once('error', () => resolve(false)); // already taken by someone else: just as good
    blocker.listen(port, '127.0.0.1', () => resolve(true));
  });
  const dir = join(await mkdtemp(join(tmpdir(), 'qpq-net-fixed-')), 'net');
  try {
    await assert.rejects(TestNetwork.create({ dir, ports: 'fixed', serviceCommand: fakeCommand }), (err: Error) => {
      assert.ok(err instanceof PortInUseError);
      assert.match(err.message, /^port \d+\/(tcp|udp) \(.+\) is already in use/);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
    assert.equal(existsSync(dir), false, 'nothing was started or written');
  } finally {
    if (listening) blocker.close();
    await rm(join(dir, '..'), { recursive: true, force: true });
  }
});

const realServices = ['auth', 'keypackage', 'delivery', 'ktlog', 'blob', 'gateway'].every((s) =>
  existsSync(join(REPO, 'services', s, 'src', 'bin.ts')),
);

test(
  'the real services boot, answer /readyz, and stop within 20 s',
  {
    skip: !realServices && 'not every services/<name>/src/bin.ts exists yet',
    timeout: 120_000,
  },
  async () => {
    const t0 = Date.now();
    const net = await TestNetwork.create({ gateways: 2 });
    networks.push(net);
    console.log(`real network up in ${Date.now() - t0} ms`);
    for (const name of net.serviceNames()) {
      const res = await fetch(`http://${net.addressOf(name).metrics}/readyz`);
      assert.equal(res.status, 200, name);
    }
    const t1 = Date.now();
    await net.destroy();
    assert.ok(Date.now() - t1 < 20_000);
  },
);
