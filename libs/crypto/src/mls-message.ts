// Strict MLSMessage decoding: ts-mls decoders return undefined (or occasionally throw) on bad input
// and silently ignore trailing bytes; both are format errors here.
import { decodeMlsMessage, type MLSMessage } from 'ts-mls';
import { CryptoFormatError } from './errors.js';

export function decodeMlsMessageExact(bytes: Uint8Array): MLSMessage {
  if (!(bytes instanceof Uint8Array)) throw new CryptoFormatError('expected bytes');
  let decoded: ReturnType<typeof decodeMlsMessage>;
  try {
    decoded = decodeMlsMessage(bytes, 0);
  } catch (err) {
    throw new CryptoFormatError('not an MLS message', { cause: err });
  }
  if (decoded === undefined) throw new CryptoFormatError('not an MLS message');
  const [message, read] = decoded;
  if (read !== bytes.length) throw new CryptoFormatError(`MLS message has ${bytes.length - read} trailing bytes`);
  if (message.version !== 'mls10') throw new CryptoFormatError(`unsupported MLS version ${String(message.version)}`);
  return message;
}
