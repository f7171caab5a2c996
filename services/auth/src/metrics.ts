import type { Telemetry } from '@qpq/runtime';

// Instrument types taken from the runtime's helpers, so this package needs no @opentelemetry/api of its own.
type Counter = ReturnType<Telemetry['counter']>;

/** How a FinishLogin ended (the `outcome` label of qpq_auth_logins_total). */
export type LoginOutcome = 'ok' | 'failed';

/**
 * What an SRE watches on the auth service (besides the per-RPC metrics every service has): logins
 * and their failures (a burst of failures is password guessing), registrations, ended sessions.
 * Names are as they appear on /metrics.
 */
export class AuthMetrics {
  /**
   * Logins finished: ok (a session was issued) or failed (wrong password, expired or replayed login,
   * device refused). Malformed requests are not logins.
   */
  readonly logins: Counter;
  readonly registrations: Counter;
  /** Sessions ended before their expiry: by logout, or with their device's revocation. */
  readonly sessionsRevoked: Counter;

  constructor(telemetry: Telemetry) {
    this.logins = telemetry.counter(
      'qpq_auth_logins_total',
      'Logins finished, by outcome: ok (session issued), failed (wrong password, expired or replayed login, device refused)',
    );
    this.registrations = telemetry.counter('qpq_auth_registrations_total', 'Accounts registered');
    this.sessionsRevoked = telemetry.counter(
      'qpq_auth_sessions_revoked_total',
      'Sessions ended before their expiry, by logout or by the revocation of their device',
    );
    // Present (at 0) from start, so rates and alerts see every series.
    for (const outcome of ['ok', 'failed'] as const) this.logins.add(0, { outcome });
    this.registrations.add(0);
    this.sessionsRevoked.add(0);
  }

  login(outcome: LoginOutcome): void {
    this.logins.add(1, { outcome });
  }
}
