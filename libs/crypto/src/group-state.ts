// Group state as bytes: what the SDK persists between every step. ts-mls serializes GroupState but not
// the ClientConfig (auth service, key retention), which is attached again on every decode.
import { type ClientState, decodeGroupState, encodeGroupState } from 'ts-mls';
import { copyBytes } from './bytes.js';
import { clientConfig } from './client-config.js';
import { CryptoFormatError } from './errors.js';
import { CIPHERSUITE_NAME } from './suite.js';

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
  if (!(bytes instanceof Uint8Array) || bytes[0] !== STATE_FORMAT_VERSION) {
    throw new CryptoFormatError('not an encoded group state');
  }
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
