import { groupInfo } from '@qpq/crypto';
import { pruneGone } from './conversations.js';
import { DeliveryProofError, GrpcCode, QpqClientError, isRateLimit, isRetryable, isRpcFailure } from './errors.js';
import type { LocalStore } from './store.js';
import type { OutboxEntry, StoreDocument } from './store-document.js';

/** What the delivery service answered for one entry (after its proof was checked). */
export interface EnqueueOutcome {
  duplicate: boolean;
  /** Seq per recipient device. */
  recipients: { deviceId: string; seq: bigint }[];
  acceptedAtMs: number;
}

/** Sends one entry to the delivery service; throws RpcError/QpqClientError. */
export type EnqueueFn = (entry: OutboxEntry) => Promise<EnqueueOutcome>;

export interface RetryPolicy {
  /** Tries per entry, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  sleep?: (ms: number) => Promise<void>;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 200, maxDelayMs: 3_000 };

/**
 * Sends one entry, retrying with the same message_id (so the server stores it once) while the
 * failure is one a retry can fix: UNAVAILABLE, DEADLINE_EXCEEDED, a lost connection or a rate limit.
 */
export async function enqueueWithRetry(
  entry: OutboxEntry,
  enqueue: EnqueueFn,
  policy: RetryPolicy = DEFAULT_RETRY,
): Promise<EnqueueOutcome> {
  const sleep = policy.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let attempt = 1; ; attempt++) {
    try {
      return await enqueue(entry);
    } catch (err) {
      if (!(isRetryable(err) || isRateLimit(err)) || attempt >= policy.attempts) throw err;
      await sleep(Math.min(policy.baseDelayMs * 2 ** (attempt - 1), policy.maxDelayMs));
    }
  }
}

/** Queues entries; they are written before anything goes on the wire. Pure on the document. */
export function addToOutbox(doc: StoreDocument, ...entries: OutboxEntry[]): void {
  for (const entry of entries) {
    if (doc.outbox.some((e) => e.messageId === entry.messageId)) continue;
    doc.outbox.push(entry);
  }
}

export interface FlushResult {
  sent: { entry: OutboxEntry; outcome: EnqueueOutcome }[];
  /** Commits that lost their epoch to another member's Commit: dropped, to be made again on the new epoch. */
  conflicts: OutboxEntry[];
}

/** The delivery service accepted another Commit for this epoch first (delivery.proto: commit ordering). */
export function isCommitConflict(err: unknown): boolean {
  return isRpcFailure(err) && err.code === GrpcCode.ABORTED;
}

/** An entry the server refused for good: it was dropped from the outbox. */
export class OutboxRejectedError extends QpqClientError {
  override readonly name = 'OutboxRejectedError';
}

/**
 * The outbox of one data dir: entries are sent oldest first, one at a time, so a Welcome always
 * reaches a device before the messages of its group. An entry leaves the outbox only after the
 * delivery service accepted it; a crash in between means the next flush sends the same message_id
 * again, which the server answers as a duplicate. Several processes may flush the same outbox: the
 * server deduplicates, and each process keeps the order.
 */
export class Outbox {
  private flushing: Promise<FlushResult> | undefined;
  private again = false;

  constructor(
    private readonly store: Pick<LocalStore, 'read' | 'update'>,
    private readonly enqueue: EnqueueFn,
    private readonly policy: RetryPolicy = DEFAULT_RETRY,
    /** Told of each entry the delivery service accepted, after the store records it (whichever flush sent it). */
    private readonly onAccepted: (entry: OutboxEntry) => void = () => undefined,
  ) {}

