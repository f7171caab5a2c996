import { QpqClient, type AccountInfo } from '@qpq/sdk';
import type { GlobalOptions } from '../args.js';
import { failureLine, json, line, type Io } from '../output.js';

export async function openClient(global: GlobalOptions, io: Io): Promise<QpqClient> {
  return QpqClient.open({
    dataDir: global.dataDir,
    server: global.server,
    ...(global.ca !== undefined ? { ca: global.ca } : {}),
    env: io.env,
  });
}

/**
 * Prints what the client reports on the side while a one-shot command runs (a refused Welcome, a key
 * the key-transparency log does not vouch for) as `qpq: warning: …` lines on stderr.
 */
export function printWarnings(client: QpqClient, io: Io): void {
  client.on('warning', (w) => line(io.stderr, `qpq: warning: ${failureLine(w)}`));
}

function report(io: Io, global: GlobalOptions, verb: string, a: AccountInfo): void {
  if (global.json)
    json(io.stdout, {
      ok: true,
      username: a.username,
      address: a.address,
      accountId: a.accountId,
      deviceId: a.deviceId,
    });
  else line(io.stdout, `${verb} ${a.address} (device ${a.deviceId})`);
}

/** `qpq register -u NAME -p PASS`: account, this device, login, KeyPackages. */
export async function register(global: GlobalOptions, io: Io, username: string, password: string): Promise<number> {
  const client = await openClient(global, io);
  try {
    report(io, global, 'registered', await client.register(username, password));
    return 0;
  } finally {
    await client.close();
  }
}

/** `qpq login -u NAME -p PASS`. */
export async function login(global: GlobalOptions, io: Io, username: string, password: string): Promise<number> {
  const client = await openClient(global, io);
  try {
    report(io, global, 'logged in as', await client.login(username, password));
    return 0;
  } finally {
    await client.close();
  }
}
