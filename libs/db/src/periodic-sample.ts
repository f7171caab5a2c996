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
 * last value kept; reads never
 * overlap, and `stop()` ends them (the timer is unref'd, so it never keeps a process alive either).
 *
 * @example
 * const backlog = new PeriodicSample(() => mailboxBacklog(db), { what: 'mailbox backlog', logger });
 * backlog.start();
 * meter.createObservableGauge('…').addCallback((r) => backlog.latest && r.observe(backlog.latest.pending));
 * await backlog.stop();
 */
export class PeriodicSample<T> {
  private value: T | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private running = false;
  private failing = false;
  /** Bumped by start() and stop(): a read of an earlier run schedules nothing. */
  private run = 0;

  constructor(
    private readonly read: () => Promise<T>,
    private readonly opts: PeriodicSampleOptions,
  ) {}

  /** The last value read, undefined until a read succeeded. */
  get latest(): T | undefined {
    return this.value;
  }

  /** Reads now, then every interval until `stop()`. Starting twice changes nothing. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.run++;
    this.readNow(this.run);
  }

  /** Stops reading; resolves once a read in progress has ended. */
  async stop(): Promise<void> {
    this.running = false;
    this.run++;
    clearTimeout(this.timer);
    await this.reading;
  }

  private readNow(run: number): void {
    // Through then(): a read that throws at once is a failed read too, not an exception here.
    this.reading = Promise.resolve()
      .then(() => this.read())
      .then(
        (value) => {
          this.value = value;
          if (this.failing) this.opts.logger.info({}, `reading the ${this.opts.what} works again`);
          this.failing = false;
        },
        (err: unknown) => {
          // Once per streak of failures: a database that is away is reported by readiness too.
          if (!this.failing) {
            this.opts.logger.warn({ err }, `reading the ${this.opts.what} failed; its gauges keep the last value`);
          }
          this.failing = true;
        },
      );
    void this.reading.then(() => {
      if (run !== this.run) return;
      this.timer = setTimeout(() => this.readNow(run), this.opts.intervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS);
      this.timer.unref();
    });
  }
}
