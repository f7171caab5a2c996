import { decodeMlsMessage, getCiphersuiteFromName, getCiphersuiteImpl, type CiphersuiteImpl } from 'ts-mls';
import { verifyKeyPackage } from 'ts-mls/keyPackage.js';

/**
 * The project's MLS cipher suite (X25519 + ML-KEM-768 hybrid). Its code point moved between ts-mls
 * versions, which is why ts-mls is pinned and why every stored KeyPackage is checked by name here.
 */
export const REQUIRED_CIPHER_SUITE = 'MLS_256_XWING_AES256GCM_SHA512_Ed25519';

export type KeyPackageProblem =
  | { kind: 'not-a-key-package' }
  | { kind: 'wrong-suite'; suite: string }
  | { kind: 'foreign-credential'; identity: string }
  | { kind: 'bad-signature' };

let suite: Promise<CiphersuiteImpl> | undefined;
const requiredSuite = () => (suite ??= getCiphersuiteImpl(getCiphersuiteFromName(REQUIRED_CIPHER_SUITE)));

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Checks that `bytes` is one MLSMessage holding a KeyPackage of the required suite, whose basic
 * credential names `expectedIdentity` and whose self-signature verifies. Returns the problem, if any
 * (a value, not a throw: the caller words the error for the RPC).
 */
export async function checkKeyPackage(
  bytes: Uint8Array,
  expectedIdentity: string,
): Promise<KeyPackageProblem | undefined> {
  let decoded: ReturnType<typeof decodeMlsMessage>;
  try {
    decoded = decodeMlsMessage(bytes, 0);
  } catch {
    return { kind: 'not-a-key-package' };
  }
  // Trailing bytes would be stored and handed to the claimer: refuse anything but an exact message.
  if (!decoded || decoded[1] !== bytes.byteLength) return { kind: 'not-a-key-package' };
  const message = decoded[0];
  if (message.version !== 'mls10' || message.wireformat !== 'mls_key_package') return { kind: 'not-a-key-package' };
  const kp = message.keyPackage;
  // Unknown suite ids decode to their number as a string, so compare the name itself.
  if (kp.cipherSuite !== REQUIRED_CIPHER_SUITE) return { kind: 'wrong-suite', suite: String(kp.cipherSuite) };
  const credential = kp.leafNode.credential;
  if (credential.credentialType !== 'basic')
    return { kind: 'foreign-credential', identity: `(${credential.credentialType} credential)` };
  let identity: string;
  try {
    identity = utf8.decode(credential.identity);
  } catch {
    return { kind: 'foreign-credential', identity: '(not UTF-8)' };
  }
  if (identity !== expectedIdentity) return { kind: 'foreign-credential', identity };
  if (!(await verifyKeyPackage(kp, (await requiredSuite()).signature))) return { kind: 'bad-signature' };
  return undefined;
}

/** The basic-credential identity a device's KeyPackages must carry: `<username>@<domain>/<deviceId>`. */
export function deviceCredentialIdentity(username: string, domain: string, deviceId: string): string {
  return `${username}@${domain}/${deviceId}`;
}
