export interface PeriodicTaskOptions {
  /** Between the end of one run and the start of the next. */
  intervalMs: number;
  /** Runs once at start() rather than an interval later. */
  runAtStart?: boolean;
  /** A run that threw; the next one is scheduled all the same. */
  onError: (err: unknown) => void;
}

/**
 * Work done every interval (sweeps, collections, sampled gauges): runs never overlap, the timer is
 * unref'd (it never keeps a process alive), and stop() waits for a run in progress, which can watch
 * `stopping` to end early. A run of an earlier start() schedules nothing after stop().
 *
 * @example
 * const sweeper = new PeriodicTask(() => sweep(), { intervalMs: 60_000, onError: (err) => log.warn({ err }) });
 * sweeper.start();
 * await sweeper.stop();
 */
export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  /** Bumped by start() and stop(): a run of an earlier start() schedules nothing. */
  private generation = 0;

  constructor(
    private readonly work: () => Promise<unknown>,
    private readonly opts: PeriodicTaskOptions,
  ) {}

  /** True from stop() until the next start(): a run in progress should end after its current step. */
  get stopping(): boolean {
    return this.stopped;
  }

  /** Runs every interval (first at once with runAtStart) until stop(). Starting twice changes nothing. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.stopped = false;
    const generation = ++this.generation;
    if (this.opts.runAtStart) this.runNow(generation);
    else this.schedule(generation);
  }

  /** Stops the timer; resolves once a run in progress has ended. */
  async stop(): Promise<void> {
    this.started = false;
    this.stopped = true;
    this.generation++;
    clearTimeout(this.timer);
    await this.current;
  }

  private runNow(generation: number): void {
    // Through then(): work that throws at once is a failed run too, not an exception here.
    this.current = Promise.resolve()
      .then(() => this.work())
      .then(
        () => undefined,
        (err: unknown) => this.opts.onError(err),
      );
    void this.current.then(() => this.schedule(generation));
  }

  private schedule(generation: number): void {
    if (generation !== this.generation) return;
    this.timer = setTimeout(() => this.runNow(generation), this.opts.intervalMs);
    this.timer.unref();
  }
}
