import type { Logger } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import type { AuthDatabase } from './db/schema.js';
import { now, nowPlus } from './db/time.js';

/** Rows removed per statement, so one sweep never holds locks on a large table for long. */
const BATCH = 1000;
/** Expired login attempts stay this long, so a late finish is audited as expired rather than replayed. */
const ATTEMPT_GRACE_MS = 5 * 60_000;

/**
 * Deletes expired login attempts and sessions now and then. Expired rows are already refused by the
 * queries that read them; this only keeps the tables small (StartLogin is unauthenticated).
 */
export class ExpirySweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly db: Kysely<AuthDatabase>,
    private readonly logger: Logger,
    private readonly intervalMs = 60_000,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.sweep()
        .then(() => undefined)
        .catch((err: unknown) => this.logger.warn({ err }, 'expiry sweep failed'))
        .finally(() => (this.running = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass over both tables; returns how many rows it removed. */
  async sweep(): Promise<number> {
    let removed = 0;
    for (;;) {
      const attempts = await this.db
        .deleteFrom('login_attempts')
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('login_attempts')
            .select('id')
            .where('expires_at', '<', nowPlus(-ATTEMPT_GRACE_MS))
            .limit(BATCH),
        )
        .executeTakeFirst();
      const sessions = await this.db
        .deleteFrom('sessions')
        .where('token_hash', 'in', (eb) =>
          eb.selectFrom('sessions').select('token_hash').where('expires_at', '<', now()).limit(BATCH),
        )
        .executeTakeFirst();
      const n = Number(attempts.numDeletedRows) + Number(sessions.numDeletedRows);
      removed += n;
      if (n < BATCH) return removed;
    }
  }
}
