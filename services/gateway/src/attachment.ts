import { status as GrpcStatus } from '@grpc/grpc-js';
import { subjects } from '@qpq/bus';
import { isServiceError, type Identity, type Logger } from '@qpq/runtime';
import type { Subscription } from 'nats';
import type { AppContext } from './context.js';
import { NotAttachedError, SessionExpiredError, ShuttingDownError } from './errors.js';
import type { SessionInfo } from './session-cache.js';

/**
 * The session one client connection is attached to: the token, whose device it is, and the NATS
 * subscription that brings that device's pushes. Every request that needs a session re-checks the
 * token through the session cache, so a logged-out or revoked session stops working within the
 * cache TTL; while auth cannot be reached, the identity already known keeps serving.
 */
export class Attachment {
  private token: string | undefined;
  private info: SessionInfo | undefined;
  private subscription: Subscription | undefined;
  /** The Attach in progress: requests that need a session wait for it instead of failing. */
  private attaching: Promise<unknown> = Promise.resolve();
  private ended = false;
  private warnedStale = false;

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
        this.subscription = this.ctx.bus.subscribe(subjects.push(info.identity.deviceId), this.onPush);
      }
      // A newer Attach on this connection may have started meanwhile: the last one wins.
      this.token = token;
      this.info = info;
      this.warnedStale = false;
      return info;
    });
    this.attaching = run.catch(() => undefined);
    return run;
  }

  /** The attached identity, re-checked against auth once per cache TTL. */
  async identity(requestId: string): Promise<Identity> {
    await this.attaching;
    const token = this.token;
    if (token === undefined || !this.info) throw new NotAttachedError();
    try {
      this.info = await this.ctx.sessions.validate(token, requestId);
      return this.info.identity;
    } catch (err) {
      if (isServiceError(err) && err.code === GrpcStatus.UNAUTHENTICATED) {
        // Logged out, expired or revoked: the connection stops acting for the device at once.
        if (this.token === token) this.detach();
        throw err;
      }
      // Auth is unreachable: keep serving the identity already checked, but never past the
      // session's own expiry.
      if (this.info.expiresAtMs <= Date.now()) {
        if (this.token === token) this.detach();
        throw new SessionExpiredError();
      }
      if (!this.warnedStale) {
        this.warnedStale = true;
        this.logger.warn(
          { err, device: this.info.identity.deviceId },
          'cannot re-check the session; serving with the identity already validated',
        );
      }
      return this.info.identity;
    }
  }

  /** After a successful Logout through this connection: forget the token and stop the pushes. */
  endSession(): void {
    if (this.token !== undefined) this.ctx.sessions.forget(this.token);
    this.detach();
  }

  /** The connection is gone: unsubscribe for good. */
  close(): void {
    this.ended = true;
    this.detach();
  }

  private detach(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.token = undefined;
    this.info = undefined;
  }
}
