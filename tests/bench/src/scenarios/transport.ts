// The client-facing transport alone, QUIC against TLS over TCP in the same run (issue 7):
// request/response round trips, one-way pipelined frames and one bulk upload, each on one
// connection. The QUIC side is the project's own stack end to end: the client SDK's
// GatewayConnection / FrameStream and @matrixai/quic with libs/wire's transport config.
// - quic.rpc_roundtrip: to the real gateway process, calling a method it does not route, which it
//   answers itself (UNIMPLEMENTED) after decoding, dispatching and encoding like any request;
//   quic.rpc_roundtrip.framing: the same to a bare framing server (no gateway), to tell the two apart.
// - quic.pipelined_frames, quic.bulk: the gateway has no one-way sink, so they go to a server
//   process built as its edge is (same QUIC config, FrameStream on each stream) that counts frames.
// Every TLS baseline is the same framing, sizes and concurrency to a TLS 1.3 server in the same
// server process (transport-server.ts).
import { native } from '@matrixai/quic';
import { quicTransportConfig } from '@qpq/wire';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Measurement, ParamValue } from '../results.js';
import { startChildServer } from '../child-server.js';
import type { BenchContext, Scenario } from '../scenario.js';
import { startServiceProcess } from '../service-process.js';
import { cpuSecondsOf, ownCpuSeconds } from './blob-cpu.js';
import { withDeadline } from './blob-deadline.js';
import {
  closedLoop,
  quicFrameSender,
  quicRoundTripper,
  tlsFrameSender,
  tlsRoundTripper,
  type Endpoint,
  type FrameSender,
  type RoundTripper,
} from './transport-clients.js';
import type { TransportPorts } from './transport-protocol.js';

const SERVER_PROGRAM = fileURLToPath(new URL('./transport-server.ts', import.meta.url));
/** Beyond its own duration, how long one measurement may take (draining what was queued) before the run gives up. */
const SLACK_MS = 120_000;

const SMALL_PAYLOAD_BYTES = 256;
const BULK_FRAME_BYTES = 64 * 1024;
const IN_FLIGHT = 32;
/** Seconds each figure is measured for, after a warm-up (JIT, congestion and flow-control windows). */
const SECONDS = 10;
const QUICK_SECONDS = 3;
const WARM_UP_SECONDS = 1;
const QUICK_WARM_UP_SECONDS = 0.5;

/** The UDP payload both QUIC ends send: the wire config's, else the library's default (1,350). */
const UDP_PAYLOAD_BYTES = quicTransportConfig().maxSendUdpPayloadSize ?? native.quiche.MAX_DATAGRAM_SIZE;
/** The headline names are for standard-size packets only (issue 7); anything larger is named apart. */
const STANDARD_UDP_PAYLOAD_BYTES = 1350;
const quicName = (name: string) => (UDP_PAYLOAD_BYTES <= STANDARD_UDP_PAYLOAD_BYTES ? name : `${name}.jumbo`);

interface TransportServer {
  readonly ports: TransportPorts;
  readonly pid: number | undefined;
  readonly ca: string;
  stop(): Promise<void>;
}

