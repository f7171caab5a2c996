// What the CLI needs to say things in words: a conversation's kind and name (to write "#team"), and the
// text of a message something refers to (to quote it). Both come from the local store, so they are cheap.
import type { ConversationSummary, QpqClient, ReceivedMessage } from '@qpq/sdk';
import type { Quote } from '../output.js';

type Reader = Pick<QpqClient, 'conversations' | 'history'>;

export class ConversationCache {
  private readonly byId = new Map<string, ConversationSummary>();

  constructor(private readonly client: Reader) {}

  /** Reads every conversation again (after a rename, a Welcome, a new DM); keeps those remembered. */
  async refresh(): Promise<void> {
    for (const c of await this.client.conversations()) this.byId.set(c.id, c);
  }

  /** What is known without reading the store again (the settings before an event changed them). */
  known(id: string): ConversationSummary | undefined {
    return this.byId.get(id);
  }

  /** The conversation, reading the store again when it is not known yet. */
  async find(id: string): Promise<ConversationSummary | undefined> {
    if (!this.byId.has(id)) await this.refresh();
    return this.byId.get(id);
  }

  remember(c: ConversationSummary): void {
    this.byId.set(c.id, c);
  }

  /** The stored message `messageId` of a conversation, as a quote. */
  async quote(conversation: string, messageId: string): Promise<Quote | undefined> {
    return (await quotesIn(this.client, conversation, [messageId])).get(messageId);
  }
}

/** What each reply among `messages` quotes, by replied-to id (only what this device holds). */
export async function quotesFor(client: Reader, messages: readonly ReceivedMessage[]): Promise<Map<string, Quote>> {
  const wanted = new Map<string, string[]>();
  for (const m of messages) {
    if (m.replyTo !== undefined) wanted.set(m.conversation, [...(wanted.get(m.conversation) ?? []), m.replyTo]);
  }
  const quotes = new Map<string, Quote>();
  for (const [conversation, ids] of wanted) {
    for (const [id, q] of await quotesIn(client, conversation, ids)) quotes.set(id, q);
  }
  return quotes;
}

async function quotesIn(client: Reader, conversation: string, ids: readonly string[]): Promise<Map<string, Quote>> {
  const quotes = new Map<string, Quote>();
  for (const h of await client.history(conversation)) {
    if (!ids.includes(h.id)) continue;
    // A file message's text is its name; the quote says it is a file.
    const text = h.file !== undefined ? `[file] ${h.file.name}` : h.text;
    quotes.set(h.id, { from: h.from, text, ...(h.deleted ? { deleted: true } : {}) });
  }
  return quotes;
}
