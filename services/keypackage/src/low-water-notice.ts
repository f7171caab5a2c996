import { subjects, type Bus } from '@qpq/bus';
import { Push } from '@qpq/proto';

/**
 * Tells a device (through the gateway holding its connection) that its one-time KeyPackages run low.
 * Core NATS, best effort: a device that misses it still sees the count on its next CountKeyPackages.
 */
export function publishKeyPackagesLow(
  bus: Bus,
  deviceId: string,
  oneTimeRemaining: number,
  lowWaterMark: number,
): void {
  const push: Push = { kind: { $case: 'keyPackagesLow', value: { oneTimeRemaining, lowWaterMark } } };
  bus.publish(subjects.push(deviceId), Push.encode(push).finish());
}