/** Starts transport-server.ts with the dev certificate `gateway` (SAN localhost, as the edge's). */
async function startTransportServer(ctx: BenchContext): Promise<TransportServer> {
  const { certs } = await ctx.servers();
  const files = certs.files('gateway');
  // BENCH_CPU_PROF=<dir>: profile the server process too (see docs/performance.md).
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  const server = await startChildServer(ctx, SERVER_PROGRAM, {
    what: 'the transport server',
    env: { BENCH_TLS_CERT: files.cert, BENCH_TLS_KEY: files.key },
    nodeArgs: prof,
  });
  const { stop } = server;
  try {
    const line = server.firstLine;
    return { ports: JSON.parse(line) as TransportPorts, pid: server.pid, ca: readFileSync(files.ca, 'utf8'), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The real gateway as its own process (NATS for its readiness; no backend is ever called). */
async function startGateway(ctx: BenchContext): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const servers = await ctx.servers();
  const tls = servers.certs.files('gateway');
  const gateway = await startServiceProcess({
    service: 'gateway',
    env: {
      QPQ_TLS_CA: tls.ca,
      QPQ_TLS_CERT: tls.cert,
      QPQ_TLS_KEY: tls.key,
      QPQ_EDGE_TLS_CERT: tls.cert,
      QPQ_EDGE_TLS_KEY: tls.key,
      QPQ_NATS_URL: servers.nats.url,
      QPQ_DRAIN_TIMEOUT: '2s',
    },
    logFile: join(ctx.logDir, 'transport-gateway.log'),
  });
  const stop = ctx.own(() => gateway.stop());
  return { port: Number(gateway.grpcAddress.slice(gateway.grpcAddress.lastIndexOf(':') + 1)), pid: gateway.pid, stop };
}

const secondsOf = (ctx: BenchContext) => (ctx.quick ? QUICK_SECONDS : SECONDS);
const warmUpOf = (ctx: BenchContext) => (ctx.quick ? QUICK_WARM_UP_SECONDS : WARM_UP_SECONDS);

/** `work`'s result, with the CPU the client (this process) and the server used meanwhile, in % of one core. */
async function withCpu<T>(serverPid: number | undefined, work: () => Promise<T>): Promise<[T, Record<string, number>]> {
  const start = performance.now();
  const client0 = ownCpuSeconds();
  const server0 = cpuSecondsOf(serverPid);
  const result = await work();
  const wall = (performance.now() - start) / 1000;
  const pct = (s: number) => Math.round((s / wall) * 100);
  return [
    result,
    { cpu_client_pct: pct(ownCpuSeconds() - client0), cpu_server_pct: pct(cpuSecondsOf(serverPid) - server0) },
  ];
}

/** Round trips/s on one connection after a warm-up, with the CPU both ends used. */
async function measureRoundTrips(ctx: BenchContext, what: string, rt: RoundTripper, serverPid: number | undefined) {
  const payload = new Uint8Array(SMALL_PAYLOAD_BYTES).fill(0x61);
  const seconds = secondsOf(ctx);
  return withDeadline(ctx.signal, seconds * 1000 + SLACK_MS, what, async () => {
    await closedLoop(rt, payload, IN_FLIGHT, warmUpOf(ctx) * 1000);
    const [rate, cpu] = await withCpu(serverPid, () => closedLoop(rt, payload, IN_FLIGHT, seconds * 1000));
    ctx.progress(
      `${what}: ${Math.round(rate)} round trips/s (client ${cpu.cpu_client_pct} %, server ${cpu.cpu_server_pct} %)`,
    );
    return { rate, cpu };
  });
}

/** Frames/s and MiB/s of one stream of `frameBytes` frames to the sink, after a warm-up on another. */
async function measureFrames(
  ctx: BenchContext,
  what: string,
  sender: FrameSender,
  frameBytes: number,
  serverPid: number | undefined,
) {
  const payload = new Uint8Array(frameBytes).fill(0x62);
  const seconds = secondsOf(ctx);
  return withDeadline(ctx.signal, seconds * 1000 + SLACK_MS, what, async () => {
    await sender.sendUntil(payload, performance.now() + warmUpOf(ctx) * 1000);
    const start = performance.now();
    const [summary, cpu] = await withCpu(serverPid, () => sender.sendUntil(payload, start + seconds * 1000));
    const elapsed = (performance.now() - start) / 1000;
    const framesPerSecond = summary.frames / elapsed;
    const mibPerSecond = summary.bytes / (1024 * 1024) / elapsed;
    ctx.progress(
      `${what}: ${Math.round(framesPerSecond)} frames/s, ${mibPerSecond.toFixed(1)} MiB/s ` +
        `(client ${cpu.cpu_client_pct} %, server ${cpu.cpu_server_pct} %)` +
        (summary.transport ? ` ${JSON.stringify(summary.transport)}` : ''),
    );
    return { framesPerSecond, mibPerSecond, cpu: { ...cpu, ...summary.transport } };
  });
}

function common(ctx: BenchContext, extra: Record<string, ParamValue>): Record<string, ParamValue> {
  return { connections: 1, duration_s: secondsOf(ctx), ...extra };
}

const quicParams = { udp_payload: UDP_PAYLOAD_BYTES };

const rpcRoundTrip: Scenario = {
  name: 'quic.rpc_roundtrip',
  description:
    'round trips/s, 256 B, 32 in flight: QUIC to the gateway process (and a bare framing server); TLS baseline',
  async run(ctx) {
    const server = await startTransportServer(ctx);
    const gateway = await startGateway(ctx);
    try {
      const endpoint = (port: number): Endpoint => ({ port, ca: server.ca });
      const run = async (what: string, open: () => Promise<RoundTripper>, pid: number | undefined) => {
        const rt = await open();
        try {
          return await measureRoundTrips(ctx, what, rt, pid);
        } finally {
          await rt.close();
        }
      };
      const tls = await run('tls.rpc_roundtrip', () => tlsRoundTripper(endpoint(server.ports.tlsRpc)), server.pid);
      const quic = await run('quic.rpc_roundtrip', () => quicRoundTripper(endpoint(gateway.port)), gateway.pid);
      const bare = await run(
        'quic.rpc_roundtrip.framing',
        () => quicRoundTripper(endpoint(server.ports.quicRpc)),
        server.pid,
      );
      const params = common(ctx, { payload_bytes: SMALL_PAYLOAD_BYTES, in_flight: IN_FLIGHT });
      const results: Measurement[] = [
        { name: 'tls.rpc_roundtrip', value: tls.rate, unit: 'round trips/s', params: { ...params, ...tls.cpu } },
        {
          name: quicName('quic.rpc_roundtrip'),
          value: quic.rate,
          unit: 'round trips/s',
          params: { ...params, ...quicParams, server: 'gateway', ...quic.cpu },
          baseline: 'tls.rpc_roundtrip',
        },
        {
          name: quicName('quic.rpc_roundtrip.framing'),
          value: bare.rate,
          unit: 'round trips/s',
          params: { ...params, ...quicParams, server: 'framing', ...bare.cpu },
          baseline: 'tls.rpc_roundtrip',
        },
      ];
      return results;
    } finally {
      await gateway.stop();
      await server.stop();
    }
  },
};

/** A one-way scenario: frames of `frameBytes` on one stream to the sink, QUIC and TLS. */
function oneWay(name: 'pipelined_frames' | 'bulk', frameBytes: number, description: string): Scenario {
  return {
    name: `quic.${name}`,
    description,
    async run(ctx) {
      const server = await startTransportServer(ctx);
      try {
        const run = async (what: string, open: () => Promise<FrameSender>) => {
          const sender = await open();
          try {
            return await measureFrames(ctx, what, sender, frameBytes, server.pid);
          } finally {
            await sender.close();
          }
        };
        const tls = await run(`tls.${name}`, () => tlsFrameSender({ port: server.ports.tlsSink, ca: server.ca }));
        const quic = await run(`quic.${name}`, () => quicFrameSender({ port: server.ports.quicSink, ca: server.ca }));
        const params = common(ctx, { payload_bytes: frameBytes, server: 'framing' });
        const bulk = name === 'bulk';
        const value = (r: typeof tls) => (bulk ? r.mibPerSecond : r.framesPerSecond);
        const unit = bulk ? 'MiB/s' : 'frames/s';
        const results: Measurement[] = [
          { name: `tls.${name}`, value: value(tls), unit, params: { ...params, ...tls.cpu } },
          {
            name: quicName(`quic.${name}`),
            value: value(quic),
            unit,
            params: { ...params, ...quicParams, ...quic.cpu },
            baseline: `tls.${name}`,
          },
        ];
        return results;
      } finally {
        await server.stop();
      }
    },
  };
}

export const transportScenarios: readonly Scenario[] = [
  rpcRoundTrip,
  oneWay(
    'pipelined_frames',
    SMALL_PAYLOAD_BYTES,
    'one-way 256 B frames/s on one stream (QUIC framing server); TLS baseline',
  ),
  oneWay(
    'bulk',
    BULK_FRAME_BYTES,
    'MiB/s of one upload on one stream in 64 KiB frames (QUIC framing server); TLS baseline',
  ),
];
