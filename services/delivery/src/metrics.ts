import type { Counter, Histogram } from '@opentelemetry/api';
import type { PeriodicSample } from '@qpq/db';
import type { Telemetry } from '@qpq/runtime';
import type { MailboxBacklog } from './mailbox-backlog.js';

/** What an SRE watches on the delivery service (besides the per-RPC metrics every service has). */
export class DeliveryMetrics {
  readonly enqueuedMessages: Counter;
  readonly duplicates: Counter;
  readonly fanoutDevices: Histogram;
  /** Plain messages stored per transaction (group commit; see enqueue-batches.ts). */
  readonly enqueueBatchSize: Histogram;
  readonly pushFailures: Counter;
  readonly expiredMessages: Counter;
  readonly commitConflicts: Counter;
  /** Envelopes acknowledged by their device (one per recipient device; deleted from its mailbox). */
  readonly ackedMessages: Counter;

  constructor(
    telemetry: Telemetry,
    /** The mailbox backlog, read every 15 s; the gauges report it once it has been read. */
    backlog: PeriodicSample<MailboxBacklog>,
    /** The service's clock, which acceptance times come from. */
    now: () => number,
  ) {
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
    this.enqueueBatchSize = meter.createHistogram('qpq_delivery_enqueue_batch_size', {
      description: 'Enqueues stored per transaction (group commit of concurrent requests)',
      advice: { explicitBucketBoundaries: [1, 2, 4, 8, 16, 32, 64, 128, 256] },
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
    this.ackedMessages = meter.createCounter('qpq_delivery_acked_messages_total', {
      description: 'Envelopes acknowledged by their recipient device (and deleted from its mailbox)',
    });
    // Present (at 0) from start, so rates and alerts see the series.
    for (const counter of [
      this.ackedMessages,
      this.enqueuedMessages,
      this.duplicates,
      this.pushFailures,
      this.expiredMessages,
      this.commitConflicts,
    ]) {
      counter.add(0);
    }
    meter
      .createObservableGauge('qpq_delivery_pending_messages', {
        description: 'Envelopes in device mailboxes not acknowledged yet (one per recipient device), sampled',
      })
      .addCallback((result) => {
        if (backlog.latest) result.observe(backlog.latest.pending);
      });
    meter
      .createObservableGauge('qpq_delivery_oldest_pending_age_seconds', {
        description: 'Age of the oldest envelope not acknowledged yet (0 when there is none)',
      })
      .addCallback((result) => {
        const latest = backlog.latest;
        if (!latest) return;
        // The age keeps growing between samples: computed at scrape time from the sampled acceptance time.
        const oldest = latest.oldestAcceptedAtMs;
        result.observe(oldest === undefined ? 0 : Math.max(0, now() - oldest) / 1000);
      });
  }
}
