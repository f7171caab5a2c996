/**
 * Every NATS subject and JetStream stream the system uses, in one place.
 * Push subjects are per device: the gateway holding a device's connection subscribes to its own.
 */
export const subjects = {
  /** A Push (client.proto) for one device: envelopes and notices. Core NATS; best effort by design. */
  push: (deviceId: string) => `qpq.push.${deviceId}`,
  /** Audit events, durable in the AUDIT stream. */
  audit: (event: string) => `qpq.audit.${event}`,
  /** DeviceEvents (events.proto) from auth, durable in the DEVICES stream: `add` or `revoke`. */
  deviceEvent: (op: 'add' | 'revoke') => `qpq.devices.${op}`,
} as const;

export const streams = {
  audit: { name: 'QPQ_AUDIT', subjects: ['qpq.audit.>'], maxAgeMs: 30 * 24 * 3600 * 1000 },
  /**
   * Kept a year: consumers (keypackage, key transparency) that were down catch up from it. Auth's
   * outbox relay publishes each event with its event_id as msgID; a day of duplicate window drops the
   * repeat of an event published again after a crash between publish and marking it published.
   */
  devices: {
    name: 'QPQ_DEVICES',
    subjects: ['qpq.devices.>'],
    maxAgeMs: 365 * 24 * 3600 * 1000,
    duplicateWindowMs: 24 * 3600 * 1000,
  },
} as const;
