// End-to-end delivery through the whole system (gateway over QUIC → delivery → Postgres → NATS →
// gateway → recipient's connection): 1:1 messages at a fixed offered load and at saturation, and group
// fan-out to 10 and 100 devices. Senders send ready-made envelopes (random bytes carrying an id: the
// server only sees ciphertext), so the figures measure the system, not client-side MLS. The load
// generator and all client connections share this process (and the machine's cores) with the system.
import { randomBytes } from 'node:crypto';
import type { Measurement, ParamValue } from '../results.js';
import type { Scenario } from '../scenario.js';
import { percentile } from '../stats.js';
import { ACK_INTERVAL_MS } from './e2e-device.js';
import { DeliveryLedger, type LedgerSummary } from './e2e-ledger.js';
import {
  closedLoop,
  drain,
  openLoop,
  PAYLOAD_MAX_BYTES,
  PAYLOAD_MIN_BYTES,
  type ClosedLoopResult,
  type Sender,
} from './e2e-load.js';
import { coresUsed, startE2eNetwork, type E2eNetwork } from './e2e-network.js';

/** 1:1 pairs: this many senders, each with its own recipient device (2 × PAIRS connections). */
const PAIRS = 20;
/** Group sizes of the fan-out figures; the largest sets how many devices the run logs in (+1 sender). */
const GROUP_SIZES = [10, 100] as const;
/** Offered load of the fixed-load figures (the target: p99 under 100 ms at this rate). */
const FIXED_RATE = 500;
/**
 * Before the fixed-load figures: the same rate, unmeasured, so they describe the steady state. Without
 * it the first ~2.5 s at 500 msg/s (code paths getting optimised, pools and windows growing) held most
 * of the slow messages: in one run, 327 of its first 1,250 messages took over 50 ms, against 0–45
 * per 250 afterwards.
 */
const WARM_UP = { rate: FIXED_RATE, ms: 3_000 };
/**
 * Enqueues each 1:1 sender keeps unanswered at saturation (320 in all, a quarter of the gateway's
 * per-connection limit each). Fewer leave cores idle: the window, not the system, is then the limit.
 * Measured, msg/s: 4 → 1,758 with 1.7 of 2 cores busy (a full run); quick runs: 8 → 2,096,
 * 16 → 2,283, 32 → 2,483 with p50 237 ms. At 16 the cores are busy and latency stays in the hundreds.
 */
const DM_WINDOW = 16;
/** Messages the group sender keeps unanswered. */
const FANOUT_WINDOW = 4;
/** Saturation runs are measured after this long (pipelines filling). */
const SETTLE_MS = 1_500;
const DURATIONS = {
  full: { fixedMs: 20_000, saturationMs: 20_000, fanoutMs: 10_000, drainMs: 30_000 },
  quick: { fixedMs: 4_000, saturationMs: 4_000, fanoutMs: 3_000, drainMs: 15_000 },
};

/** The ledgers of a run, by the phase number each payload carries. */
const Phase = { WarmUp: 0, Fixed: 1, Saturation: 2, Fanout10: 3, Fanout100: 4 } as const;

