import { subjects, type Bus } from '@qpq/bus';
import type { Logger } from '@qpq/runtime';
import { sql, type Kysely } from 'kysely';
import type { AuthDatabase } from './db/schema.js';
import { now } from './db/time.js';

/** Events published per transaction; the relay loops until none is left. */
const BATCH = 100;

/**
 * Publishes the DeviceEvent outbox to JetStream (stream QPQ_DEVICES): unpublished rows, oldest
 * first, each with its event_id as msgID (so a repeat within the stream's duplicate window is
 * dropped), then marks them published. It runs after every change and every `intervalMs`, so an
 * event written while NATS was down, or just before a crash, is published once NATS is back.
 *
 * Replicas take turns under one transaction-scoped advisory lock: events leave in order, and a
 * replica that waits for the lock finds what the other one published already marked.
 */
export class DeviceEventRelay {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly db: Kysely<AuthDatabase>,
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.timer.unref();
    this.kick();
  }

  /** Asks for a pass soon (after a change committed); passes never overlap within a replica. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.relayPending().catch((err: unknown) => this.logger.warn({ err }, 'device event relay failed'));
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = undefined));
  }

  /** Stops the timer and waits for the pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** Publishes every unpublished event it can, in order; returns how many it published. */
  async relayPending(): Promise<number> {
    let total = 0;
    // While NATS is away a publish would only time out: leave the rows for a later pass.
    while (this.bus.isConnected()) {
      const { published, more } = await this.relayBatch();
      total += published;
      if (!more) break;
    }
    return total;
  }

  private relayBatch(): Promise<{ published: number; more: boolean }> {
    return this.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtextextended('qpq.auth.device_event_relay', 0))`.execute(trx);
      const rows = await trx
        .selectFrom('device_events')
        .select(['event_id', 'op', 'payload'])
        .where('published_at', 'is', null)
        .orderBy('created_at')
        .orderBy('event_id')
        .limit(BATCH)
        .execute();
      const published: string[] = [];
      let failed = false;
      for (const row of rows) {
        try {
          await this.bus.publishDurable(subjects.deviceEvent(row.op), row.payload, row.event_id);
          published.push(row.event_id);
        } catch (err) {
          // Stop at the first failure: a later event must not overtake this one.
          this.logger.warn({ err, event_id: row.event_id }, 'device event not published yet; will retry');
          failed = true;
          break;
        }
      }
      if (published.length > 0) {
        await trx
          .updateTable('device_events')
          .set({ published_at: now() })
          .where('event_id', 'in', published)
          .execute();
      }
      return { published: published.length, more: !failed && rows.length === BATCH };
    });
  }
}
