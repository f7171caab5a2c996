/**
 * Lets callers wait, with a deadline, for the next append this process commits. Only appends made by
 * this replica wake it; a waiter also re-reads on its own timer, so another replica's appends are seen
 * too (a little later).
 */
export class HeadWatch {
  private waiters = new Set<() => void>();

  /** Called after each committed append. */
  notify(): void {
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const wake of waiters) wake();
  }

  /** Resolves at the next append or after `ms`, whichever comes first. */
  next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(0, ms));
      this.waiters.add(wake);
    });
  }

  /** Releases every waiter (at shutdown). */
  close(): void {
    this.notify();
  }
}
