import type { JetStreamManager } from 'nats';
import type { BusLogger } from './logger.js';

/**
 * The part of an OpenTelemetry Meter the consumer gauges use (a Telemetry's `meter` fits). Spelt out
 * here so that this package needs no @opentelemetry/api of its own.
 */
export interface GaugeMeter {
  createObservableGauge(
    name: string,
    options?: { description?: string },
  ): {
    addCallback(
      callback: (result: { observe(value: number, attributes?: Record<string, string>): void }) => void,
    ): void;
  };
}

/** A durable consumer whose backlog is reported. */
export interface WatchedConsumer {
  stream: string;
  durable: string;
}

export interface ConsumerWatchOptions {
  /** Between the end of one round of look-ups and the next (default 15 s). */
  intervalMs?: number;
}

/** What `Bus.watchConsumers` hands back. */
export interface ConsumerWatch {
  /** Stops sampling; resolves once a round in progress has ended. */
  stop(): Promise<void>;
}

const DEFAULT_INTERVAL_MS = 15_000;

/** What one consumer info said, as the gauges report it. */
interface Backlog {
  pending: number;
  ackPending: number;
  redelivered: number;
}

/**
 * Gauges of durable consumers' backlog, from JetStream's consumer info read every interval (never at
 * scrape time: a scrape must not wait on NATS). Each series carries `stream` and `consumer` labels.
 * The durable consumer is shared by the service's replicas, so each replica reports the same values:
 * dashboards take max() over pods. A failed look-up (NATS away, consumer gone) is logged and the last
 * values kept.
 */
export class ConsumerGauges implements ConsumerWatch {
  private readonly latest = new Map<WatchedConsumer, Backlog>();
  private readonly failing = new Set<WatchedConsumer>();
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly jsm: JetStreamManager,
    meter: GaugeMeter,
    private readonly consumers: readonly WatchedConsumer[],
    private readonly intervalMs = DEFAULT_INTERVAL_MS,
    private readonly logger?: BusLogger,
  ) {
    const gauge = (name: string, description: string, value: (b: Backlog) => number) =>
      meter.createObservableGauge(name, { description }).addCallback((result) => {
        for (const [{ stream, durable }, backlog] of this.latest) {
          result.observe(value(backlog), { stream, consumer: durable });
        }
      });
    gauge(
      'qpq_jetstream_consumer_pending_messages',
      'Messages of the stream that the durable consumer has not been delivered yet',
      (b) => b.pending,
    );
    gauge(
      'qpq_jetstream_consumer_ack_pending_messages',
      'Messages delivered to the durable consumer and not acknowledged yet',
      (b) => b.ackPending,
    );
    gauge(
      'qpq_jetstream_consumer_redelivered_messages',
      'Messages delivered to the durable consumer more than once and still not acknowledged',
      (b) => b.redelivered,
    );
    this.sample();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
  }

  private sample(): void {
    this.round = Promise.all(this.consumers.map((c) => this.lookUp(c))).then(() => undefined);
    void this.round.then(() => {
      if (this.stopped) return;
      this.timer = setTimeout(() => this.sample(), this.intervalMs);
      this.timer.unref();
    });
  }

  private async lookUp(consumer: WatchedConsumer): Promise<void> {
    try {
      const info = await this.jsm.consumers.info(consumer.stream, consumer.durable);
      this.latest.set(consumer, {
        pending: info.num_pending,
        ackPending: info.num_ack_pending,
        redelivered: info.num_redelivered,
      });
      if (this.failing.delete(consumer)) this.logger?.info({ ...consumer }, 'JetStream consumer info readable again');
    } catch (err) {
      // Once per streak of failures: NATS being away is already logged by the connection.
      if (!this.failing.has(consumer)) {
        this.failing.add(consumer);
        this.logger?.warn({ err, ...consumer }, 'JetStream consumer info unreadable; its gauges keep the last values');
      }
    }
  }
}
