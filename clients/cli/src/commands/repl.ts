import { createInterface } from 'node:readline';
import { GrpcCode, QpqClientError, type QpqClient, type ReceivedMessage } from '@qpq/sdk';
import type { GlobalOptions } from '../args.js';
import { json, line, messageJson, messageText, type Io } from '../output.js';
import { openClient } from './account.js';

const HELP = `commands:
  /dm USER     talk to USER (plain lines are then sent to them)
  /help        this list
  /quit        leave once every sent message has reached the server (also Ctrl-D)`;

/** How long /quit waits for the outbox to empty. */
const QUIT_FLUSH_MS = 30_000;

/**
 * `qpq repl -u NAME -p PASS`: registers the account if needed, logs in, then reads lines — from a
 * terminal or a pipe — one at a time: each is finished (sent and accepted) before the next is read.
 * Incoming messages print as they arrive.
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
  const say = (text: string, data?: Record<string, unknown>) => {
    if (global.json) json(io.stdout, { type: 'info', text, ...data });
    else print(`* ${text}`);
  };
  const complain = (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    if (global.json) json(io.stdout, { type: 'error', error: message });
    else print(`! ${message}`, io.stderr);
  };
  // Incoming text interrupts the prompt line cleanly on a terminal.
  const print = (text: string, stream: NodeJS.WritableStream = io.stdout) => {
    if (tty) {
      (io.stdout as NodeJS.WriteStream).write('\r\x1b[K');
      line(stream, text);
      rl.prompt(true);
    } else {
      line(stream, text);
    }
  };
  const show = (messages: ReceivedMessage[]) => {
    for (const m of messages) {
      if (global.json) json(io.stdout, { type: 'message', ...messageJson(m) });
      else print(messageText(m));
    }
  };

  try {
    const account = await signIn(client, username, password);
    client.on('message', () => {
      void client.takeUnshown().then(show, complain);
    });
    client.on('warning', (w) => complain(w));
    client.on('session-expired', (e) => complain(e));
    await client.connect({ stayConnected: true });
    say(`logged in as ${account.address}; /dm USER to start, /help for commands`, { address: account.address });
    show(await client.takeUnshown());

    let peer: string | undefined;
    rl.setPrompt('> ');
    if (tty) rl.prompt();
    rl.on('SIGINT', () => rl.close());
    for (;;) {
      const next = await lines.next();
      if (next.done) break;
      const raw = next.value as string;
      const text = raw.trim();
      try {
        if (text === '') {
          // nothing
        } else if (text === '/quit' || text === '/exit') {
          break;
        } else if (text === '/help') {
          if (global.json) json(io.stdout, { type: 'help', text: HELP });
          else print(HELP);
        } else if (text.startsWith('/dm')) {
          const name = text.slice(3).trim();
          if (!name || /\s/.test(name)) throw new QpqClientError('usage: /dm USER');
          const found = await client.lookup(name);
          peer = found.username;
          say(`talking to ${found.address}`, { peer: found.address });
        } else if (text.startsWith('/')) {
          throw new QpqClientError(`unknown command ${text.split(/\s/)[0]}: /help lists them`);
        } else if (peer === undefined) {
          throw new QpqClientError('no conversation yet: /dm USER first');
        } else {
          const sent = await client.sendText(peer, raw);
          if (global.json) json(io.stdout, { type: 'sent', id: sent.id, to: sent.to, conversation: sent.conversation });
        }
      } catch (err) {
        complain(err);
      }
      if (tty) rl.prompt();
    }
    rl.close();
    return await quit(client, complain);
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
async function quit(client: QpqClient, complain: (err: unknown) => void): Promise<number> {
  const deadline = Date.now() + QUIT_FLUSH_MS;
  while ((await client.pendingOutbox()) > 0 && Date.now() < deadline) {
    try {
      await client.flushOutbox();
    } catch (err) {
      complain(err);
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
  const left = await client.pendingOutbox();
  if (left > 0) {
    complain(new QpqClientError(`${left} message(s) could not be sent yet; they go out with the next qpq command`));
    return 1;
  }
  return 0;
}
