import { createInterface } from 'node:readline';
import { GrpcCode, QpqClientError, type QpqClient } from '@qpq/sdk';
import type { GlobalOptions } from '../args.js';
import type { Io } from '../output.js';
import { openClient } from './account.js';
import { parseReplLine } from './repl-commands.js';
import { ReplScreen } from './repl-screen.js';
import { ReplSession } from './repl-session.js';

/** How long /quit waits for the outbox to empty. */
const QUIT_FLUSH_MS = 30_000;
/** How long /quit waits for what arrived to be shown. */
const QUIT_SETTLE_MS = 5_000;

/**
 * `qpq repl -u NAME -p PASS`: registers the account if needed, logs in, then reads lines — from a
 * terminal or a pipe — one at a time: each is finished (sent and accepted) before the next is read.
 * Incoming messages and events print as they arrive.
 */
export async function repl(global: GlobalOptions, io: Io, username: string, password: string): Promise<number> {
  const client = await openClient(global, io);
  const tty = Boolean(io.stdin.isTTY);
  const rl = createInterface({
    input: io.stdin,
    ...(tty ? { output: io.stdout, terminal: true } : { terminal: false }),
  });
  // Take lines from the start: piped input may all be there (and end) while we are still logging in,
  // and readline drops lines that nobody is listening for. The iterator buffers them.
  const lines = rl[Symbol.asyncIterator]();
  const screen = new ReplScreen(io, global.json, tty ? rl : undefined);

  try {
    const session = new ReplSession(client, screen, global.server);
    client.on('warning', (w) => screen.fail(w));
    client.on('session-expired', (e) => screen.fail(e));
    const account = await signIn(client, username, password);
    await client.connect({ stayConnected: true });
    screen.info(`logged in as ${account.address}; /switch @USER or #GROUP to start, /help for commands`, {
      address: account.address,
    });
    session.signedIn(account);
    session.showUnshown();

    rl.setPrompt('> ');
    if (tty) rl.prompt();
    rl.on('SIGINT', () => rl.close());
    for (;;) {
      const next = await lines.next();
      if (next.done) break;
      const parsed = parseReplLine(next.value as string);
      if (!parsed.ok) {
        screen.fail(parsed.error);
      } else if (parsed.command.name === 'quit') {
        break;
      } else {
        await session.run(parsed.command).catch((err: unknown) => screen.fail(err));
      }
      if (tty) rl.prompt();
    }
    rl.close();
    await session.settle(QUIT_SETTLE_MS);
    return await quit(client, screen);
  } finally {
    rl.close();
    await client.close();
  }
}

/** Logs in, registering the account first when it does not exist yet. */
async function signIn(client: QpqClient, username: string, password: string) {
  const existing = await client.account();
  if (existing) return client.login(username, password);
  try {
    return await client.register(username, password);
  } catch (err) {
    if (err instanceof QpqClientError && err.code === GrpcCode.ALREADY_EXISTS) return client.login(username, password);
    throw err;
  }
}

/** Waits until the outbox is empty (bounded), so nothing typed before /quit is left behind. */
async function quit(client: QpqClient, screen: ReplScreen): Promise<number> {
  const deadline = Date.now() + QUIT_FLUSH_MS;
  while ((await client.pendingOutbox()) > 0 && Date.now() < deadline) {
    try {
      await client.flushOutbox();
    } catch (err) {
      screen.fail(err);
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
  const left = await client.pendingOutbox();
  if (left > 0) {
    screen.fail(new QpqClientError(`${left} message(s) could not be sent yet; they go out with the next qpq command`));
    return 1;
  }
  return 0;
}
