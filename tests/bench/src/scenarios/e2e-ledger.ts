// The bookkeeping of the end-to-end scenarios, kept apart from any network so it can be tested: the
// ready-made payload that carries a message's id (the server only ever sees it as ciphertext), and a
// ledger of every message sent, to whom, and what each recipient got, from which come the latencies
// and the lost, duplicated and misdelivered counts.
import { randomFillSync } from 'node:crypto';

/**
 * Opens every bench payload. Read as the 4-byte length prefix of a padded E2EPayload it is far
 * larger than the message, so the server treats the payload as opaque (never as MLS framing to read).
 */
const MAGIC = 0x71_70_71_42; // "qpqB"
/** Magic, phase, index: 12 bytes; the rest of a payload is random. */
export const PAYLOAD_HEADER_BYTES = 12;

/** Which message a payload is: the ledger (phase) it was sent under and its index in it. */
export interface PayloadId {
  phase: number;
  index: number;
}

/** A payload of `size` bytes (at least the header) that names message `index` of `phase`; random otherwise. */
export function benchPayload(id: PayloadId, size: number): Uint8Array {
  if (size < PAYLOAD_HEADER_BYTES) throw new Error(`a payload needs at least ${PAYLOAD_HEADER_BYTES} bytes`);
  const bytes = new Uint8Array(size);
  randomFillSync(bytes, PAYLOAD_HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC);
  view.setUint32(4, id.phase);
  view.setUint32(8, id.index);
  return bytes;
}

/** The id a payload carries, or undefined when it is not a bench payload. */
export function payloadId(bytes: Uint8Array): PayloadId | undefined {
  if (bytes.length < PAYLOAD_HEADER_BYTES) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== MAGIC) return undefined;
  return { phase: view.getUint32(4), index: view.getUint32(8) };
}

interface Sent {
  /** When the message was due to be sent (ms, performance.now()): latency counts from here. */
  at: number;
  recipients: readonly string[];
  /** Recipient device → when its copy arrived by push (NaN: recovered by a Fetch, untimed). */
  got: Map<string, number>;
  outcome: 'pending' | 'accepted' | 'failed';
}

export interface LedgerSummary {
  /** Messages sent (Enqueue requests made). */
  sent: number;
  /** Messages the server accepted (Enqueue answered OK). */
  accepted: number;
  /** Messages whose Enqueue failed: the sender knows, so they are not counted lost. */
  failed: number;
  /** Copies that arrived by push, each at most once per recipient. */
  pushed: number;
  /** Copies that never came by push but were found by a Fetch after the run. */
  recovered: number;
  /** Copies of accepted messages that no recipient device ever got, by push or by Fetch. */
  lost: number;
  /** Pushes of a copy a recipient had already got. */
  duplicated: number;
  /** Pushes to a device the message was not for, or of a message never sent. */
  misdelivered: number;
  /** Send → push at the recipient, ms, one per copy pushed. */
  latencies: number[];
  /** Send → push at the last recipient, ms, one per message all of whose recipients got it by push. */
  lastLatencies: number[];
}

/**
 * Every message of one phase of a run: sent at a due time to some devices, then answered by the
 * server, then pushed to each recipient (perhaps more than once, perhaps never).
 */
export class DeliveryLedger {
  private readonly messages: Sent[] = [];
  private duplicated = 0;
  private misdelivered = 0;
  private pushedCopies = 0;
  /** Copies owed to recipients by accepted messages and not yet got. */
  private outstanding = 0;

  constructor(readonly phase: number) {}

  /** Records a message due at `at` for `recipients`; returns its id (to put into its payload). */
  send(recipients: readonly string[], at: number): PayloadId {
    if (recipients.length === 0) throw new Error('a message needs at least one recipient');
    const index = this.messages.length;
    this.messages.push({ at, recipients, got: new Map(), outcome: 'pending' });
    return { phase: this.phase, index };
  }

  /** The server accepted message `index`. */
  accepted(index: number): void {
    const m = this.message(index);
    if (m.outcome !== 'pending') return;
    m.outcome = 'accepted';
    this.outstanding += m.recipients.filter((r) => !m.got.has(r)).length;
  }

  /** The server refused message `index`, or the sender gave up on it. */
  failed(index: number): void {
    const m = this.message(index);
    if (m.outcome === 'pending') m.outcome = 'failed';
  }

  /** A push of message `index` reached `device` at `at`. */
  pushed(index: number, device: string, at: number): void {
    const m = this.messages[index];
    if (m === undefined || !m.recipients.includes(device)) {
      this.misdelivered++;
      return;
    }
    if (m.got.has(device)) {
      this.duplicated++;
      return;
    }
    m.got.set(device, at);
    this.pushedCopies++;
    if (m.outcome === 'accepted') this.outstanding--;
  }

  /** A Fetch by `device` found message `index`: a copy no push brought counts as recovered, not lost. */
  fetched(index: number, device: string): void {
    const m = this.messages[index];
    if (m === undefined || !m.recipients.includes(device)) {
      this.misdelivered++;
      return;
    }
    if (m.got.has(device)) return; // pushed, not acknowledged yet: still in the mailbox
    m.got.set(device, NaN);
    if (m.outcome === 'accepted') this.outstanding--;
  }

  /** Copies owed by accepted messages that have not arrived (yet). */
  get awaited(): number {
    return this.outstanding;
  }

  /** Messages sent whose Enqueue has not been answered. */
  get unanswered(): number {
    return this.messages.filter((m) => m.outcome === 'pending').length;
  }

  /** Copies pushed so far. */
  get pushedCount(): number {
    return this.pushedCopies;
  }

  private message(index: number): Sent {
    const m = this.messages[index];
    if (m === undefined) throw new Error(`no message ${index} was sent in phase ${this.phase}`);
    return m;
  }

  summary(): LedgerSummary {
    const s: LedgerSummary = {
      sent: this.messages.length,
      accepted: 0,
      failed: 0,
      pushed: this.pushedCopies,
      recovered: 0,
      lost: 0,
      duplicated: this.duplicated,
      misdelivered: this.misdelivered,
      latencies: [],
      lastLatencies: [],
    };
    for (const m of this.messages) {
      if (m.outcome === 'accepted') s.accepted++;
      if (m.outcome === 'failed') s.failed++;
      let last = -Infinity;
      for (const r of m.recipients) {
        const at = m.got.get(r);
        if (at === undefined) {
          if (m.outcome === 'accepted') s.lost++;
          last = NaN;
        } else if (Number.isNaN(at)) {
          s.recovered++;
          last = NaN;
        } else {
          s.latencies.push(at - m.at);
          last = Math.max(last, at);
        }
      }
      if (!Number.isNaN(last)) s.lastLatencies.push(last - m.at);
    }
    return s;
  }
}
