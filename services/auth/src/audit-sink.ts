import type { Bus } from '@qpq/bus';
import { subjects } from '@qpq/bus';
import type { AuditEvent, AuditSink, Logger } from '@qpq/runtime';

/**
 * Publishes audit events to the QPQ_AUDIT JetStream stream. The publish is fired, not awaited: an
 * RPC never waits on, or fails because of, the audit stream (the JSON log line is already written).
 */
export class JetStreamAuditSink implements AuditSink {
  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly service: string,
  ) {}

  record(event: AuditEvent, fields: Record<string, string | number | boolean>): void {
    const body = JSON.stringify({ event, at: new Date().toISOString(), service: this.service, ...fields });
    this.bus
      .publishDurable(subjects.audit(event), new TextEncoder().encode(body))
      .catch((err: unknown) => this.logger.warn({ err, event }, 'audit event not stored in JetStream'));
  }
}
