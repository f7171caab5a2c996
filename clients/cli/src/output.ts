import type { ReceivedMessage } from '@qpq/sdk';

/** Where a command writes; main() passes the process's streams, tests pass their own. */
export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

export function line(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function json(stream: NodeJS.WritableStream, value: unknown): void {
  line(stream, JSON.stringify(value));
}

/** One message as a JSON object: at least from, text and conversation (what scripts read). */
export function messageJson(m: ReceivedMessage): Record<string, unknown> {
  return {
    id: m.id,
    from: m.from,
    text: m.text,
    conversation: m.conversation,
    sentAt: m.sentAt.toISOString(),
    ...(m.seq !== undefined ? { seq: m.seq } : {}),
  };
}

/** One message for a person: "[12:03] alice@example.org: hi". Control characters are shown escaped. */
export function messageText(m: ReceivedMessage): string {
  const time = m.sentAt.toTimeString().slice(0, 5);
  return `[${time}] ${m.from}: ${printable(m.text)}`;
}

/** Keeps a peer's text from moving the cursor or clearing the screen. */
export function printable(text: string): string {
  return text.replace(
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

export function printMessages(io: Io, asJson: boolean, messages: ReceivedMessage[]): void {
  for (const m of messages) {
    if (asJson) json(io.stdout, messageJson(m));
    else line(io.stdout, messageText(m));
  }
}
