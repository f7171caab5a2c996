import type { Telemetry } from '@qpq/runtime';

// Instrument types taken from the runtime's helpers, so no @opentelemetry/api import is needed here.
type Counter = ReturnType<Telemetry['counter']>;

/** Why an upload was refused (the `reason` label of qpq_blob_uploads_refused_total). */
export type RefusalReason = 'too_large' | 'overrun' | 'hash_mismatch' | 'offset';
const REFUSAL_REASONS: readonly RefusalReason[] = ['too_large', 'overrun', 'hash_mismatch', 'offset'];

/** What the collector removed (the `kind` label of qpq_blob_collected_total). */
export type CollectedKind = 'blob' | 'upload';

/**
 * What an SRE watches on the blob service (besides the per-RPC metrics every service has). Names are as
 * they appear on /metrics, each carrying its unit.
 */
export class BlobMetrics {
  /** Upload bytes received from callers (what arrived, stored or not). */
  readonly receivedBytes: Counter;
  /** Download bytes handed to gRPC for callers. */
  readonly sentBytes: Counter;
  /** Uploads that completed, deduplicated ones included. */
  readonly uploadsCompleted: Counter;
  readonly uploadsRefused: Counter;
  /** Uploads that completed without storing anything new: a blob with that hash was already stored. */
  readonly dedupHits: Counter;
  readonly collected: Counter;

  constructor(
    telemetry: Telemetry,
    /** Bytes of complete blobs, read when /metrics is scraped (the database is the only truth across replicas). */
    storedBytes: () => Promise<number>,
  ) {
    this.receivedBytes = telemetry.counter('qpq_blob_received_bytes_total', 'Upload bytes received from callers');
    this.sentBytes = telemetry.counter('qpq_blob_sent_bytes_total', 'Download bytes sent to callers');
    this.uploadsCompleted = telemetry.counter(
      'qpq_blob_uploads_completed_total',
      'Uploads that completed (hash checked), deduplicated ones included',
    );
    this.uploadsRefused = telemetry.counter(
      'qpq_blob_uploads_refused_total',
      'Uploads refused, by reason: too_large (declared size), overrun (bytes past the declared size), ' +
        'hash_mismatch, offset (begin.offset is not the stored count)',
    );
    this.dedupHits = telemetry.counter(
      'qpq_blob_dedup_hits_total',
      'Uploads answered by a blob already stored under the same hash (nothing new stored)',
    );
    this.collected = telemetry.counter(
      'qpq_blob_collected_total',
      'What the collector deleted, by kind: blob (every claim expired), upload (abandoned unfinished upload)',
    );
    // Present (at 0) from start, so rates and alerts see every series.
    for (const counter of [this.receivedBytes, this.sentBytes, this.uploadsCompleted, this.dedupHits]) counter.add(0);
    for (const reason of REFUSAL_REASONS) this.uploadsRefused.add(0, { reason });
    for (const kind of ['blob', 'upload'] as const) this.collected.add(0, { kind });
    telemetry.meter
      .createObservableGauge('qpq_blob_stored_bytes', { description: 'Bytes of complete blobs in storage' })
      .addCallback(async (result) => {
        try {
          result.observe(await storedBytes());
        } catch {
          // Database unreachable: the series is left out of this scrape (readiness reports the cause).
        }
      });
  }

  refused(reason: RefusalReason): void {
    this.uploadsRefused.add(1, { reason });
  }
}
