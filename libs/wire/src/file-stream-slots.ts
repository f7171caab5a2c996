import type { QUICConnection } from '@matrixai/quic';
import { RpcError, StatusCode } from './rpc-error.js';

/** How often a transfer waiting for the peer's stream credit looks again. */
const CREDIT_POLL_MS = 20;

interface Waiter {
  resolve(): void;
  reject(err: RpcError): void;
}

/**
 * Who may open a file stream on a connection now. At most `limit` at once (queued in order beyond
 * that), and only while QUIC's stream credit from the peer is left: the library fails `newStream()`
 * past the credit and then every later one too (DESIGN.md §6), and the peer returns credit for
 * finished streams only with some delay (MAX_STREAMS), so a stream just finished may not be
 * reusable yet.
 */
export class FileStreamSlots {
  private open = 0;
  private readonly waiting: Waiter[] = [];
  private closedBecause: RpcError | undefined;

  constructor(
    private readonly connection: QUICConnection,
    private readonly limit: number,
  ) {}

  /**
   * Waits for a slot and for stream credit, at most `timeoutMs` (then DEADLINE_EXCEEDED); rejects
   * with close's error once the connection closes. Every successful acquire must be matched by one
   * `release()`.
   */
  async acquire(timeoutMs: number): Promise<void> {
    if (this.closedBecause) throw this.closedBecause;
    const deadline = Date.now() + timeoutMs;
    const timedOut = () =>
      new RpcError(StatusCode.DEADLINE_EXCEEDED, `no file stream free on this connection within ${timeoutMs} ms`);
    if (this.open < this.limit) {
      this.open++;
    } else {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          const at = this.waiting.indexOf(waiter);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(timedOut());
        }, timeoutMs);
        const waiter: Waiter = {
          // release() hands its slot over: `open` stays as it is.
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
          reject: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        };
        this.waiting.push(waiter);
      });
    }
    try {
      for (;;) {
        if (this.closedBecause) throw this.closedBecause;
        if (this.creditLeft() > 0) return;
        if (Date.now() >= deadline) throw timedOut();
        await new Promise((resolve) => setTimeout(resolve, CREDIT_POLL_MS));
      }
    } catch (err) {
      this.release();
      throw err;
    }
  }

  /** A transfer's stream is finished with: the next one waiting may go. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next.resolve();
    else this.open--;
  }

  /** The connection closed: whoever waits, and whoever asks later, gets `err`. */
  close(err: RpcError): void {
    this.closedBecause ??= err;
    for (const waiter of this.waiting.splice(0)) waiter.reject(err);
  }

  /**
   * Bidirectional streams the peer still lets us open. Read from the library's native connection,
   * which its typings do not expose; when it is not there, assume credit and let newStream decide.
   */
  private creditLeft(): number {
    const native = (this.connection as unknown as { conn?: { peerStreamsLeftBidi?: () => number } }).conn;
    try {
      return native?.peerStreamsLeftBidi?.() ?? 1;
    } catch {
      // The connection is gone; opening the stream will say so.
      return 1;
    }
  }
}
