import type { Counter, Histogram } from '@opentelemetry/api';
import type { Telemetry } from '@qpq/runtime';

/** What an SRE watches on the delivery service (besides the per-RPC metrics every service has). */
export class DeliveryMetrics {
  readonly enqueuedMessages: Counter;
  readonly duplicates: Counter;
  readonly fanoutDevices: Histogram;
  readonly pushFailures: Counter;
  readonly expiredMessages: Counter;
  readonly commitConflicts: Counter;

  constructor(telemetry: Telemetry) {
    const meter = telemetry.meter;
    this.enqueuedMessages = meter.createCounter('qpq_delivery_enqueued_messages_total', {
      description: 'Messages stored (retries not counted)',
    });
    this.duplicates = meter.createCounter('qpq_delivery_duplicates_total', {
      description: 'Enqueue retries answered with the original result',
    });
    this.fanoutDevices = meter.createHistogram('qpq_delivery_fanout_devices', {
      description: 'Recipient devices per stored message',
      advice: { explicitBucketBoundaries: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] },
    });
    this.pushFailures = meter.createCounter('qpq_delivery_push_failures_total', {
      description: 'Push hints that could not be published on NATS (the device fetches instead)',
    });
    this.expiredMessages = meter.createCounter('qpq_delivery_expired_messages_total', {
      description: 'Messages deleted by the TTL sweep',
    });
    this.commitConflicts = meter.createCounter('qpq_delivery_commit_conflicts_total', {
      description: 'MLS Commits refused because another Commit already took their epoch (ABORTED)',
    });
  }
}
