import { InvalidUsernameError } from './errors.js';

const USERNAME = /^[a-z0-9_.-]{1,32}$/;

/**
 * The username as stored, or InvalidUsernameError. Input is lowercased first so `Alice` and `alice`
 * are one account (registration and login both pass through here, so OPAQUE sees the same name).
 */
export function parseUsername(raw: string): string {
  const username = raw.toLowerCase();
  if (!USERNAME.test(username)) throw new InvalidUsernameError();
  return username;
}

export function addressOf(username: string, domain: string): string {
  return `${username}@${domain}`;
}
