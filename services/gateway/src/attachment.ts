import { status as GrpcStatus } from '@grpc/grpc-js';
import { subjects } from '@qpq/bus';
import { Push } from '@qpq/proto';
import { isServiceError, type Identity, type Logger, type QpqError } from '@qpq/runtime';
import type { Subscription } from 'nats';
import type { AppContext } from './context.js';
import { DeviceRevokedError, NotAttachedError, SessionExpiredError, ShuttingDownError } from './errors.js';
import type { SessionInfo } from './session-cache.js';

/**
 * A Push is one oneof field, encoded alone, so its first byte is that field's tag: session_revoked
 * is field 4, length-delimited ((4 << 3) | 2). Only such pushes are decoded; envelopes pass as bytes.
 */
const SESSION_REVOKED_TAG = 0x22;

/**
 * The session one client connection is attached to: the token, whose device it is, and the NATS
 * subscription that brings that device's pushes. Every request that needs a session re-checks the
 * token through the session cache, so a logged-out or revoked session stops working within the
 * cache TTL; while auth cannot be reached, the identity already known keeps serving. A revoked
 * device stops at once: auth's SessionRevoked push is forwarded, then the cache forgets the device
 * and the connection is detached.
 */
export class Attachment {
  private token: string | undefined;
  private info: SessionInfo | undefined;
  private subscription: Subscription | undefined;
  /** The Attach in progress: requests that need a session wait for it instead of failing. */
  private attaching: Promise<unknown> = Promise.resolve();
  private ended = false;
  private warnedStale = false;
  /** Why the last attachment ended, when the client should hear more than "attach first". */
  private endedBecause: QpqError | undefined;

  constructor(
    private readonly ctx: AppContext,
    private readonly logger: Logger,
    private readonly onPush: (pushBytes: Uint8Array) => void,
  ) {}

  /** The attached device, without re-checking (for calls that do not need a session). */
  get current(): Identity | undefined {
    return this.info?.identity;
  }

  /**
   * Validates `token` and binds the connection to its device: from now on its requests carry that
   * identity and the device's pushes come down this connection. A refused token leaves any earlier
   * attachment as it was.
   */
  attach(token: string, requestId: string): Promise<SessionInfo> {
    const run = this.attaching.then(async () => {
      const info = await this.ctx.sessions.validate(token, requestId);
      if (this.ended) throw new ShuttingDownError();
      if (this.info?.identity.deviceId !== info.identity.deviceId) {
        this.subscription?.unsubscribe();
        const deviceId = info.identity.deviceId;
        this.subscription = this.ctx.bus.subscribe(subjects.push(deviceId), (bytes) => this.pushed(deviceId, bytes));
      }
      // A newer Attach on this connection may have started meanwhile: the last one wins.
      if (this.token === undefined) this.ctx.metrics.sessions.add(1);
      this.token = token;
      this.info = info;
      this.warnedStale = false;
      this.endedBecause = undefined;
      return info;
    });
    this.attaching = run.catch(() => undefined);
    return run;
  }

  /** The attached identity, re-checked against auth once per cache TTL. */
  async identity(requestId: string): Promise<Identity> {
    await this.attaching;
    const token = this.token;
    const known = this.info;
    if (token === undefined || !known) throw this.endedBecause ?? new NotAttachedError();
    let info: SessionInfo;
    try {
      info = await this.ctx.sessions.validate(token, requestId);
    } catch (err) {
      if (isServiceError(err) && err.code === GrpcStatus.UNAUTHENTICATED) {
        // Logged out, expired or revoked: the connection stops acting for the device at once.
        if (this.token === token) this.detach();
        throw err;
      }
      if (this.token === undefined) throw this.endedBecause ?? new NotAttachedError();
      // Auth is unreachable: keep serving the identity already checked, but never past the
      // session's own expiry.
      if (known.expiresAtMs <= Date.now()) {
        if (this.token === token) this.detach();
        throw new SessionExpiredError();
      }
      if (!this.warnedStale) {
        this.warnedStale = true;
        this.logger.warn(
          { err, device: known.identity.deviceId },
          'cannot re-check the session; serving with the identity already validated',
        );
      }
      return known.identity;
    }
    // Detached while auth was asked (revoked, logged out): the request must not go on.
    if (this.token === undefined) throw this.endedBecause ?? new NotAttachedError();
    if (this.token === token) this.info = info;
    return info.identity;
  }

  /** After a successful Logout through this connection: forget the token and stop the pushes. */
  endSession(): void {
    if (this.token !== undefined) this.ctx.sessions.forget(this.token);
    this.detach();
  }

  /** A push for the attached device: forwarded as it came; SessionRevoked also ends the attachment. */
  private pushed(deviceId: string, bytes: Uint8Array): void {
    this.onPush(bytes);
    if (bytes[0] !== SESSION_REVOKED_TAG) return;
    let push: Push;
    try {
      push = Push.decode(bytes);
    } catch (err) {
      this.logger.warn({ err, device: deviceId }, 'undecodable push');
      return;
    }
    if (push.kind?.$case !== 'sessionRevoked' || push.kind.value.deviceId !== deviceId) return;
    // Every connection of the device on this gateway gets the push; each forgets and detaches.
    this.ctx.sessions.forgetDevice(deviceId);
    if (this.info?.identity.deviceId === deviceId) {
      this.logger.info({ device: deviceId }, 'device revoked; connection detached');
      this.detach();
      this.endedBecause = new DeviceRevokedError();
    }
  }

  /** The connection is gone: unsubscribe for good. */
  close(): void {
    this.ended = true;
    this.detach();
  }

  private detach(): void {
    if (this.token !== undefined) this.ctx.metrics.sessions.add(-1);
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.token = undefined;
    this.info = undefined;
    this.endedBecause = undefined;
  }
}
