// gateway.idle_connections: how many idle QUIC client connections one gateway process holds, and what
// they cost it in resident memory. Each connection is attached to a session (as a connected app is:
// a device identity and a NATS push subscription), all with the same session token, since a login
// per connection would cost more here (the client's key stretching) than everything else together.
import { SessionServiceService } from '@qpq/proto';
import { callGateway, metricValue } from '@qpq/testnet';
import { GatewayConnection } from '@qpq/wire';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Measurement } from '../results.js';
import type { Scenario } from '../scenario.js';
import { startE2eNetwork } from './e2e-network.js';
import { windowed } from './windowed.js';

const CONNECTIONS = 3_000;
const QUICK_CONNECTIONS = 500;
/** Connections set up before the memory baseline: the gateway's own start-up allocations are not theirs. */
const WARM_CONNECTIONS = 20;
/** Handshakes under way at once. */
const CONNECT_CONCURRENCY = 16;
/** The connections are held this long before memory is read, and checked to be open still. */
const HOLD_MS = 5_000;
const QUICK_HOLD_MS = 3_000;
const CONNECT_TIMEOUT_MS = 20_000;
const KiB = 1024;

export const gatewayIdle: Scenario = {
  name: 'gateway.idle_connections',
  description: 'idle attached QUIC connections held by one gateway, and its resident memory per 1,000',
  async run(ctx) {
    const target = ctx.quick ? QUICK_CONNECTIONS : CONNECTIONS;
    const holdMs = ctx.quick ? QUICK_HOLD_MS : HOLD_MS;
    const system = await startE2eNetwork(ctx, 1, 'gateway-idle');
    const conns: GatewayConnection[] = [];
    const closeAll = ctx.own(() => Promise.allSettled(conns.map((c) => c.close())));
    try {
      const { net } = system;
      const token = system.devices[0]!.sessionToken;
      const pid = net.pid('gateway-0');
      if (pid === undefined) throw new Error('the gateway is not running');
      const address = net.gatewayAddresses[0]!;
      const colon = address.lastIndexOf(':');
      const ca = readFileSync(net.caPath, 'utf8');
      const open = async () => {
        const conn = await GatewayConnection.connect({
          host: address.slice(0, colon),
          port: Number(address.slice(colon + 1)),
          ca,
          timeoutMs: CONNECT_TIMEOUT_MS,
        });
        conns.push(conn);
        await callGateway(conn, SessionServiceService.attach, { sessionToken: token });
      };
      await windowed(WARM_CONNECTIONS, CONNECT_CONCURRENCY, ctx.signal, open);
      await sleep(1_000);
      const metrics = net.addressOf('gateway-0').metrics;
      const live = () => metricValue(metrics, 'qpq_nodejs_live_memory_bytes');
      const before = residentBytes(pid);
      const liveBefore = await live();
      ctx.progress(`gateway.idle_connections: opening ${target} attached connections`);
      const start = performance.now();
      await windowed(target, CONNECT_CONCURRENCY, ctx.signal, open);
      const connectSeconds = (performance.now() - start) / 1000;
      ctx.progress(`gateway.idle_connections: ${target} open in ${connectSeconds.toFixed(1)} s; holding them`);
      await sleep(holdMs);
      const after = residentBytes(pid);
      const liveAfter = await live();
      // Resident memory counts the garbage not yet collected too; the gateway's own gauge of what is live
      // after its latest major GC is the steadier figure, when a major GC happened in between.
      const livePerThousand =
        liveBefore !== undefined && liveAfter !== undefined && liveAfter !== liveBefore
          ? round((((liveAfter - liveBefore) / target) * 1000) / (KiB * KiB))
          : 'n/a';
      const open_after_hold = conns.filter((c) => !c.isClosed).length - WARM_CONNECTIONS;
      if (open_after_hold < target) {
        throw new Error(`only ${open_after_hold} of ${target} connections were still open after ${holdMs / 1000} s`);
      }
      const perThousand = ((after - before) / target) * 1000;
      const params = {
        connections: target,
        attached: true,
        hold_s: holdMs / 1000,
        client: 'the benchmark process, one UDP socket per connection',
      };
      const results: Measurement[] = [
        {
          name: 'gateway.idle_connections',
          value: open_after_hold,
          unit: 'connections',
          params: { ...params, connects_per_s: Math.round(target / connectSeconds) },
        },
        {
          name: 'gateway.memory_per_1k_conn_mib',
          value: perThousand / (KiB * KiB),
          unit: 'MiB',
          params: {
            ...params,
            rss_before_mib: Math.round(before / (KiB * KiB)),
            rss_after_mib: Math.round(after / (KiB * KiB)),
            live_after_gc_mib_per_1k: livePerThousand,
          },
        },
      ];
      return results;
    } finally {
      await closeAll();
      await system.stop();
    }
  },
};

const round = (n: number) => Math.round(n * 10) / 10;

/** The resident set size of process `pid` (VmRSS), in bytes. */
function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib) * KiB;
}

export const gatewayScenarios: readonly Scenario[] = [gatewayIdle];
