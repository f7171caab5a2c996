import type { Command, GlobalOptions } from '../args.js';
import { json, line, type Io } from '../output.js';
import { openClient, printWarnings } from './account.js';

/**
 * `qpq kt lookup USER`: the user's identity keys in the key-transparency log, every entry proved
 * (one JSON line per entry with --json). `qpq kt audit`: the whole log recomputed against its signed
 * head; exits 0 only when it checks out.
 */
export async function kt(global: GlobalOptions, io: Io, command: Extract<Command, { name: 'kt' }>): Promise<number> {
  const client = await openClient(global, io);
  printWarnings(client, io);
  try {
    if (command.action === 'lookup') {
      const entries = await client.keyHistory(command.user);
      if (entries.length === 0 && !global.json) line(io.stdout, `no entries for ${command.user} in the log`);
      for (const e of entries) {
        if (global.json) {
          json(io.stdout, {
            index: e.index,
            op: e.op,
            address: e.address,
            device: e.deviceId,
            key: e.key,
            time: new Date(e.timestampMs).toISOString(),
          });
        } else {
          const when = new Date(e.timestampMs).toISOString().replace('T', ' ').slice(0, 19);
          line(io.stdout, `#${e.index}  ${when}  ${e.op.padEnd(6)} ${e.address}/${e.deviceId}  key ${e.key}`);
        }
      }
      return 0;
    }
    const audit = await client.auditKeyLog();
    if (global.json) json(io.stdout, audit);
    else if (audit.ok) {
      line(io.stdout, `log ok: ${audit.size} entries hash to the signed root ${audit.root}`);
    } else {
      line(io.stdout, `log does NOT check out (${audit.size} entries, signed root ${audit.root}):`);
      for (const p of audit.problems) line(io.stdout, `  ${p}`);
    }
    return audit.ok ? 0 : 1;
  } finally {
    await client.close();
  }
}
