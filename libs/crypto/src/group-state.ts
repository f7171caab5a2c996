// Group state as bytes: what the SDK persists between every step. ts-mls serializes GroupState but not
// the ClientConfig (auth service, key retention), which is attached again on every decode.
import { type ClientState, decodeGroupState, encodeGroupState, type GroupContext } from 'ts-mls';
import { copyBytes } from './bytes.js';
import { clientConfig } from './client-config.js';
import { CryptoFormatError } from './errors.js';
import { CIPHERSUITE_NAME } from './suite.js';
import { decodeGroupContext } from './ts-mls-internals.js';

/** Encoded MLS group state of one device; persist it after every call that returns a new one. */
export type GroupStateBytes = Uint8Array;

/** A version byte in front of the ts-mls encoding, so a later format can be told apart and migrated. */
const STATE_FORMAT_VERSION = 1;

export function encodeState(state: ClientState): Uint8Array {
  const body = encodeGroupState(state);
  const out = new Uint8Array(1 + body.length);
  out[0] = STATE_FORMAT_VERSION;
  out.set(body, 1);
  return out;
}

/** Decodes a private copy of the bytes: operations zero consumed secrets in place, never in the caller's buffer. */
export function decodeState(bytes: Uint8Array): ClientState {
  requireStateVersion(bytes);
  const body = copyBytes(bytes.subarray(1));
  let decoded: ReturnType<typeof decodeGroupState>;
  try {
    decoded = decodeGroupState(body, 0);
  } catch (err) {
    throw new CryptoFormatError('corrupt group state', { cause: err });
  }
  if (decoded === undefined || decoded[1] !== body.length) throw new CryptoFormatError('corrupt group state');
  const state = decoded[0];
  if (state.groupContext.cipherSuite !== CIPHERSUITE_NAME) {
    throw new CryptoFormatError(`group state uses ciphersuite ${state.groupContext.cipherSuite}`);
  }
  return { ...state, clientConfig };
}

/**
 * Only the GroupContext at the front of the state (group id, epoch, suite, hashes): no tree, no keys.
 * It does not check the rest of the bytes; decodeState does.
 */
export function decodeStateContext(bytes: Uint8Array): GroupContext {
  requireStateVersion(bytes);
  let decoded: ReturnType<typeof decodeGroupContext>;
  try {
    decoded = decodeGroupContext(bytes.subarray(1), 0);
  } catch (err) {
    throw new CryptoFormatError('corrupt group state', { cause: err });
  }
  if (decoded === undefined) throw new CryptoFormatError('corrupt group state');
  if (decoded[0].cipherSuite !== CIPHERSUITE_NAME) {
    throw new CryptoFormatError(`group state uses ciphersuite ${decoded[0].cipherSuite}`);
  }
  return decoded[0];
}

function requireStateVersion(bytes: Uint8Array): void {
  if (!(bytes instanceof Uint8Array) || bytes[0] !== STATE_FORMAT_VERSION) {
    throw new CryptoFormatError('not an encoded group state');
  }
}
