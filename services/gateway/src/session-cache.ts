import { status as GrpcStatus } from '@grpc/grpc-js';
import { AuthServiceService } from '@qpq/proto';
import { isServiceError, type Identity, type RpcClient } from '@qpq/runtime';

/** A session token's owner, as auth answered. */
export interface SessionInfo {
  identity: Identity;
  /** When the session itself expires (ms since the epoch). */
  expiresAtMs: number;
}

interface Entry {
  info: SessionInfo;
  /** Until when the answer is trusted without asking auth again. */
  freshUntil: number;
}

/** More distinct tokens than this and the oldest answers are forgotten (memory stays bounded). */
const MAX_ENTRIES = 100_000;

/**
 * Token → identity, asked of auth (ValidateSession) and remembered for `ttlMs`, so attaching and
 * re-checking an attached session cost a call to auth at most once per token per TTL. Refusals are
 * not remembered. Concurrent look-ups of one token share one call.
 */
export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<SessionInfo>>();

  constructor(
    private readonly auth: RpcClient,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The session's owner. Rejects with auth's error: UNAUTHENTICATED for a token that is unknown,
   * expired or revoked; UNAVAILABLE and the like when auth cannot be asked.
   */
  validate(token: string, requestId?: string): Promise<SessionInfo> {
    const entry = this.entries.get(token);
    const now = this.now();
    if (entry && entry.freshUntil > now && entry.info.expiresAtMs > now) return Promise.resolve(entry.info);
    const running = this.inFlight.get(token);
    if (running) return running;
    const call = this.ask(token, requestId).finally(() => this.inFlight.delete(token));
    this.inFlight.set(token, call);
    return call;
  }

  /** The last answer for this token, however old (used when auth cannot be asked). */
  lastKnown(token: string): SessionInfo | undefined {
    const info = this.entries.get(token)?.info;
    return info && info.expiresAtMs > this.now() ? info : undefined;
  }

  forget(token: string): void {
    this.entries.delete(token);
  }

  private async ask(token: string, requestId: string | undefined): Promise<SessionInfo> {
    try {
      const res = await this.auth.call(
        AuthServiceService.validateSession,
        { sessionToken: token },
        requestId ? { requestId } : {},
      );
      const info: SessionInfo = {
        identity: { accountId: res.accountId, deviceId: res.deviceId, username: res.username },
        expiresAtMs: Number(res.expiresAtMs),
      };
      this.remember(token, info);
      return info;
    } catch (err) {
      if (isServiceError(err) && err.code === GrpcStatus.UNAUTHENTICATED) this.entries.delete(token);
      throw err;
    }
  }

  private remember(token: string, info: SessionInfo): void {
    this.entries.delete(token); // re-insert: Map order is the eviction order
    this.entries.set(token, { info, freshUntil: this.now() + this.ttlMs });
    if (this.entries.size > MAX_ENTRIES) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }
}
