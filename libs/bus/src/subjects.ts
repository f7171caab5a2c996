/**
 * Every NATS subject and JetStream stream the system uses, in one place.
 * Push subjects are per device: the gateway holding a device's connection subscribes to its own.
 */
export const subjects = {
  /** A Push (client.proto) for one device: envelopes and notices. Core NATS; best effort by design. */
  push: (deviceId: string) => `qpq.push.${deviceId}`,
  /** Audit events, durable in the AUDIT stream. */
  audit: (event: string) => `qpq.audit.${event}`,
} as const;

export const streams = {
  audit: { name: 'QPQ_AUDIT', subjects: ['qpq.audit.>'], maxAgeMs: 30 * 24 * 3600 * 1000 },
} as const;