  /** Sends everything pending. Concurrent calls share one run (and a call during a run causes another pass). */
  flush(): Promise<FlushResult> {
    if (this.flushing) {
      this.again = true;
      return this.flushing;
    }
    this.flushing = this.run().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  async pending(): Promise<number> {
    return (await this.store.read()).outbox.length;
  }

  private async run(): Promise<FlushResult> {
    const result: FlushResult = { sent: [], conflicts: [] };
    let refused: QpqClientError | undefined;
    do {
      this.again = false;
      for (;;) {
        const entry = (await this.store.read()).outbox[0];
        if (!entry) break;
        let outcome: EnqueueOutcome;
        try {
          outcome = await enqueueWithRetry(entry, this.enqueue, this.policy);
        } catch (err) {
          if (entry.kind === 'commit' && isCommitConflict(err)) {
            await this.store.update((doc) => {
              doc.outbox = doc.outbox.filter((e) => e.messageId !== entry.messageId);
            });
            result.conflicts.push(entry);
            continue;
          }
          if (!isRefusal(err)) throw err; // stays queued for the next flush
          await this.store.update((doc) => dropRefused(doc, entry));
          refused ??= new OutboxRejectedError(
            err instanceof Error ? err.message : String(err),
            (err as { code?: number }).code,
            { cause: err },
          );
          continue;
        }
        await this.store.update((doc) => markSent(doc, entry));
        result.sent.push({ entry, outcome });
        this.onAccepted(entry);
      }
    } while (this.again);
    if (refused) throw refused;
    return result;
  }
}

/**
 * Whether the server refused this message for good (sending it again cannot help: too large, too many
 * recipients, not allowed, not supported), as opposed to a failure of the moment — unreachable, session
 * expired, rate limited, a server bug — after which the entry stays queued. A final refusal is dropped,
 * so it never holds up the entries behind it. A proof that does not verify is final too: the server
 * already answered.
 */
export function isRefusal(err: unknown): boolean {
  if (err instanceof DeliveryProofError) return true;
  if (!isRpcFailure(err) || isRetryable(err) || isRateLimit(err)) return false;
  const final: number[] = [
    GrpcCode.INVALID_ARGUMENT,
    GrpcCode.NOT_FOUND,
    GrpcCode.ALREADY_EXISTS,
    GrpcCode.FAILED_PRECONDITION,
    GrpcCode.OUT_OF_RANGE,
    GrpcCode.RESOURCE_EXHAUSTED,
    GrpcCode.PERMISSION_DENIED,
    GrpcCode.UNIMPLEMENTED,
  ];
  return final.includes(err.code);
}

function markSent(doc: StoreDocument, entry: OutboxEntry): void {
  doc.outbox = doc.outbox.filter((e) => e.messageId !== entry.messageId);
  if (entry.kind === 'commit') {
    applyAcceptedCommit(doc, entry);
    return;
  }
  if (entry.kind !== 'application') return;
  const history = doc.conversations[entry.conversation]?.history;
  const sent = history?.find((h) => h.id === entry.messageId && h.direction === 'out');
  if (sent) sent.delivered = true;
}

/**
 * The delivery service made this Commit its group's next epoch: the group moves to the state it leads
 * to. Unless the group already moved past the epoch it was made in (then a Commit processed since
 * decided, and this state would fork the group).
 */
function applyAcceptedCommit(doc: StoreDocument, entry: OutboxEntry): void {
  const commit = entry.commit;
  const group = doc.groups[entry.groupId];
  if (!commit || commit.applied || !group) return;
  if (groupInfo(Buffer.from(group.state, 'base64')).epoch !== BigInt(commit.epoch)) return;
  group.state = commit.newState;
  pruneGone(doc, entry.groupId);
}

/**
 * A refused Welcome leaves a group the peer can never read: forget that group (and what was queued
 * for it), so the next message sets up the conversation afresh.
 */
function dropRefused(doc: StoreDocument, entry: OutboxEntry): void {
  doc.outbox = doc.outbox.filter((e) => e.messageId !== entry.messageId);
  // A new group's first Commit (applied at once) refused is like a refused Welcome.
  if (entry.kind !== 'welcome' && !(entry.kind === 'commit' && entry.commit?.applied)) return;
  doc.outbox = doc.outbox.filter((e) => e.groupId !== entry.groupId);
  delete doc.groups[entry.groupId];
  const conv = doc.conversations[entry.conversation];
  if (!conv) return;
  conv.groupIds = conv.groupIds.filter((g) => g !== entry.groupId);
  if (conv.groupIds.length === 0) {
    if (conv.history.length === 0) delete doc.conversations[entry.conversation];
    else conv.sendGroupId = '';
  } else if (conv.sendGroupId === entry.groupId) {
    conv.sendGroupId = [...conv.groupIds].sort()[0]!;
  }
}
