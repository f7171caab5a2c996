import { subjects, type Bus } from '@qpq/bus';
import { Push } from '@qpq/proto';
import type { Logger } from '@qpq/runtime';

/**
 * Core-NATS pushes about an account's devices, sent after the change committed. Best effort, like
 * every push: a device that misses DevicesChanged still finds the change in ResolveUser/ListDevices,
 * and a revoked device that misses SessionRevoked is refused at its next session check anyway.
 */
export class DevicePushes {
  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
  ) {}

  /** Tells each of `recipients` (the account's other active devices) that `deviceId` came or went. */
  devicesChanged(accountId: string, deviceId: string, revoked: boolean, recipients: readonly string[]): void {
    const push = Push.encode({
      kind: { $case: 'devicesChanged', value: { accountId, deviceId, revoked } },
    }).finish();
    for (const recipient of recipients) this.send(recipient, push);
  }

  /** Tells the revoked device itself, so the gateway holding its connection ends the session there. */
  sessionRevoked(deviceId: string): void {
    this.send(deviceId, Push.encode({ kind: { $case: 'sessionRevoked', value: { deviceId } } }).finish());
  }

  private send(deviceId: string, push: Uint8Array): void {
    try {
      this.bus.publish(subjects.push(deviceId), push);
    } catch (err) {
      // Only a closed connection throws (a reconnecting one buffers); the change itself stands.
      this.logger.warn({ err, device: deviceId }, 'device push not sent');
    }
  }
}
