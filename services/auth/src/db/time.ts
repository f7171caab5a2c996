import { sql, type RawBuilder } from 'kysely';

/** `now() + ms` computed by Postgres, so every replica agrees on expiry whatever its own clock says. */
export function nowPlus(ms: number): RawBuilder<Date> {
  return sql<Date>`now() + make_interval(secs => ${ms / 1000})`;
}

export const now = (): RawBuilder<Date> => sql<Date>`now()`;
