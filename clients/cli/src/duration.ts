// Disappearing-message timers as a person writes them: 30s, 10m, 1h, 7d.

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

/** The longest timer /disappear accepts (the delivery service keeps nothing longer than its own TTL anyway). */
export const MAX_DISAPPEAR_MS = 365 * UNIT_MS.d;

export type DurationResult = { ok: true; ms: number } | { ok: false; error: string };

/**
 * Parses a whole number followed by one unit (s, m, h, d), nothing else: "1h30m", "1.5h", "90" and
 * "0s" are refused, so a typo never sets a timer nobody meant.
 * @example parseDuration('10m') // { ok: true, ms: 600000 }
 */
export function parseDuration(text: string): DurationResult {
  const match = /^(\d{1,6})([smhd])$/.exec(text);
  const refuse = (why: string): DurationResult => ({
    ok: false,
    error: `${why}: write a whole number and one unit, like 30s, 10m, 1h or 7d`,
  });
  if (!match) return refuse(`not a duration: ${JSON.stringify(text)}`);
  const ms = Number(match[1]) * UNIT_MS[match[2] as Unit];
  if (ms === 0) return { ok: false, error: 'a timer of 0 never fires: use /disappear off to turn it off' };
  if (ms > MAX_DISAPPEAR_MS) return { ok: false, error: `${text} is too long: the longest timer is 365d` };
  return { ok: true, ms };
}

/** The shortest way to write `ms` in the units parseDuration reads (a peer may have set any value). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