const e2e: Scenario = {
  name: 'e2e',
  description: '1:1 messages (fixed load, saturation) and group fan-out through the whole system, push to push',
  async run(ctx) {
    const d = ctx.quick ? DURATIONS.quick : DURATIONS.full;
    const largest = Math.max(...GROUP_SIZES);
    const system = await startE2eNetwork(ctx, Math.max(2 * PAIRS, largest + 1));
    try {
      const ledgers = Array.from({ length: Phase.Fanout100 + 1 }, (_, phase) => new DeliveryLedger(phase));
      for (const device of system.devices) device.receiveInto(ledgers);
      const devices = system.devices;
      const pairs: Sender[] = Array.from({ length: PAIRS }, (_, i) => ({
        device: devices[i]!,
        recipients: [devices[PAIRS + i]!.deviceId],
      }));
      const common: Record<string, ParamValue> = {
        payload_bytes: `${PAYLOAD_MIN_BYTES}-${PAYLOAD_MAX_BYTES}`,
        ack_every_ms: ACK_INTERVAL_MS,
        client: 'same process as the load generator',
      };
      const dm = { ...common, senders: PAIRS, recipients: PAIRS, connections: devices.length };

      ctx.progress(`e2e: warm-up, ${WARM_UP.rate} msg/s for ${WARM_UP.ms / 1000} s`);
      await openLoop(ledgers[Phase.WarmUp]!, pairs, WARM_UP.rate, WARM_UP.ms, ctx.signal);
      await drain(ledgers[Phase.WarmUp]!, d.drainMs, ctx.signal);

      ctx.progress(`e2e.dm at ${FIXED_RATE} msg/s offered for ${d.fixedMs / 1000} s (open loop)`);
      const fixed = await measured(system, async () => {
        const sendSeconds = await openLoop(ledgers[Phase.Fixed]!, pairs, FIXED_RATE, d.fixedMs, ctx.signal);
        const drainSeconds = await drain(ledgers[Phase.Fixed]!, d.drainMs, ctx.signal);
        return { sendSeconds, drainSeconds };
      });
      const fixedSummary = ledgers[Phase.Fixed]!.summary();
      ctx.progress(`e2e.dm fixed load: ${describe(fixedSummary)}; ${fixed.cores}`);

      ctx.progress(`e2e.dm at saturation: ${PAIRS} senders × ${DM_WINDOW} in flight for ${d.saturationMs / 1000} s`);
      const saturation = await measured(system, async () => {
        const r = await closedLoop(ledgers[Phase.Saturation]!, pairs, DM_WINDOW, d.saturationMs, SETTLE_MS, ctx.signal);
        await drain(ledgers[Phase.Saturation]!, d.drainMs, ctx.signal);
        return r;
      });
      const satSummary = ledgers[Phase.Saturation]!.summary();
      ctx.progress(
        `e2e.dm saturation: ${(saturation.result.pushed / saturation.result.seconds).toFixed(0)} msg/s pushed; ` +
          `${describe(satSummary)}; ${saturation.cores}`,
      );

      const fanouts: { size: number; run: Measured<ClosedLoopResult>; summary: LedgerSummary }[] = [];
      for (const [size, phase] of [
        [GROUP_SIZES[0], Phase.Fanout10],
        [GROUP_SIZES[1], Phase.Fanout100],
      ] as const) {
        const sender: Sender = {
          device: devices[0]!,
          recipients: devices.slice(1, size + 1).map((dev) => dev.deviceId),
          groupId: randomBytes(32),
        };
        ctx.progress(`e2e.fanout_${size}: one sender, ${FANOUT_WINDOW} in flight, for ${d.fanoutMs / 1000} s`);
        const run = await measured(system, async () => {
          const r = await closedLoop(ledgers[phase]!, [sender], FANOUT_WINDOW, d.fanoutMs, SETTLE_MS, ctx.signal);
          await drain(ledgers[phase]!, d.drainMs, ctx.signal);
          return r;
        });
        const summary = ledgers[phase]!.summary();
        ctx.progress(
          `e2e.fanout_${size}: ${(run.result.pushed / run.result.seconds).toFixed(0)} deliveries/s; ` +
            `${describe(summary)}; ${run.cores}`,
        );
        fanouts.push({ size, run, summary });
      }

      // Whatever no push brought is looked for in the mailboxes before anything is called lost.
      if (ledgers.some((l) => l.awaited > 0)) {
        ctx.progress('e2e: some copies were not pushed; fetching what is left in every mailbox');
        await Promise.all(devices.map((dev) => dev.fetchAll()));
      }
      const sendErrors = new Map<string, number>();
      for (const dev of devices)
        for (const [code, n] of dev.sendErrors) sendErrors.set(code, (sendErrors.get(code) ?? 0) + n);
      const errorCodes = [...sendErrors].map(([code, n]) => `${code}:${n}`).join(' ') || 'none';
      const dmTotals = total([Phase.WarmUp, Phase.Fixed, Phase.Saturation].map((p) => ledgers[p]!.summary()));
      const fixedFinal = ledgers[Phase.Fixed]!.summary();
      const satFinal = ledgers[Phase.Saturation]!.summary();

      const fixedParams = {
        ...dm,
        offered_per_s: FIXED_RATE,
        warm_up: `${WARM_UP.rate} msg/s for ${WARM_UP.ms / 1000} s before, not measured`,
        messages: fixedFinal.sent,
        accepted_per_s: round(fixedFinal.accepted / fixed.result.sendSeconds),
        duration_s: d.fixedMs / 1000,
        drain_s: round(fixed.result.drainSeconds),
        loop: 'open (timed from when due)',
        send_errors: fixedFinal.failed,
        cpu_cores: fixed.cores,
        cpu_ms_per_msg: fixed.msPer(fixedFinal.pushed),
      };
      const satLatencies = satFinal.latencies;
      const results: Measurement[] = [
        {
          name: 'e2e.dm_throughput',
          value: saturation.result.pushed / saturation.result.seconds,
          unit: 'msg/s',
          params: {
            ...dm,
            loop: `closed, ${DM_WINDOW} per sender`,
            in_flight: PAIRS * DM_WINDOW,
            duration_s: d.saturationMs / 1000,
            measured_s: round(saturation.result.seconds),
            accepted_per_s: round(saturation.result.accepted / saturation.result.seconds),
            p50_ms: ms(percentileOr(satLatencies, 50)),
            p99_ms: ms(percentileOr(satLatencies, 99)),
            send_errors: satFinal.failed,
            cpu_cores: saturation.cores,
            cpu_ms_per_msg: saturation.msPer(satFinal.pushed),
          },
        },
        latencyFigure('e2e.dm_p50_ms_at_500', fixedFinal.latencies, 50, fixedParams),
        latencyFigure('e2e.dm_p99_ms_at_500', fixedFinal.latencies, 99, fixedParams),
        latencyFigure('e2e.dm_p999_ms_at_500', fixedFinal.latencies, 99.9, fixedParams),
        {
          name: 'e2e.dm_lost',
          value: dmTotals.lost,
          unit: 'messages',
          params: {
            messages: dmTotals.sent,
            accepted: dmTotals.accepted,
            recovered_by_fetch: dmTotals.recovered,
            send_errors: dmTotals.failed,
            send_error_codes: errorCodes,
            phases: 'warm-up, fixed, saturation',
          },
        },
        {
          name: 'e2e.dm_duplicated',
          value: dmTotals.duplicated,
          unit: 'messages',
          params: { messages: dmTotals.sent, misdelivered: dmTotals.misdelivered },
        },
      ];
      for (const { size, run, summary } of fanouts) {
        const final = ledgers[size === GROUP_SIZES[0] ? Phase.Fanout10 : Phase.Fanout100]!.summary();
        const params = {
          ...common,
          members: size,
          in_flight: FANOUT_WINDOW,
          duration_s: d.fanoutMs / 1000,
          messages: final.sent,
          lost: final.lost,
          duplicated: final.duplicated,
          recovered_by_fetch: final.recovered,
          cpu_cores: run.cores,
          cpu_ms_per_delivery: run.msPer(final.pushed),
        };
        results.push(
          {
            name: `e2e.fanout_${size}_deliveries`,
            value: run.result.pushed / run.result.seconds,
            unit: 'deliveries/s',
            params: { ...params, messages_per_s: round(run.result.accepted / run.result.seconds) },
          },
          latencyFigure(`e2e.fanout_${size}_last_p50_ms`, summary.lastLatencies, 50, params),
          latencyFigure(`e2e.fanout_${size}_last_p99_ms`, summary.lastLatencies, 99, params),
        );
      }
      return results;
    } finally {
      await system.stop();
    }
  },
};

