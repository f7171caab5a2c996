// A JetStream durable consumer read in batches: whatever has arrived is handled by one call, then
// acknowledged together. libs/bus's Bus.consume hands messages over one at a time, which would make
// every append its own transaction and head; this keeps its guarantees (explicit acks, nothing lost,
// redelivery after a failure) while batching.
import type { Bus, RunningConsumer } from '@qpq/bus';
import type { Logger } from '@qpq/runtime';
import { AckPolicy, DeliverPolicy, nanos, type ConsumerMessages, type JsMsg } from 'nats';

export interface BatchConsumerSpec {
  stream: string;
  durable: string;
  filterSubject: string;
  /** Messages handled in one call at most. */
  maxBatch: number;
  /** After a failed batch, its messages come back after this long (default 1 s). */
  retryDelayMs?: number;
}

/** Handles a batch; throwing sends every message of it back for redelivery. */
export type BatchHandler = (
  messages: readonly { subject: string; data: Uint8Array; streamSeq: number }[],
) => Promise<void>;

const RESTART_DELAY_MS = 1_000;
/**
 * A batch not acknowledged within this long is delivered again. Shorter than Bus.consume's 30 s: a
 * message in flight when a replica stops is lost to it and comes back only after this long, while a
 * batch commits in well under a second (and a slow one delivered twice appends once).
 */
const ACK_WAIT_MS = 10_000;
const ACK_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 5_000;
const DEFAULT_RETRY_DELAY_MS = 1_000;

/** Starts reading; resolves once the durable consumer exists (created, or brought to this spec). */
export async function consumeInBatches(
  bus: Bus,
  spec: BatchConsumerSpec,
  handler: BatchHandler,
  logger: Logger,
): Promise<RunningConsumer> {
  await bus.ensureConsumer(spec.stream, {
    // As Bus.consume configures its consumers (libs/bus consumerConfig, which the package does not export).
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: spec.filterSubject,
    ack_wait: nanos(ACK_WAIT_MS),
    max_deliver: -1,
    // Room for a full batch in hand plus the next one arriving.
    max_ack_pending: spec.maxBatch * 2,
  });
  return new BatchConsumer(bus, spec, handler, logger);
}

class BatchConsumer implements RunningConsumer {
  private stopping = false;
  private messages: ConsumerMessages | undefined;
  private readonly queue: JsMsg[] = [];
  private wake: (() => void) | undefined;
  private wakePump: (() => void) | undefined;
  private readonly pump: Promise<void>;
  private readonly worker: Promise<void>;

  constructor(
    private readonly bus: Bus,
    private readonly spec: BatchConsumerSpec,
    private readonly handler: BatchHandler,
    private readonly logger: Logger,
  ) {
    this.pump = this.readMessages();
    this.worker = this.handleBatches();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.wakePump?.();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS)));
    await Promise.race([Promise.all([this.messages?.close(), this.pump, this.worker]), timeout]).catch(() => undefined);
    clearTimeout(timer);
    // Fetched but not handled: give them back now rather than after the ack wait.
    for (const msg of this.queue.splice(0)) msg.nak();
  }

  // Moves messages from JetStream into the queue as they arrive (bounded by max_ack_pending).
  private async readMessages(): Promise<void> {
    const { stream, durable } = this.spec;
    while (!this.stopping) {
      try {
        const consumer = await this.bus.js.consumers.get(stream, durable);
        if (this.stopping) break;
        this.messages = await consumer.consume({ max_messages: this.spec.maxBatch });
        if (this.stopping) await this.messages.close();
        for await (const msg of this.messages) {
          if (this.stopping) {
            msg.nak();
            continue;
          }
          this.queue.push(msg);
          this.wake?.();
        }
      } catch (err) {
        if (!this.stopping) this.logger.warn({ err, stream, durable }, 'JetStream consumer failed; restarting');
      }
      if (!this.stopping) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, RESTART_DELAY_MS);
          this.wakePump = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }

  private async handleBatches(): Promise<void> {
    while (!this.stopping) {
      if (this.queue.length === 0) {
        await this.pause(RESTART_DELAY_MS);
        continue;
      }
      const batch = this.queue.splice(0, this.spec.maxBatch);
      try {
        await this.handler(batch.map((m) => ({ subject: m.subject, data: m.data, streamSeq: m.seq })));
      } catch (err) {
        this.logger.warn(
          { err, stream: this.spec.stream, durable: this.spec.durable, messages: batch.length },
          'batch handler failed; its messages will be delivered again',
        );
        for (const msg of batch) msg.nak(this.spec.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS);
        continue;
      }
      // A lost ack only means one more delivery, which the handler tolerates (it is idempotent).
      await Promise.all(
        batch.map((msg) =>
          msg
            .ackAck({ timeout: ACK_TIMEOUT_MS })
            .catch((err: unknown) => this.logger.warn({ err, seq: msg.seq }, 'ack not confirmed')),
        ),
      );
    }
  }

  // Sleeps until woken (a message arrived, or stop) or `ms` passed.
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }
}
