import { PeriodicTask } from '@qpq/runtime';

/** How often a sampled gauge is read unless told otherwise: every Prometheus scrape sees a fresh enough value. */
export const DEFAULT_SAMPLE_INTERVAL_MS = 15_000;

export interface PeriodicSampleOptions {
  /** What is sampled, for the log line when reading it fails, e.g. 'mailbox backlog'. */
  what: string;
  /** Between the end of one read and the start of the next (default 15 s). */
  intervalMs?: number;
  logger: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/**
 * A value read by a query every `intervalMs` (first at `start()`) and kept for gauges to report when
 * /metrics is scraped: a scrape never waits on the database, and however many scrapers there are,
 * the query runs once per interval. A failed read is logged (once per streak of failures) and the
 * last value kept; reads never overlap, and `stop()` ends them (a PeriodicTask).
 *
 * @example
 * const backlog = new PeriodicSample(() => mailboxBacklog(db), { what: 'mailbox backlog', logger });
 * backlog.start();
 * meter.createObservableGauge('…').addCallback((r) => backlog.latest && r.observe(backlog.latest.pending));
 * await backlog.stop();
 */
export class PeriodicSample<T> {
  private value: T | undefined;
  private failing = false;
  private readonly task: PeriodicTask;

  constructor(read: () => Promise<T>, opts: PeriodicSampleOptions) {
    this.task = new PeriodicTask(
      async () => {
        this.value = await read();
        if (this.failing) opts.logger.info({}, `reading the ${opts.what} works again`);
        this.failing = false;
      },
      {
        intervalMs: opts.intervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS,
        runAtStart: true,
        onError: (err) => {
          // Once per streak of failures: a database that is away is reported by readiness too.
          if (!this.failing)
            opts.logger.warn({ err }, `reading the ${opts.what} failed; its gauges keep the last value`);
          this.failing = true;
        },
      },
    );
  }

  /** The last value read, undefined until a read succeeded. */
  get latest(): T | undefined {
    return this.value;
  }

  /** Reads now, then every interval until `stop()`. Starting twice changes nothing. */
  start(): void {
    this.task.start();
  }

  /** Stops reading; resolves once a read in progress has ended. */
  async stop(): Promise<void> {
    await this.task.stop();
  }
}
