// What the parts of the client share: the store, the gateway session, the outbox, this device, and
// one queue that serialises everything touching MLS group state (receiving, sending, commits).
import type { DeviceKeys } from '@qpq/crypto';
import type { GatewaySession } from './gateway-session.js';
import type { KnownAccount } from './member-check.js';
import type { Outbox } from './outbox.js';
import type { LocalStore } from './store.js';
import type { AccountRecord } from './store-document.js';
import type { ConversationEvent, ReceivedMessage } from './views.js';

export interface ClientCore {
  readonly store: LocalStore;
  readonly session: GatewaySession;
  readonly outbox: Outbox;
  /** Proves the identity keys auth hands out against the key-transparency log (key-transparency.ts). */
  readonly kt: { vouch(account: KnownAccount): Promise<void> };
  device(): Promise<{ keys: DeviceKeys; identity: string }>;
  /** The logged-in account; throws NotLoggedInError. */
  me(): Promise<AccountRecord>;
  /**
   * Runs `task` after every task queued before it. Group state is read, changed and written by one task
   * at a time, so a Commit is never made from a state that a message being processed is changing.
   */
  exclusive<T>(task: () => Promise<T>): Promise<T>;
  announce(messages: readonly ReceivedMessage[], events: readonly ConversationEvent[]): void;
  warn(err: unknown): void;
}

/** A FIFO of async tasks, one running at a time. */
export class TaskQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

export const b64 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
export const unb64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));
export const hex = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

export function domainOf(address: string): string {
  return address.slice(address.indexOf('@') + 1);
}

export function usernameOf(address: string): string {
  return address.slice(0, address.indexOf('@'));
}
