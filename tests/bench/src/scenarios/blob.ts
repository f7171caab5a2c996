// Encrypted files (services/blob through the gateway): blob.upload and blob.download in MiB/s, each
// against the same bytes over a TLS-over-TCP stream in the same run; and what the client's file
// encryption costs (file.encrypt against one raw AES-256-GCM pass).
import { FILE_CHUNK_BYTES } from '@qpq/crypto';
import type { TestNetwork } from '@qpq/testnet';
import { quicTransportConfig } from '@qpq/wire';
import { native } from '@matrixai/quic';
import { createHash, randomBytes } from 'node:crypto';
import type { Measurement, ParamValue } from '../results.js';
import type { Scenario } from '../scenario.js';
import { fileEncrypt } from './blob-encrypt.js';
import { withDeadline } from './blob-deadline.js';
import { CpuTally, cpuSecondsOf, ownCpuSeconds } from './blob-cpu.js';
import { startBlobNetwork, type BlobNetwork } from './blob-gateway.js';
import { startTlsBaseline, type TlsBaseline } from './blob-tls-baseline.js';

const MiB = 1024 * 1024;
/** The largest file the blob service takes by default (50 MiB of plaintext), and a third of it for --quick. */
const BYTES = 50 * MiB;
const QUICK_BYTES = 16 * MiB;
/**
 * Each figure is the median of this many transfers, each of fresh random bytes (identical bytes
 * would be stored once and answered at once). Through the gateway a transfer moves a few MiB/s, so
 * --quick makes two of them to stay within about a minute.
 */
const RUNS = 3;
const QUICK_RUNS = 2;
/** A first transfer each way, not counted: the first ones on a fresh connection are the slowest (JIT, flow-control windows growing). */
const WARM_UP_BYTES = MiB;
/** Pieces handed to the connection: what a client reading a file (or encrypting it) hands over. */
const PIECE_BYTES = FILE_CHUNK_BYTES;
/**
 * Longest one TLS transfer, or one download through the gateway, may take before the run is given
 * up. An upload through the gateway gives up after 30 s without progress (the connection's own limit).
 */
const TRANSFER_TIMEOUT_MS = 300_000;

/** The QUIC UDP payload the client and gateway send: the wire config's, else the QUIC library's default. */
const UDP_PAYLOAD_BYTES = quicTransportConfig().maxSendUdpPayloadSize ?? native.quiche.MAX_DATAGRAM_SIZE;

