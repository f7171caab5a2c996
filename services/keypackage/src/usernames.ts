import { InvalidArgumentError } from '@qpq/runtime';

// The same rule as the auth service's usernames (lowercase [a-z0-9_.-]{1,32}).
const USERNAME = /^[a-z0-9_.-]{1,32}$/;

export function parseUsername(raw: string): string {
  const username = raw.toLowerCase();
  if (!USERNAME.test(username))
    throw new InvalidArgumentError('a username is 1 to 32 characters of a-z, 0-9, _, . and -');
  return username;
}
