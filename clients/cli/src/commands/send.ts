import type { GlobalOptions } from '../args.js';
import { json, line, type Io } from '../output.js';
import { openClient, printWarnings } from './account.js';

/** `qpq send USER TEXT`: returns once the delivery service has accepted the message. */
export async function send(global: GlobalOptions, io: Io, to: string, text: string): Promise<number> {
  const client = await openClient(global, io);
  printWarnings(client, io);
  try {
    const sent = await client.sendText(to, text);
    if (global.json) json(io.stdout, { ok: true, id: sent.id, to: sent.to, conversation: sent.conversation });
    else line(io.stdout, `sent to ${sent.to}`);
    return 0;
  } finally {
    await client.close();
  }
}
