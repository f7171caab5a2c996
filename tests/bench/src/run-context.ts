// The BenchContext of one run: shared servers started on first use, and every cleanup a scenario
// registered, run newest first when the run ends (normally, by a failure, or by Ctrl-C).
import type { BenchContext } from './scenario.js';
import { startServers, type Servers } from './servers.js';

export class RunContext implements BenchContext {
  private readonly cleanups: { run: () => Promise<void> }[] = [];
  private serversStarting: Promise<Servers> | undefined;
  private closing: Promise<void> | undefined;
  private readonly started = performance.now();

  constructor(
    readonly quick: boolean,
    readonly signal: AbortSignal,
    readonly logDir: string,
  ) {}

  servers(): Promise<Servers> {
    if (this.closing) return Promise.reject(new Error('the run is ending'));
    this.serversStarting ??= (async () => {
      this.progress('starting Postgres and NATS JetStream');
      const servers = await startServers();
      this.own(() => servers.stop());
      return servers;
    })();
    return this.serversStarting;
  }

  own(cleanup: () => Promise<unknown>): () => Promise<void> {
    let done: Promise<void> | undefined;
    const entry = {
      run: () =>
        (done ??= (async () => {
          const at = this.cleanups.indexOf(entry);
          if (at >= 0) this.cleanups.splice(at, 1);
          await cleanup();
        })()),
    };
    this.cleanups.push(entry);
    return entry.run;
  }

  progress(line: string): void {
    const seconds = ((performance.now() - this.started) / 1000).toFixed(1).padStart(6);
    process.stderr.write(`[${seconds} s] ${line}\n`);
  }

  /** Runs every cleanup still registered, newest first, each even when one before it failed. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const failures: unknown[] = [];
      while (this.cleanups.length > 0) {
        const entry = this.cleanups.at(-1)!;
        try {
          await entry.run();
        } catch (err) {
          failures.push(err);
        }
      }
      if (failures.length > 0) throw new AggregateError(failures, 'some of what the run started did not stop cleanly');
    })();
    return this.closing;
  }
}
