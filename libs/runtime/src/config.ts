/**
 * Reading configuration from QPQ_* environment variables. Only this module touches process.env:
 * a service declares what it needs as a spec and gets a typed object, or one ConfigError that lists
 * one clear line per wrong or missing value.
 */

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

type Parser<T> = (raw: string) => T;
export interface EnvVar<T> {
  readonly parse: Parser<T>;
  readonly fallback: T | undefined;
  readonly describe: string;
  /** Absent is allowed (and yields undefined) even without a fallback. */
  readonly optional: boolean;
}

function envVar<T>(describe: string, parse: Parser<T>, fallback?: T): EnvVar<T> {
  return { parse, fallback, describe, optional: false };
}

export const env = {
  string: (fallback?: string) => envVar('a string', (raw) => raw, fallback),
  integer: (fallback?: number, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) =>
    envVar(
      `an integer from ${min} to ${max}`,
      (raw) => {
        const n = Number(raw);
        if (!/^-?\d+$/.test(raw.trim()) || n < min || n > max) throw new Error();
        return n;
      },
      fallback,
    ),
  /** A duration like `500ms`, `10s`, `5m`, `1h`, or plain milliseconds; parsed to milliseconds. */
  duration: (fallback?: string) =>
    envVar(
      'a duration such as 500ms, 10s, 5m or 1h',
      parseDuration,
      fallback === undefined ? undefined : parseDuration(fallback),
    ),
  /** `host:port`; port 0 asks the system for a free one. */
  listen: (fallback?: string) =>
    envVar(
      'host:port (e.g. 127.0.0.1:7000)',
      parseHostPort,
      fallback === undefined ? undefined : parseHostPort(fallback),
    ),
  url: (protocols: string[], fallback?: string) =>
    envVar(
      `a URL (${protocols.join(', ')})`,
      (raw) => {
        const url = new URL(raw);
        if (!protocols.includes(url.protocol.replace(/:$/, ''))) throw new Error();
        return raw;
      },
      fallback,
    ),
  oneOf: <T extends string>(values: readonly T[], fallback?: T) =>
    envVar(
      `one of ${values.join(', ')}`,
      (raw) => {
        if (!values.includes(raw as T)) throw new Error();
        return raw as T;
      },
      fallback,
    ),
  optional: <T>(inner: EnvVar<T>): EnvVar<T | undefined> => ({ ...inner, optional: true }),
};

type Spec = Record<string, EnvVar<unknown>>;
type Parsed<S extends Spec> = { [K in keyof S]: S[K] extends EnvVar<infer T> ? T : never };

/**
 * Reads every variable of `spec` (keys are variable names, e.g. `QPQ_LISTEN`) from `source`.
 * @example const cfg = readEnv({ QPQ_LISTEN: env.listen('127.0.0.1:7000') });
 */
export function readEnv<S extends Spec>(spec: S, source: NodeJS.ProcessEnv = process.env): Parsed<S> {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(spec)) {
    const raw = source[name];
    if (raw === undefined || raw === '') {
      if (v.fallback === undefined && !v.optional) problems.push(`${name} is missing: set it to ${v.describe}`);
      out[name] = v.fallback;
      continue;
    }
    try {
      out[name] = v.parse(raw);
    } catch {
      problems.push(`${name}=${JSON.stringify(raw)} is not valid: expected ${v.describe}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as Parsed<S>;
}

export function parseDuration(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) throw new Error(`not a duration: ${raw}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms'];
  return Math.round(Number(m[1]) * unit);
}

export interface HostPort {
  host: string;
  port: number;
}
export function parseHostPort(raw: string): HostPort {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(raw.trim());
  const port = Number(m?.[2]);
  if (!m || !m[1] || port > 65535) throw new Error(`not host:port: ${raw}`);
  return { host: m[1], port };
}
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
