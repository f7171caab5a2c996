import { closeSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { StoreError } from './errors.js';

/** A lock older than this is left over from a crash: every holder keeps it for milliseconds. */
export const STALE_LOCK_MS = 30_000;

export interface FileLockOptions {
  timeoutMs?: number;
  pollMs?: number;
}

/**
 * An exclusive lock between processes sharing one data dir: the file is created with O_EXCL and holds
 * the owner's pid and a nonce. A lock whose process is gone (or that is older than STALE_LOCK_MS) is
 * taken over. Held only around one read-modify-write of the store, so a `qpq send` can run while a
 * `qpq recv --wait` waits on the same data dir.
 */
export class FileLock {
  constructor(readonly path: string) {}

  async acquire(opts: FileLockOptions = {}): Promise<() => void> {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const pollMs = opts.pollMs ?? 10;
    const deadline = Date.now() + timeoutMs;
    const content = `${process.pid} ${randomBytes(8).toString('hex')}\n`;
    for (;;) {
      if (this.tryCreate(content)) return () => this.release(content);
      this.removeIfStale();
      if (Date.now() >= deadline) {
        const holder = this.readHolder();
        throw new StoreError(
          `the data dir is locked by another qpq process${holder ? ` (pid ${holder.pid})` : ''}; if none is running, delete ${this.path}`,
        );
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  private tryCreate(content: string): boolean {
    let fd: number;
    try {
      fd = openSync(this.path, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw new StoreError(`cannot create the lock ${this.path}: ${(err as Error).message}`, undefined, { cause: err });
    }
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
    return true;
  }

  private release(content: string): void {
    // Only remove our own lock: a holder that overran STALE_LOCK_MS may have been taken over.
    try {
      if (readFileSync(this.path, 'utf8') === content) unlinkSync(this.path);
    } catch {
      // already gone
    }
  }

  private readHolder(): { pid: number; raw: string; ageMs: number } | undefined {
    try {
      const raw = readFileSync(this.path, 'utf8');
      const ageMs = Date.now() - statSync(this.path).mtimeMs;
      const pid = Number.parseInt(raw.split(' ')[0] ?? '', 10);
      return { pid, raw, ageMs };
    } catch {
      return undefined;
    }
  }

  private removeIfStale(): void {
    const holder = this.readHolder();
    if (!holder) return;
    // An empty file is a holder between create and write: not stale unless it is old.
    const dead = Number.isInteger(holder.pid) && holder.pid > 0 && !processAlive(holder.pid);
    if (!dead && holder.ageMs < STALE_LOCK_MS) return;
    // Move it aside first and check it is still the lock we judged, so two processes that both saw
    // the same stale lock cannot remove a fresh one that a third created in between.
    const aside = `${this.path}.stale-${randomBytes(6).toString('hex')}`;
    try {
      renameSync(this.path, aside);
    } catch {
      return;
    }
    try {
      if (readFileSync(aside, 'utf8') !== holder.raw) {
        try {
          linkSync(aside, this.path);
        } catch {
          // someone holds a newer lock; theirs wins
        }
      }
    } finally {
      try {
        unlinkSync(aside);
      } catch {
        // ignore
      }
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