interface Measured<T> {
  result: T;
  /** CPU cores each process used meanwhile. */
  cores: string;
  /** CPU milliseconds each process spent per item, when `count` items went through meanwhile. */
  msPer(count: number): string;
}

async function measured<T>(system: E2eNetwork, work: () => Promise<T>): Promise<Measured<T>> {
  const before = system.cpuSeconds();
  const start = performance.now();
  const result = await work();
  const after = system.cpuSeconds();
  return {
    result,
    cores: coresUsed(before, after, (performance.now() - start) / 1000),
    msPer: (count) =>
      Object.keys(after)
        .map((name) => `${name}:${((((after[name] ?? 0) - (before[name] ?? 0)) * 1000) / count).toFixed(2)}`)
        .join(' '),
  };
}

function latencyFigure(
  name: string,
  samples: readonly number[],
  p: number,
  params: Record<string, ParamValue>,
): Measurement {
  if (samples.length === 0) throw new Error(`${name}: no message arrived by push`);
  return { name, value: percentile(samples, p), unit: 'ms', params: { ...params, samples: samples.length } };
}

function total(summaries: LedgerSummary[]): LedgerSummary {
  const sum = (key: 'sent' | 'accepted' | 'failed' | 'pushed' | 'recovered' | 'lost' | 'duplicated' | 'misdelivered') =>
    summaries.reduce((n, s) => n + s[key], 0);
  return {
    sent: sum('sent'),
    accepted: sum('accepted'),
    failed: sum('failed'),
    pushed: sum('pushed'),
    recovered: sum('recovered'),
    lost: sum('lost'),
    duplicated: sum('duplicated'),
    misdelivered: sum('misdelivered'),
    latencies: summaries.flatMap((s) => s.latencies),
    lastLatencies: summaries.flatMap((s) => s.lastLatencies),
  };
}

function describe(s: LedgerSummary): string {
  const p = (q: number) => ms(percentileOr(s.latencies, q));
  return (
    `${s.sent} sent, ${s.accepted} accepted, ${s.pushed} pushed, ${s.lost} missing, ${s.duplicated} duplicated; ` +
    `p50 ${p(50)} ms, p99 ${p(99)} ms`
  );
}

const percentileOr = (samples: readonly number[], p: number) => (samples.length === 0 ? NaN : percentile(samples, p));
const ms = (n: number) => (Number.isNaN(n) ? -1 : Math.round(n * 10) / 10);
const round = (n: number) => Math.round(n * 1000) / 1000;

export const e2eScenarios: readonly Scenario[] = [e2e];
