// NATS as the services use it through @qpq/bus, beside the raw `nats` client on its own connection in
// the same run: core publishes (pushes to devices, fire and forget until a flush) and JetStream
// publishes (durable events, each awaited for the stream's ack).
import { Bus } from '@qpq/bus';
import { randomBytes } from 'node:crypto';
import type { Measurement } from '../results.js';
import type { Scenario } from '../scenario.js';
import { windowed } from './windowed.js';

const CORE_MESSAGES = 200_000;
const QUICK_CORE_MESSAGES = 50_000;
const DURABLE_MESSAGES = 20_000;
const QUICK_DURABLE_MESSAGES = 5_000;
/** The size of a push carrying a short message's envelope. */
const PAYLOAD_BYTES = 512;
/** JetStream publishes awaiting their ack at once (as ktlog.append publishes). */
const WINDOW = 512;
/** Timed rounds of each; the figure is their median. */
const ROUNDS = 3;
const STREAM = { name: 'QPQ_BENCH', subjects: ['qpq.bench.>'], maxAgeMs: 3_600_000 };

export const natsPublish: Scenario = {
  name: 'nats.publish',
  description: 'core and JetStream publishes through @qpq/bus; baselines: the raw nats client',
  async run(ctx) {
    const core = ctx.quick ? QUICK_CORE_MESSAGES : CORE_MESSAGES;
    const durable = ctx.quick ? QUICK_DURABLE_MESSAGES : DURABLE_MESSAGES;
    const servers = await ctx.servers();
    const bus = await Bus.connect(servers.nats.url, 'bench');
    const release = ctx.own(() => bus.close());
    try {
      await bus.ensureStream(STREAM);
      const raw = await servers.natsConnection();
      const js = raw.jetstream();
      const data = randomBytes(PAYLOAD_BYTES);

      ctx.progress(`nats.publish: ${core} core publishes each way, ${durable} JetStream publishes each way`);
      // Untimed rounds of each first: whichever ran first would otherwise pay for the JIT warming up.
      for (const publish of [raw.publish.bind(raw), bus.publish.bind(bus)]) {
        for (let i = 0; i < core / 10; i++) publish(`qpq.push.warm${i % 100}`, data);
      }
      await Promise.all([raw.flush(), bus.nc.flush()]);
      await windowed(durable / 10, WINDOW, ctx.signal, (i) => js.publish(`qpq.bench.warm${i % 100}`, data));
      await windowed(durable / 10, WINDOW, ctx.signal, (i) => bus.publishDurable(`qpq.bench.warm${i % 100}`, data));
      // Raw and bus alternate, ROUNDS times each, and each figure is the median: a machine shared with
      // other work slows whichever one happened to run at the wrong moment, not always the same one.
      const secs = {
        rawCore: [] as number[],
        busCore: [] as number[],
        rawDurable: [] as number[],
        busDurable: [] as number[],
      };
      for (let round = 0; round < ROUNDS; round++) {
        secs.rawCore.push(
          await timed(async () => {
            for (let i = 0; i < core; i++) raw.publish(`qpq.push.bench${i % 100}`, data);
            await raw.flush();
          }),
        );
        secs.busCore.push(
          await timed(async () => {
            for (let i = 0; i < core; i++) bus.publish(`qpq.push.bench${i % 100}`, data);
            await bus.nc.flush(); // Bus has no flush of its own: its connection, as close() drains it
          }),
        );
        secs.rawDurable.push(
          await timed(() => windowed(durable, WINDOW, ctx.signal, (i) => js.publish(`qpq.bench.raw${i % 100}`, data))),
        );
        secs.busDurable.push(
          await timed(() =>
            windowed(durable, WINDOW, ctx.signal, (i) => bus.publishDurable(`qpq.bench.bus${i % 100}`, data)),
          ),
        );
      }
      const [rawCore, busCore, rawDurable, busDurable] = [
        secs.rawCore,
        secs.busCore,
        secs.rawDurable,
        secs.busDurable,
      ].map(median) as [number, number, number, number];

      const coreParams = {
        rounds: ROUNDS,
        messages: core,
        payload_bytes: PAYLOAD_BYTES,
        connections: 1,
        until: 'flush',
      };
      const durableParams = {
        rounds: ROUNDS,
        messages: durable,
        payload_bytes: PAYLOAD_BYTES,
        in_flight: WINDOW,
        storage: 'file',
      };
      const results: Measurement[] = [
        { name: 'nats.raw_publish', value: core / rawCore, unit: 'msg/s', params: coreParams },
        {
          name: 'nats.publish',
          value: core / busCore,
          unit: 'msg/s',
          params: coreParams,
          baseline: 'nats.raw_publish',
        },
        { name: 'nats.raw_js_publish', value: durable / rawDurable, unit: 'msg/s', params: durableParams },
        {
          name: 'nats.publish_durable',
          value: durable / busDurable,
          unit: 'msg/s',
          params: durableParams,
          baseline: 'nats.raw_js_publish',
        },
      ];
      return results;
    } finally {
      await release();
    }
  },
};

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] as number;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return (performance.now() - start) / 1000;
}