const blobTransfer: Scenario = {
  name: 'blob',
  description: 'upload and download of a blob through the gateway (QUIC); baseline: the same bytes over TLS/TCP',
  async run(ctx) {
    const bytes = ctx.quick ? QUICK_BYTES : BYTES;
    const runs = ctx.quick ? QUICK_RUNS : RUNS;
    const network = await startBlobNetwork(ctx);
    try {
      const tls = await startTlsBaseline(ctx, network.net.certs.files('edge'));
      try {
        const within: Within = (what, work) => withDeadline(ctx.signal, TRANSFER_TIMEOUT_MS, what, work);
        await warmUp(network, tls, within);
        const { net } = network;
        const blobCpu = {
          up: new CpuTally(gatewayPath(net)),
          down: new CpuTally(gatewayPath(net)),
        };
        const tlsCpu = { up: new CpuTally(tlsPath(tls)), down: new CpuTally(tlsPath(tls)) };
        const seconds: Record<'tlsUp' | 'blobUp' | 'blobDown' | 'tlsDown', number[]> = {
          tlsUp: [],
          blobUp: [],
          blobDown: [],
          tlsDown: [],
        };
        for (let run = 1; run <= runs; run++) {
          ctx.signal.throwIfAborted();
          const data = randomBytes(bytes);
          const sha256 = createHash('sha256').update(data).digest();
          // Baseline and gateway alternate, so a machine that slows down mid-run slows both.
          const tlsUp = await tlsCpu.up.during(() =>
            within('tls.upload', (signal) => tls.upload(data, PIECE_BYTES, signal)),
          );
          const { seconds: blobUp, blobId } = await blobCpu.up.during(() => network.upload(data, sha256, PIECE_BYTES));
          const blobDown = await blobCpu.down.during(() =>
            within('blob.download', (signal) => network.download(blobId, bytes, sha256, signal)),
          );
          const tlsDown = await tlsCpu.down.during(() =>
            within('tls.download', (signal) => tls.download(bytes, sha256, signal)),
          );
          seconds.tlsUp.push(tlsUp);
          seconds.blobUp.push(blobUp);
          seconds.blobDown.push(blobDown);
          seconds.tlsDown.push(tlsDown);
          const rate = (s: number) => mibPerSecond(bytes, s).toFixed(1);
          ctx.progress(
            `blob run ${run}/${runs} (${bytes / MiB} MiB): upload ${rate(blobUp)} MiB/s (TLS ${rate(tlsUp)}), ` +
              `download ${rate(blobDown)} MiB/s (TLS ${rate(tlsDown)})`,
          );
        }
        const common = { bytes, runs, chunk_bytes: PIECE_BYTES };
        const gateway = {
          ...common,
          udp_payload: UDP_PAYLOAD_BYTES,
          storage: process.env.QPQ_BLOB_STORAGE ?? 'postgres',
        };
        const baseline = { ...common, tls: tls.cipher, same_process: false };
        const moved = bytes * runs;
        const cpu = (tally: CpuTally) => ({ cpu_ms_per_mib: tally.msPerMiB(moved) });
        const results: Measurement[] = [
          figure('tls.upload', bytes, seconds.tlsUp, { ...baseline, ...cpu(tlsCpu.up) }),
          figure('blob.upload', bytes, seconds.blobUp, { ...gateway, ...cpu(blobCpu.up) }, 'tls.upload'),
          figure('tls.download', bytes, seconds.tlsDown, { ...baseline, ...cpu(tlsCpu.down) }),
          figure('blob.download', bytes, seconds.blobDown, { ...gateway, ...cpu(blobCpu.down) }, 'tls.download'),
        ];
        return results;
      } finally {
        await tls.stop();
      }
    } finally {
      await network.stop();
    }
  },
};

/** The processes a transfer through the gateway passes, for CPU accounting. */
const gatewayPath = (net: TestNetwork) => ({
  client: ownCpuSeconds,
  gateway: () => cpuSecondsOf(net.pid('gateway-0')),
  blob: () => cpuSecondsOf(net.pid('blob')),
  postgres: () => cpuSecondsOf(net.postgres.pid),
});

/** The two ends of a TLS baseline transfer. */
const tlsPath = (tls: TlsBaseline) => ({ client: ownCpuSeconds, server: () => cpuSecondsOf(tls.pid) });

/** A step of the scenario with TRANSFER_TIMEOUT_MS to finish (and Ctrl-C): see withDeadline. */
type Within = <T>(what: string, work: (signal: AbortSignal) => Promise<T>) => Promise<T>;

/** One transfer each way on both paths, of WARM_UP_BYTES fresh bytes, checked like the others but not timed. */
async function warmUp(network: BlobNetwork, tls: TlsBaseline, within: Within): Promise<void> {
  const data = randomBytes(WARM_UP_BYTES);
  const sha256 = createHash('sha256').update(data).digest();
  await within('warm-up', async (signal) => {
    await tls.upload(data, PIECE_BYTES, signal);
    await tls.download(data.length, sha256, signal);
    const { blobId } = await network.upload(data, sha256, PIECE_BYTES);
    await network.download(blobId, data.length, sha256, signal);
  });
}

/** The median rate of `samples` (seconds per transfer of `bytes`), with every run's rate in params. */
function figure(
  name: string,
  bytes: number,
  samples: readonly number[],
  params: Record<string, ParamValue>,
  baseline?: string,
): Measurement {
  const rates = samples.map((s) => mibPerSecond(bytes, s));
  return {
    name,
    value: median(rates),
    unit: 'MiB/s',
    params: { ...params, runs_mib_s: rates.map((r) => r.toFixed(1)).join('/') },
    ...(baseline === undefined ? {} : { baseline }),
  };
}

/** The middle value; for an even count the mean of the two middle ones. */
function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('no samples');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const mibPerSecond = (bytes: number, seconds: number) => bytes / MiB / seconds;

export const blobScenarios: readonly Scenario[] = [blobTransfer, fileEncrypt];
