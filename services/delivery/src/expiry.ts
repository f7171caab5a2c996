import { sql } from 'kysely';
import { PeriodicTask } from '@qpq/runtime';
import type { AppContext } from './context.js';

/** Batches per sweep: a backlog is worked off over a few sweeps instead of one long burst. */
const MAX_BATCHES_PER_SWEEP = 10;

/**
 * Deletes messages whose TTL passed, with their mailbox rows (the foreign key cascades), every
 * QPQ_GC_INTERVAL, in batches of QPQ_GC_BATCH. Rows another replica is sweeping are skipped.
 * Device cursors stay: a device's seqs never start again from 1.
 */
export class ExpirySweeper {
  private readonly task: PeriodicTask;

  constructor(private readonly ctx: AppContext) {
    this.task = new PeriodicTask(() => this.sweep(), {
      intervalMs: ctx.cfg.gcIntervalMs,
      onError: (err) => ctx.logger.warn({ err }, 'expiry sweep failed; retrying next interval'),
    });
  }

  start(): void {
    this.task.start();
  }

  /** Stops the timer and waits for a sweep in progress. */
  async stop(): Promise<void> {
    await this.task.stop();
  }

  /** One sweep now; returns how many messages it deleted. */
  async sweep(): Promise<number> {
    const { db, cfg, metrics } = this.ctx;
    let total = 0;
    for (let i = 0; i < MAX_BATCHES_PER_SWEEP && !this.task.stopping; i++) {
      const result = await sql`
        delete from messages where id in (
          select id from messages where expires_at <= now()
          order by expires_at limit ${cfg.gcBatchSize}
          for update skip locked)`.execute(db);
      const deleted = Number(result.numAffectedRows ?? 0n);
      total += deleted;
      if (deleted < cfg.gcBatchSize) break;
    }
    if (total > 0) {
      metrics.expiredMessages.add(total);
      this.ctx.logger.info({ deleted: total }, 'expired messages deleted');
    }
    return total;
  }
}
