// The system the end-to-end scenarios measure: everything started as `npm run dev` does (@qpq/testnet's
// TestNetwork: Postgres, NATS JetStream, every service, one gateway), and many bench devices, each
// with a QUIC connection of its own, registered, logged in and attached by hand.
import { defaultServiceCommand, TestNetwork } from '@qpq/testnet';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchContext } from '../scenario.js';
import { cpuSecondsOf, ownCpuSeconds } from './blob-cpu.js';
import { BenchDevice } from './e2e-device.js';

/** Devices per account (auth allows 5 by default): logins after the first need no registration. */
const DEVICES_PER_ACCOUNT = 5;
/** Logins under way at once while the devices are made. */
const LOGIN_CONCURRENCY = 16;

export interface E2eNetwork {
  readonly net: TestNetwork;
  readonly devices: readonly BenchDevice[];
  /** CPU seconds used so far by each process on the message path (the benchmark is `client`). */
  cpuSeconds(): Record<string, number>;
  /** Closes every device's connection and stops the whole network. Idempotent. */
  stop(): Promise<void>;
}

/** Starts the network (logs under `ctx.logDir/<name>`) and `deviceCount` attached devices. */
export async function startE2eNetwork(ctx: BenchContext, deviceCount: number, name = 'e2e'): Promise<E2eNetwork> {
  ctx.progress(`${name}: starting the whole system (Postgres, NATS, every service, a gateway)`);
  const started = performance.now();
  // Postgres runs as user `postgres` when we are root and must be able to enter the folder.
  const dir = await mkdtemp(join(tmpdir(), 'qpq-bench-e2e-'));
  await chmod(dir, 0o711);
  // BENCH_CPU_PROF=<dir>: every service writes a CPU profile to <dir>/<service> (docs/performance.md).
  const profDir = process.env.BENCH_CPU_PROF;
  const serviceCommand = profDir
    ? (pkg: Parameters<typeof defaultServiceCommand>[0]) => {
        const { command, args } = defaultServiceCommand(pkg);
        return { command, args: ['--cpu-prof', '--cpu-prof-dir', join(profDir, pkg), ...args] };
      }
    : undefined;
  const creating = TestNetwork.create({ dir, logDir: join(ctx.logDir, name), signal: ctx.signal, serviceCommand });
  const stopNetwork = ctx.own(async () => {
    try {
      await (await creating.catch(() => undefined))?.destroy();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  const devices: BenchDevice[] = [];
  const closeDevices = ctx.own(() => Promise.allSettled(devices.map((d) => d.close())));
  const stop = async () => {
    await closeDevices();
    await stopNetwork();
  };
  try {
    const net = await creating;
    ctx.progress(
      `${name}: system up in ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
        `logging in ${deviceCount} devices by hand, each on its own connection`,
    );
    const loginStart = performance.now();
    const address = net.gatewayAddresses[0]!;
    const ca = readFileSync(net.caPath, 'utf8');
    // The first device of each account registers it; the others of that account wait for that.
    const accounts = Math.ceil(deviceCount / DEVICES_PER_ACCOUNT);
    const made: (BenchDevice | undefined)[] = new Array<BenchDevice | undefined>(deviceCount);
    const work = async (i: number) => {
      ctx.signal.throwIfAborted();
      const device = await BenchDevice.create(address, ca, i % accounts, i < accounts);
      made[i] = device;
      devices.push(device);
    };
    await inBatches(accounts, LOGIN_CONCURRENCY, (i) => work(i));
    await inBatches(deviceCount - accounts, LOGIN_CONCURRENCY, (i) => work(accounts + i));
    ctx.progress(
      `${name}: ${deviceCount} devices attached in ${((performance.now() - loginStart) / 1000).toFixed(1)} s`,
    );
    const pids = {
      gateway: () => cpuSecondsOf(net.pid('gateway-0')),
      delivery: () => cpuSecondsOf(net.pid('delivery')),
      auth: () => cpuSecondsOf(net.pid('auth')),
      postgres: () => cpuSecondsOf(net.postgres.pid),
      nats: () => cpuSecondsOf(net.nats.pid),
    };
    return {
      net,
      devices: made as BenchDevice[],
      cpuSeconds: () => ({
        client: ownCpuSeconds(),
        ...Object.fromEntries(Object.entries(pids).map(([name, read]) => [name, read()])),
      }),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Runs `work(0 … count-1)`, at most `concurrency` at once; rejects with the first failure. */
async function inBatches(count: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** CPU cores each process used between two readings over `seconds`, e.g. `client:0.93 gateway:0.71`. */
export function coresUsed(before: Record<string, number>, after: Record<string, number>, seconds: number): string {
  return Object.keys(after)
    .map((name) => `${name}:${(((after[name] ?? 0) - (before[name] ?? 0)) / seconds).toFixed(2)}`)
    .join(' ');
}
