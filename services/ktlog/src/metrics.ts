import type { SignedTreeHead } from '@qpq/proto';
import type { Telemetry } from '@qpq/runtime';

// Instrument types taken from the runtime's helpers, so this package needs no @opentelemetry/api of its own.
type Counter = ReturnType<Telemetry['counter']>;
type Histogram = ReturnType<Telemetry['histogramSeconds']>;

/**
 * What an SRE watches on the key-transparency log (besides the per-RPC metrics every service has).
 * Names are as they appear on /metrics: the Prometheus exporter adds nothing to them (counters
 * already end in `_total`, and units are not appended).
 */
export class KtlogMetrics {
  /** Entries committed to the log (events already in it are not counted again). */
  readonly appendedEntries: Counter;
  /** DeviceEvents acknowledged without an entry, since they can never be one (see entryOfEvent). */
  readonly skippedEvents: Counter;
  /** Seconds of each appendEntries transaction, committed or not. */
  readonly appendBatchDuration: Histogram;
  /** Batches whose transaction failed (they are delivered again; a steady rate means appends are stuck). */
  readonly appendFailures: Counter;

  // The newest head this replica has stored or served. Kept as the largest seen rather than the last
  // one seen: a read that started before a concurrent append may finish after it.
  private newest: { treeSize: number; timestampSeconds: number } | undefined;

  constructor(telemetry: Telemetry) {
    this.appendedEntries = telemetry.counter(
      'qpq_ktlog_appended_entries_total',
      'Log entries appended (DeviceEvents already in the log are not counted again)',
    );
    this.skippedEvents = telemetry.counter(
      'qpq_ktlog_skipped_events_total',
      'DeviceEvents acknowledged without an entry: undecodable, or missing what an entry binds',
    );
    this.appendFailures = telemetry.counter(
      'qpq_ktlog_append_failures_total',
      'Append transactions that failed (their DeviceEvents are delivered again)',
    );
    this.appendBatchDuration = telemetry.histogramSeconds(
      'qpq_ktlog_append_batch_duration_seconds',
      'Duration of one append transaction (a batch of DeviceEvents and its new signed head)',
    );
    // Present (at 0) from start rather than from the first batch, so rates and alerts see the series.
    for (const counter of [this.appendedEntries, this.skippedEvents, this.appendFailures]) counter.add(0);
    // Observable: the values are read at scrape time from what observeHead last kept, and reported
    // only once a head is known (from start on: KtlogService.create observes the newest stored head).
    telemetry.meter
      .createObservableGauge('qpq_ktlog_tree_size_entries', {
        description: 'Entries covered by the newest signed tree head',
      })
      .addCallback((result) => {
        if (this.newest) result.observe(this.newest.treeSize);
      });
    telemetry.meter
      .createObservableGauge('qpq_ktlog_newest_head_timestamp_seconds', {
        description: 'Unix time at which the newest signed tree head was signed (its age: time() - this)',
      })
      .addCallback((result) => {
        if (this.newest) result.observe(this.newest.timestampSeconds);
      });
  }

  /** Notes a head this replica stored or is serving; the gauges follow the largest one. */
  observeHead(head: Pick<SignedTreeHead, 'treeSize' | 'timestampMs'>): void {
    const treeSize = Number(head.treeSize);
    // A size's stored head never changes (storeHead keeps the first), so only a larger one is news.
    if (this.newest && treeSize <= this.newest.treeSize) return;
    this.newest = { treeSize, timestampSeconds: Number(head.timestampMs) / 1000 };
  }
}
