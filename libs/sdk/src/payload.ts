import { padToBucket, unpad } from '@qpq/crypto';
import { E2EPayload, type WelcomeBundle } from '@qpq/proto';

// What goes into Envelope.payload: an E2EPayload padded to a size bucket (libs/crypto padding.ts), so
// the server and the network see only a coarse size. The proto's own `padding` field stays empty.

export function mlsPayload(message: Uint8Array): Uint8Array {
  return padToBucket(
    E2EPayload.encode({ kind: { $case: 'mlsMessage', value: message }, padding: new Uint8Array(0) }).finish(),
  );
}

export function welcomePayload(welcome: WelcomeBundle): Uint8Array {
  return padToBucket(
    E2EPayload.encode({ kind: { $case: 'welcome', value: welcome }, padding: new Uint8Array(0) }).finish(),
  );
}

/** Decodes what arrived in an envelope; throws on bytes that are not a padded E2EPayload. */
export function decodePayload(bytes: Uint8Array): NonNullable<E2EPayload['kind']> {
  const payload = E2EPayload.decode(unpad(bytes));
  if (payload.kind === undefined) throw new Error('the payload is empty');
  return payload.kind;
}
