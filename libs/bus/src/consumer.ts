import {
  AckPolicy,
  DeliverPolicy,
  nanos,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamClient,
  type JsMsg,
} from 'nats';
import type { BusLogger } from './logger.js';

/** Which messages a durable consumer reads, and how patiently. */
export interface DurableConsumerSpec {
  /** The stream it reads, e.g. `streams.devices.name`. */
  stream: string;
  /** Its durable name: where it left off survives restarts, and replicas with one name share the work. */
  durable: string;
  /** Subjects of the stream it wants, e.g. `subjects.deviceEvent('revoke')`. */
  filterSubject: string;
  /** A message not acknowledged within this long is delivered again (default 30 s). */
  ackWaitMs?: number;
  /** After a failed handler, the message comes back after this long (default 1 s). */
  retryDelayMs?: number;
  /** Messages fetched ahead of the handler (default 16); each is handled in turn. */
  batch?: number;
}

/** One message as the handler sees it. */
export interface ConsumedMessage {
  subject: string;
  data: Uint8Array;
  /** Position in the stream. */
  streamSeq: number;
  /** 1 on the first delivery, more on redeliveries. */
  deliveryCount: number;
}

export type ConsumeHandler = (msg: ConsumedMessage) => Promise<void>;

/** What `Bus.consume` hands back. */
export interface RunningConsumer {
  /** Stops reading; the message in hand is finished first (within a bounded time). */
  stop(): Promise<void>;
}

const DEFAULT_ACK_WAIT_MS = 30_000;
const DEFAULT_RETRY_DELAY_MS = 1_000;
const DEFAULT_BATCH = 16;
/** Before consume() is tried again after it failed or ended on its own (e.g. the consumer vanished). */
const RESTART_DELAY_MS = 1_000;
const ACK_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 5_000;

/**
 * Reads a JetStream durable consumer one message at a time: the handler's success acknowledges the
 * message; its failure asks for redelivery after `retryDelayMs` (nak), so nothing is lost and
 * nothing is skipped. Delivery is at least once: a handler must be idempotent.
 */
export class DurableConsumer implements RunningConsumer {
  private messages: ConsumerMessages | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private readonly loop: Promise<void>;

  constructor(
    private readonly js: JetStreamClient,
    private readonly spec: DurableConsumerSpec,
    private readonly handler: ConsumeHandler,
    private readonly logger?: BusLogger,
  ) {
    this.loop = this.run();
  }

  /**
   * Stops fetching, lets the message in hand finish (within a bounded time), and hands the ones
   * fetched ahead back to JetStream. Safe to call twice.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS)));
    // close() from outside the loop: inside it, close() would wait for the loop itself.
    await Promise.race([Promise.all([this.messages?.close(), this.loop]), timeout]).catch(() => undefined);
    clearTimeout(timer);
  }

  private async run(): Promise<void> {
    const { stream, durable } = this.spec;
    while (!this.stopping) {
      try {
        const consumer = await this.js.consumers.get(stream, durable);
        if (this.stopping) break;
        this.messages = await consumer.consume({ max_messages: this.spec.batch ?? DEFAULT_BATCH });
        if (this.stopping) await this.messages.close();
        for await (const msg of this.messages) await this.handle(msg);
      } catch (err) {
        if (!this.stopping) this.logger?.warn({ err, stream, durable }, 'JetStream consumer failed; restarting');
      }
      if (!this.stopping) await this.pause(RESTART_DELAY_MS);
    }
  }

  private async handle(msg: JsMsg): Promise<void> {
    if (this.stopping) {
      // Fetched ahead but not handled: give it back now rather than after the ack wait.
      msg.nak();
      return;
    }
    const { stream, durable } = this.spec;
    try {
      await this.handler({
        subject: msg.subject,
        data: msg.data,
        streamSeq: msg.seq,
        deliveryCount: msg.info.deliveryCount,
      });
    } catch (err) {
      this.logger?.warn(
        { err, stream, durable, seq: msg.seq, deliveries: msg.info.deliveryCount },
        'message handler failed; it will be delivered again',
      );
      msg.nak(this.spec.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS);
      return;
    }
    // A lost ack only means one more delivery, which the handler tolerates.
    await msg
      .ackAck({ timeout: ACK_TIMEOUT_MS })
      .catch((err: unknown) => this.logger?.warn({ err, stream, durable, seq: msg.seq }, 'ack not confirmed'));
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/** The JetStream consumer configuration of a spec: explicit acks, from the start of the stream. */
export function consumerConfig(spec: DurableConsumerSpec): Partial<ConsumerConfig> & { durable_name: string } {
  return {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: spec.filterSubject,
    ack_wait: nanos(spec.ackWaitMs ?? DEFAULT_ACK_WAIT_MS),
    // Never give up on a message: a handler that keeps failing is a bug to fix, not data to drop.
    max_deliver: -1,
  };
}
