import {
  connect,
  Events,
  nanos,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  type Subscription,
} from 'nats';
import {
  ConsumerGauges,
  type ConsumerWatch,
  type ConsumerWatchOptions,
  type GaugeMeter,
  type WatchedConsumer,
} from './consumer-gauges.js';
import {
  consumerConfig,
  DurableConsumer,
  type ConsumeHandler,
  type DurableConsumerSpec,
  type RunningConsumer,
} from './consumer.js';
import type { BusLogger } from './logger.js';

export interface StreamSpec {
  name: string;
  subjects: readonly string[];
  maxAgeMs: number;
  retention?: 'limits' | 'workqueue';
  /** How long a publish msgID is remembered to drop a repeat (JetStream's default: 2 min). */
  duplicateWindowMs?: number;
}

const CLOSE_TIMEOUT_MS = 2000;

/** A NATS connection with JetStream, and the idempotent set-up every service needs. */
export class Bus {
  private up = true;
  private readonly consumers = new Set<DurableConsumer>();
  private readonly watches = new Set<ConsumerGauges>();

  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly logger?: BusLogger,
  ) {
    // nats.js reconnects in the background: follow its status events, since "not closed" would call
    // a connection that is down but retrying "connected".
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === Events.Disconnect) {
          this.up = false;
          logger?.warn({ server: String(s.data) }, 'NATS disconnected');
        } else if (s.type === Events.Reconnect) {
          this.up = true;
          logger?.info({ server: String(s.data) }, 'NATS reconnected');
        }
      }
    })().catch((err: unknown) => logger?.warn({ err }, 'NATS status watch ended'));
    void nc.closed().then(() => (this.up = false));
  }

  static async connect(url: string, name: string, logger?: BusLogger): Promise<Bus> {
    const nc = await connect({
      servers: url,
      name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: 5000,
    });
    const jsm = await nc.jetstreamManager({ timeout: 5000 });
    return new Bus(nc, nc.jetstream({ timeout: 5000 }), jsm, logger);
  }

  /** Creates the stream, or brings an existing one to this spec. Safe for many replicas at once. */
  async ensureStream(spec: StreamSpec): Promise<void> {
    const config = {
      name: spec.name,
      subjects: [...spec.subjects],
      max_age: nanos(spec.maxAgeMs),
      storage: StorageType.File,
      retention: spec.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
      ...(spec.duplicateWindowMs !== undefined ? { duplicate_window: nanos(spec.duplicateWindowMs) } : {}),
    };
    try {
      await this.jsm.streams.info(spec.name);
      await this.jsm.streams.update(spec.name, config);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.jsm.streams.add(config);
      } catch (addErr) {
        // Another replica created it between our look-up and add.
        if (!String(addErr).includes('already in use')) throw addErr;
      }
    }
  }

  /** Creates a durable consumer, or updates the existing one to this config. */
  async ensureConsumer(stream: string, config: Partial<ConsumerConfig> & { durable_name: string }): Promise<void> {
    try {
      await this.jsm.consumers.info(stream, config.durable_name);
      await this.jsm.consumers.update(stream, config.durable_name, config);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await this.jsm.consumers.add(stream, config);
    }
  }

  /**
   * Reads a durable consumer (created, or brought to this spec) until `stop()` or `close()`: each
   * message goes to `handler` in turn, is acknowledged when it resolves and delivered again (after
   * `retryDelayMs`) when it throws. At least once: the handler must be idempotent. The stream must exist.
   *
   * @example
   * const consumer = await bus.consume(
   *   { stream: streams.devices.name, durable: 'keypackage', filterSubject: subjects.deviceEvent('revoke') },
   *   async (msg) => withdrawDevice(DeviceEvent.decode(msg.data)),
   * );
   * await consumer.stop();
   */
  async consume(spec: DurableConsumerSpec, handler: ConsumeHandler): Promise<RunningConsumer> {
    await this.ensureConsumer(spec.stream, consumerConfig(spec));
    const consumer = new DurableConsumer(this.js, spec, handler, this.logger);
    this.consumers.add(consumer);
    return {
      stop: async () => {
        this.consumers.delete(consumer);
        await consumer.stop();
      },
    };
  }

  /**
   * Reports durable consumers' backlog on `meter`, read from JetStream's consumer info every
   * `intervalMs` (15 s) until `stop()` or `close()`: `qpq_jetstream_consumer_pending_messages`,
   * `qpq_jetstream_consumer_ack_pending_messages` and `qpq_jetstream_consumer_redelivered_messages`,
   * each labelled `stream` and `consumer`. The service that reads a consumer watches it.
   *
   * @example
   * const watch = bus.watchConsumers(host.telemetry.meter, [{ stream: streams.devices.name, durable: 'ktlog' }]);
   * await watch.stop();
   */
  watchConsumers(
    meter: GaugeMeter,
    consumers: readonly WatchedConsumer[],
    opts: ConsumerWatchOptions = {},
  ): ConsumerWatch {
    const watch = new ConsumerGauges(this.jsm, meter, consumers, opts.intervalMs, this.logger);
    this.watches.add(watch);
    return {
      stop: async () => {
        this.watches.delete(watch);
        await watch.stop();
      },
    };
  }

  /** Durable publish: resolves once JetStream has stored the message. */
  async publishDurable(subject: string, data: Uint8Array, msgID?: string): Promise<void> {
    await this.js.publish(subject, data, msgID ? { msgID } : undefined);
  }

  /** Core NATS publish (fire and forget). */
  publish(subject: string, data: Uint8Array): void {
    this.nc.publish(subject, data);
  }

  subscribe(subject: string, onMessage: (data: Uint8Array) => void): Subscription {
    return this.nc.subscribe(subject, { callback: (err, msg) => !err && onMessage(msg.data) });
  }

  /** Connected now (false while nats.js is reconnecting). */
  isConnected(): boolean {
    return this.up && !this.nc.isClosed();
  }

  /**
   * Stops the consumers and consumer gauges, drains (flushing what is still buffered) within a bounded time, then makes
   * sure the connection is closed: with the server down, a drain can return while the client keeps
   * reconnecting.
   */
  async close(): Promise<void> {
    await Promise.all([...this.consumers, ...this.watches].map((c) => c.stop()));
    this.consumers.clear();
    this.watches.clear();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.nc.drain().catch(() => undefined),
      new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    if (!this.nc.isClosed()) await this.nc.close();
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: string; api_error?: { err_code?: number } };
  return e?.code === '404' || e?.api_error?.err_code === 10059 || e?.api_error?.err_code === 10014;
}
