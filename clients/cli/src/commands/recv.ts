import type { GlobalOptions } from '../args.js';
import { printMessages, type Io } from '../output.js';
import { openClient, printWarnings } from './account.js';
import { quotesFor } from './conversation-cache.js';

/**
 * `qpq recv [--wait SECONDS]`: prints every message not shown before. When none is pending it waits
 * up to SECONDS for one (and whatever arrives with it); nothing arriving is not a failure.
 */
export async function recv(global: GlobalOptions, io: Io, waitSeconds: number): Promise<number> {
  const client = await openClient(global, io);
  printWarnings(client, io);
  try {
    let arrived: () => void = () => undefined;
    const arrival = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    client.on('message', () => arrived());
    await client.connect({ stayConnected: waitSeconds > 0 });
    let messages = await client.takeUnshown();
    if (messages.length === 0 && waitSeconds > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([arrival, new Promise<void>((r) => (timer = setTimeout(r, waitSeconds * 1000)))]);
      clearTimeout(timer);
      // Let the rest of a burst that arrived together be stored too.
      await client.receive();
      messages = await client.takeUnshown();
    }
    printMessages(io, global.json, messages, global.json ? undefined : await quotesFor(client, messages));
    return 0;
  } finally {
    await client.close();
  }
}
