import type { PeriodicSample } from '@qpq/db';
import type { Telemetry } from '@qpq/runtime';
import type { KeyPackageStock } from './key-package-stock.js';

// Instrument types taken from the runtime's helpers, so this package needs no @opentelemetry/api of its own.
type Counter = ReturnType<Telemetry['counter']>;

/** How a claim was answered for one device (the `kind` label of qpq_keypackage_claims_total). */
export type ClaimKind = 'pooled' | 'last_resort';

/**
 * What an SRE watches on the keypackage service (besides the per-RPC metrics every service has):
 * the stock of KeyPackages and how fast it is drawn on. Names are as they appear on /metrics.
 */
export class KeyPackageMetrics {
  /** KeyPackages handed out, one per device claimed: a one-time one from the pool, or the last-resort one. */
  readonly claims: Counter;
  /** KeyPackages stored by uploads (one-time ones already stored and skipped are not counted). */
  readonly uploaded: Counter;

  constructor(telemetry: Telemetry, stock: PeriodicSample<KeyPackageStock>) {
    this.claims = telemetry.counter(
      'qpq_keypackage_claims_total',
      'KeyPackages handed out by claims, by kind: pooled (one-time, deleted) or last_resort (kept; a pool ran dry)',
    );
    this.uploaded = telemetry.counter(
      'qpq_keypackage_uploaded_total',
      'KeyPackages stored by uploads (one-time and last-resort; one-time repeats not counted)',
    );
    // Present (at 0) from start, so rates and alerts see every series.
    for (const kind of ['pooled', 'last_resort'] as const) this.claims.add(0, { kind });
    this.uploaded.add(0);
    // From the periodic sample (every 15 s), reported once it has been read.
    telemetry.meter
      .createObservableGauge('qpq_keypackage_stored_keypackages', {
        description: 'One-time KeyPackages stored and not claimed yet, all devices together',
      })
      .addCallback((result) => {
        if (stock.latest) result.observe(stock.latest.oneTime);
      });
    telemetry.meter
      .createObservableGauge('qpq_keypackage_devices_below_low_water', {
        description: 'Devices with fewer one-time KeyPackages stored than QPQ_KEYPACKAGE_LOW_WATER',
      })
      .addCallback((result) => {
        if (stock.latest) result.observe(stock.latest.devicesBelowLowWater);
      });
  }

  claimed(kind: ClaimKind): void {
    this.claims.add(1, { kind });
  }
}
