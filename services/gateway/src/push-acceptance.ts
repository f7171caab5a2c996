import { Push } from '@qpq/proto';

/** An encoded Push opens with its one oneof field's tag: envelope is field 1, length-delimited ((1 << 3) | 2). */
const ENVELOPE_TAG = 0x0a;

/**
 * When the delivery service accepted the envelope a Push carries (ms since the epoch), or undefined
 * for any other push. Only envelope pushes are decoded; the payload is not copied (decoded bytes are
 * a view of the push).
 */
export function envelopeAcceptedAtMs(pushBytes: Uint8Array): number | undefined {
  if (pushBytes[0] !== ENVELOPE_TAG) return undefined;
  try {
    const push = Push.decode(pushBytes);
    if (push.kind?.$case !== 'envelope' || push.kind.value.acceptedAtMs <= 0n) return undefined;
    return Number(push.kind.value.acceptedAtMs);
  } catch {
    return undefined;
  }
}
