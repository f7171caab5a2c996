import type { Logger } from 'pino';

/** Security events worth an audit trail. Fields must never hold secrets (passwords, tokens, keys). */
export type AuditEvent =
  | 'account.registered'
  | 'login.succeeded'
  | 'login.failed'
  | 'login.replay_refused'
  | 'device.added'
  | 'device.refused'
  | 'device.revoked'
  | 'session.revoked';

export interface AuditSink {
  record(event: AuditEvent, fields: Record<string, string | number | boolean>): void;
}

/**
 * Writes audit events as structured log lines marked `"audit": true`, and hands them to an optional
 * durable sink (the service wires it to a JetStream stream).
 */
export class AuditLog {
  constructor(
    private readonly logger: Logger,
    private readonly sinks: AuditSink[] = [],
  ) {}

  addSink(sink: AuditSink): void {
    this.sinks.push(sink);
  }

  record(event: AuditEvent, fields: Record<string, string | number | boolean> = {}): void {
    this.logger.info({ audit: true, event, ...fields }, `audit ${event}`);
    for (const sink of this.sinks) sink.record(event, fields);
  }
}
