import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo } from 'node:net';

/**
 * The fixed ports of `npm run dev` (ports: 'fixed'), the laptop defaults of docs/architecture.md.
 * Extra gateways (gateway-1, …) take the next UDP port and HTTP ports from 9110 up.
 */
export const FIXED_PORTS = {
  /** Embedded Postgres; 5433 so it never collides with a system Postgres on 5432. */
  postgres: 5433,
  /** Next to NATS's standard 4222, which the Debian nats-server package's own service may hold. */
  nats: 4223,
  gatewayUdp: 7000,
  gatewayHttp: 9100,
  extraGatewayHttp: 9110,
  auth: { grpc: 7101, http: 9101 },
  keypackage: { grpc: 7102, http: 9102 },
  delivery: { grpc: 7103, http: 9103 },
  ktlog: { grpc: 7104, http: 9104 },
  blob: { grpc: 7105, http: 9105 },
} as const;

export const LOOPBACK = '127.0.0.1';

/** One port a network needs, named for the line that tells a person it is taken. */
export interface PortNeed {
  port: number;
  protocol: 'tcp' | 'udp';
  /** e.g. "auth gRPC" */
  purpose: string;
}

/** A fixed port someone else already holds. */
export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
  constructor(readonly need: PortNeed) {
    super(
      `port ${need.port}/${need.protocol} (${need.purpose}) is already in use — ` +
        `is another \`npm run dev\` running? Stop it or free the port.`,
    );
  }
}

/** Whether a TCP port on 127.0.0.1 can be bound right now. */
export function tcpPortFree(port: number, host = LOOPBACK): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Whether a UDP port on 127.0.0.1 can be bound right now. */
export function udpPortFree(port: number, host = LOOPBACK): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind({ port, address: host, exclusive: true }, () => socket.close(() => resolve(true)));
  });
}

/** Throws PortInUseError for the first needed port that is taken. */
export async function assertPortsFree(needs: PortNeed[]): Promise<void> {
  for (const need of needs) {
    const free = need.protocol === 'tcp' ? await tcpPortFree(need.port) : await udpPortFree(need.port);
    if (!free) throw new PortInUseError(need);
  }
}

/** A set of ports handed out once each, so two services of one network never get the same port. */
export class PortAllocator {
  private readonly taken = new Set<string>();

  /** A TCP port on 127.0.0.1 that is free now (the OS picks; a tiny race with other programs remains). */
  async tcp(): Promise<number> {
    for (;;) {
      const port = await new Promise<number>((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen({ port: 0, host: LOOPBACK, exclusive: true }, () => {
          const { port: p } = server.address() as AddressInfo;
          server.close(() => resolve(p));
        });
      });
      if (this.claim('tcp', port)) return port;
    }
  }

  /** A UDP port on 127.0.0.1 that is free now. */
  async udp(): Promise<number> {
    for (;;) {
      const port = await new Promise<number>((resolve, reject) => {
        const socket = createSocket('udp4');
        socket.once('error', reject);
        socket.bind({ port: 0, address: LOOPBACK, exclusive: true }, () => {
          const { port: p } = socket.address();
          socket.close(() => resolve(p));
        });
      });
      if (this.claim('udp', port)) return port;
    }
  }

  private claim(protocol: string, port: number): boolean {
    const key = `${protocol}/${port}`;
    if (this.taken.has(key)) return false;
    this.taken.add(key);
    return true;
  }
}

/** One free TCP port on 127.0.0.1. */
export function freeTcpPort(): Promise<number> {
  return new PortAllocator().tcp();
}
