import { basename } from 'node:path';
import type { GlobalOptions } from '../args.js';
import { fileJson, json, line, sentFileText, type Io } from '../output.js';
import { openClient, printWarnings } from './account.js';
import { transferProgress, withProgress } from './transfer-progress.js';

/**
 * `qpq send-file USER PATH`: encrypts and uploads the file, then sends its reference to USER; returns
 * once the delivery service has accepted the message. A file over the limit is refused before anything
 * is sent; a cut-off upload continues where it stopped the next time the same file is sent.
 */
export async function sendFile(global: GlobalOptions, io: Io, to: string, path: string): Promise<number> {
  const client = await openClient(global, io);
  printWarnings(client, io);
  try {
    const progress = transferProgress(global, io, () => `upload ${basename(path)}`);
    const sent = await withProgress(progress, () =>
      client.sendFile(to, path, progress.listener ? { onProgress: progress.listener } : {}),
    );
    if (global.json) {
      json(io.stdout, {
        ok: true,
        id: sent.id,
        to: sent.to,
        conversation: sent.conversation,
        file: fileJson(sent.file),
      });
    } else {
      line(io.stdout, sentFileText(sent.file, sent.to));
    }
    return 0;
  } finally {
    await client.close();
  }
}
