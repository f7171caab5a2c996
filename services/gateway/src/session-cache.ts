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
 * How long a revoked device is remembered, so that an answer auth gave before the revocation but
 * that arrives after it is not cached. Longer than any call to auth can take.
 */
const REVOKED_MEMORY_MS = 60_000;

/**
 * Token → identity, asked of auth (ValidateSession) and remembered for `ttlMs`, so attaching and
 * re-checking an attached session cost a call to auth at most once per token per TTL. Refusals are
 * not remembered. Concurrent look-ups of one token share one call. A revoked device's tokens are
 * forgotten at once (forgetDevice), when auth's SessionRevoked push reaches this gateway.
 */
export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<SessionInfo>>();
  /** Device id → its tokens in `entries`. */
  private readonly tokensByDevice = new Map<string, Set<string>>();
  /** Device id → when it was forgotten as revoked (kept REVOKED_MEMORY_MS). */
  private readonly revokedAt = new Map<string, number>();

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
    this.drop(token);
  }

  /** The device was revoked: forget every answer about its tokens, and any still on its way. */
  forgetDevice(deviceId: string): void {
    for (const token of this.tokensByDevice.get(deviceId) ?? []) this.entries.delete(token);
    this.tokensByDevice.delete(deviceId);
    const now = this.now();
    for (const [id, at] of this.revokedAt) if (at < now - REVOKED_MEMORY_MS) this.revokedAt.delete(id);
    this.revokedAt.set(deviceId, now);
  }

  private async ask(token: string, requestId: string | undefined): Promise<SessionInfo> {
    const asked = this.now();
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
      // Auth answered before the device's revocation reached us: true then, but not worth keeping.
      const revoked = this.revokedAt.get(info.identity.deviceId);
      if (revoked === undefined || revoked < asked) this.remember(token, info);
      return info;
    } catch (err) {
      if (isServiceError(err) && err.code === GrpcStatus.UNAUTHENTICATED) this.drop(token);
      throw err;
    }
  }

  private remember(token: string, info: SessionInfo): void {
    this.drop(token); // re-insert: Map order is the eviction order
    this.entries.set(token, { info, freshUntil: this.now() + this.ttlMs });
    const deviceId = info.identity.deviceId;
    const tokens = this.tokensByDevice.get(deviceId) ?? new Set<string>();
    tokens.add(token);
    this.tokensByDevice.set(deviceId, tokens);
    if (this.entries.size > MAX_ENTRIES) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.drop(oldest.value);
    }
  }

  private drop(token: string): void {
    const entry = this.entries.get(token);
    if (!entry) return;
    this.entries.delete(token);
    const deviceId = entry.info.identity.deviceId;
    const tokens = this.tokensByDevice.get(deviceId);
    tokens?.delete(token);
    if (tokens?.size === 0) this.tokensByDevice.delete(deviceId);
  }
}
