import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatHostPort, type HostPort } from './config.js';
import type { Telemetry } from './telemetry.js';

export interface ProbeChecks {
  /** Whether the process can serve: every dependency reachable and not draining. */
  ready(): Promise<boolean> | boolean;
}

/** The HTTP side of every service: /healthz (alive), /readyz (can serve), /metrics (Prometheus). */
export async function startProbeServer(
  listen: HostPort,
  checks: ProbeChecks,
  telemetry: Telemetry,
): Promise<{ server: Server; address: string }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      Promise.resolve(checks.ready()).then(
        (ok) => res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n'),
        () => res.writeHead(503, { 'content-type': 'text/plain' }).end('not ready\n'),
      );
    } else if (path === '/metrics') {
      telemetry.serveMetrics(req, res);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { server, address: formatHostPort({ host: listen.host, port }) };
}
