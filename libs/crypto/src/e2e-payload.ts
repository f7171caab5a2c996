import { E2EPayload, type WelcomeBundle } from '@qpq/proto';
import { type Framing, peekFraming } from './framing.js';
import { looksPadded, padToBucket, unpad } from './padding.js';

// What goes into Envelope.payload: an E2EPayload padded to a size bucket (padding.ts), so the server
// and the network see only a coarse size. The proto's own `padding` field stays empty. Clients and the
// delivery service (which reads the MLS framing to order Commits) decode it with the same code, so
// whatever one of them takes for an MLS message, the other does too.

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

/**
 * The cleartext MLS framing of a payload that is an MLS group message, else undefined (a Welcome, or
 * bytes no client would decode either). Never throws.
 */
export function payloadFraming(bytes: Uint8Array): Framing | undefined {
  // Opaque bytes are common here (the delivery service reads every payload): no exception for them.
  if (!looksPadded(bytes)) return undefined;
  try {
    const kind = decodePayload(bytes);
    if (kind.$case !== 'mlsMessage') return undefined;
    const framing = peekFraming(kind.value);
    return framing.wireFormat === 'public' || framing.wireFormat === 'private' ? framing : undefined;
  } catch {
    return undefined;
  }
}
