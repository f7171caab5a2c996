/**
 * The value of the first series of `name` carrying `labels` (among others) on the /metrics served at
 * `httpAddress` (host:port), or undefined when there is no such series.
 * @example await metricValue(service.httpAddress, 'qpq_auth_logins_total', { outcome: 'ok' })
 */
export async function metricValue(
  httpAddress: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const res = await fetch(`http://${httpAddress}/metrics`, { signal: AbortSignal.timeout(5_000) });
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = (await res.text())
    .split('\n')
    .find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && wanted.every((w) => l.includes(w)));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}
