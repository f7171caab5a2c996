import { normalizeUsername } from '@qpq/crypto';
import { InvalidUsernameError } from './errors.js';

/** The username as stored (lowercased; the rule is shared with clients), or InvalidUsernameError. */
export function parseUsername(raw: string): string {
  const username = normalizeUsername(raw);
  if (username === undefined) throw new InvalidUsernameError();
  return username;
}

export function addressOf(username: string, domain: string): string {
  return `${username}@${domain}`;
}
