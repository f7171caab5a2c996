// The MLS credential identity of a device: "user@domain/deviceId". Every member of a group is a
// device, and a person reading a roster needs both the account address and which of its devices.
import { CryptoFormatError, CryptoUsageError } from './errors.js';

/** Longest identity accepted, in UTF-16 code units (addresses are short; this bounds hostile input). */
const MAX_IDENTITY_LENGTH = 512;
// No whitespace, control characters, or the separators themselves inside a part.
const FORBIDDEN = /[\s\p{Cc}@/]/u;

function partProblem(part: string, what: string): string | undefined {
  if (part.length === 0) return `${what} is empty`;
  if (FORBIDDEN.test(part)) return `${what} contains a space, control character, "@" or "/"`;
  return undefined;
}

function problemWith(user: string, domain: string, deviceId: string): string | undefined {
  return partProblem(user, 'user') ?? partProblem(domain, 'domain') ?? partProblem(deviceId, 'device id');
}

/**
 * The credential identity of a device.
 * @example deviceIdentity('alice@example.org', 'd1') // 'alice@example.org/d1'
 */
export function deviceIdentity(address: string, deviceId: string): string {
  const problem = addressProblem(address) ?? partProblem(deviceId, 'device id');
  if (problem !== undefined) throw new CryptoUsageError(`bad device identity: ${problem}`);
  const identity = `${address}/${deviceId}`;
  if (identity.length > MAX_IDENTITY_LENGTH) throw new CryptoUsageError('bad device identity: too long');
  return identity;
}

/** What is wrong with an account address "user@domain", or undefined when nothing is. */
export function addressProblem(address: string): string | undefined {
  if (typeof address !== 'string') return 'address is not a string';
  if (address.length > MAX_IDENTITY_LENGTH) return 'address is too long';
  const at = address.indexOf('@');
  if (at < 0) return 'address has no "@"';
  return partProblem(address.slice(0, at), 'user') ?? partProblem(address.slice(at + 1), 'domain');
}

/** Splits "user@domain/deviceId"; throws CryptoFormatError for anything else. */
export function parseDeviceIdentity(s: string): { address: string; deviceId: string } {
  if (typeof s !== 'string' || s.length > MAX_IDENTITY_LENGTH) throw new CryptoFormatError('bad device identity');
  const at = s.indexOf('@');
  const slash = s.indexOf('/');
  if (at < 0 || slash < at) throw new CryptoFormatError(`bad device identity ${JSON.stringify(s)}`);
  const problem = problemWith(s.slice(0, at), s.slice(at + 1, slash), s.slice(slash + 1));
  if (problem !== undefined) throw new CryptoFormatError(`bad device identity ${JSON.stringify(s)}: ${problem}`);
  return { address: s.slice(0, slash), deviceId: s.slice(slash + 1) };
}

const USERNAME = /^[a-z0-9_.-]{1,32}$/;

/** What a person is told when a username does not fit the rule. */
export const USERNAME_RULE = 'a username is 1 to 32 characters of a-z, 0-9, _, . and -';

/**
 * The username as stored, or undefined when it breaks the rule. Input is lowercased first so `Alice`
 * and `alice` are one account. The server (auth, keypackage) and the client apply the same rule.
 */
export function normalizeUsername(raw: string): string | undefined {
  const username = raw.trim().toLowerCase();
  return USERNAME.test(username) ? username : undefined;
}
