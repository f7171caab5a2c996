import { generateKeyPackages, type DeviceKeys } from '@qpq/crypto';
import { KeyPackageServiceService } from '@qpq/proto';
import type { GatewaySession } from './gateway-session.js';
import type { LocalStore } from './store.js';

/** One-time KeyPackages a device keeps on the server (also the most one upload may carry). */
export const KEY_PACKAGE_POOL_SIZE = 100;

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

/**
 * Keeps this device's pool of one-time KeyPackages on the server filled, and a last-resort one in
 * place. Private parts are written to the store before the public parts are uploaded: a KeyPackage
 * someone can claim must always be one this device can join with.
 */
export class KeyPackagePool {
  private running: Promise<number> | undefined;

  constructor(
    private readonly store: LocalStore,
    private readonly session: GatewaySession,
    private readonly device: () => Promise<{ keys: DeviceKeys; identity: string }>,
    private readonly poolSize = KEY_PACKAGE_POOL_SIZE,
  ) {}

  /** Uploads `count` one-time KeyPackages (and a last-resort one when asked). Returns how many the server holds. */
  async upload(count: number, withLastResort: boolean): Promise<number> {
    const { keys, identity } = await this.device();
    const bundles =
      count + (withLastResort ? 1 : 0) > 0
        ? await generateKeyPackages(keys, identity, count + (withLastResort ? 1 : 0))
        : [];
    const lastResort = withLastResort ? bundles.pop() : undefined;
    const now = Date.now();
    await this.store.update((doc) => {
      for (const b of bundles) {
        doc.keyPackages[b.ref] = {
          publicBytes: b64(b.publicBytes),
          privateBytes: b64(b.privateBytes),
          lastResort: false,
          createdAtMs: now,
        };
      }
      if (lastResort) {
        doc.keyPackages[lastResort.ref] = {
          publicBytes: b64(lastResort.publicBytes),
          privateBytes: b64(lastResort.privateBytes),
          lastResort: true,
          createdAtMs: now,
        };
      }
    });
    const res = await this.session.call(KeyPackageServiceService.uploadKeyPackages, {
      keyPackages: bundles.map((b) => b.publicBytes),
      lastResortKeyPackage: lastResort?.publicBytes ?? new Uint8Array(0),
    });
    return res.oneTimeRemaining;
  }

  /**
   * Tops the pool up to its size when the server says it is low (or when `remaining` is unknown,
   * after asking). Concurrent calls share one run.
   */
  replenish(known?: { oneTimeRemaining: number; lowWaterMark: number }): Promise<number> {
    this.running ??= this.replenishOnce(known).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async replenishOnce(known?: { oneTimeRemaining: number; lowWaterMark: number }): Promise<number> {
    let remaining: number;
    let hasLastResort = true;
    if (known) {
      remaining = known.oneTimeRemaining;
    } else {
      const count = await this.session.call(KeyPackageServiceService.countKeyPackages, {});
      if (count.oneTimeRemaining >= count.lowWaterMark && count.hasLastResort) return count.oneTimeRemaining;
      remaining = count.oneTimeRemaining;
      hasLastResort = count.hasLastResort;
    }
    const missing = Math.max(0, this.poolSize - remaining);
    if (missing === 0 && hasLastResort) return remaining;
    return this.upload(missing, !hasLastResort);
  }
}
