// The two ways the end-to-end scenarios load the system. Open loop: messages are due at a fixed rate
// whatever happens, and each is timed from when it was due (a slow system cannot slow the load down
// and hide its latency). Closed loop: each sender keeps a fixed number of Enqueues unanswered, so the
// system runs as fast as it can (saturation).
import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchDevice } from './e2e-device.js';
import { benchPayload, type DeliveryLedger } from './e2e-ledger.js';

/** Ciphertext of a short text message, padded as clients pad: the server sees this many random bytes. */
export const PAYLOAD_MIN_BYTES = 300;
export const PAYLOAD_MAX_BYTES = 600;
const TICK_MS = 1;
const DRAIN_POLL_MS = 20;

/** A device sending, and to whom (one device for a direct message, a group's devices for fan-out). */
export interface Sender {
  device: BenchDevice;
  recipients: readonly string[];
  groupId?: Uint8Array;
}

const payloadSize = () => randomInt(PAYLOAD_MIN_BYTES, PAYLOAD_MAX_BYTES + 1);

function sendOne(ledger: DeliveryLedger, sender: Sender, dueAt: number): Promise<void> {
  const id = ledger.send(sender.recipients, dueAt);
  return sender.device
    .enqueue(sender.recipients, benchPayload(id, payloadSize()), sender.groupId)
    .then((ok) => (ok ? ledger.accepted(id.index) : ledger.failed(id.index)));
}

/**
 * Sends `rate` messages per second in all for `durationMs`, round-robin over `senders`; returns the
 * seconds the sending took (longer than planned when the loop itself fell behind).
 */
export async function openLoop(
  ledger: DeliveryLedger,
  senders: readonly Sender[],
  rate: number,
  durationMs: number,
  signal: AbortSignal,
): Promise<number> {
  const total = Math.round((rate * durationMs) / 1000);
  const interval = 1000 / rate;
  const start = performance.now();
  let k = 0;
  while (k < total) {
    signal.throwIfAborted();
    const now = performance.now();
    for (; k < total && start + k * interval <= now; k++) {
      void sendOne(ledger, senders[k % senders.length]!, start + k * interval);
    }
    await sleep(TICK_MS);
  }
  return (performance.now() - start) / 1000;
}

export interface ClosedLoopResult {
  /** Seconds of the measured window (from `settleMs` after the start to the end of sending). */
  seconds: number;
  /** Copies pushed to recipients within the window. */
  pushed: number;
  /** Messages accepted within the window. */
  accepted: number;
}

/**
 * Each sender keeps `window` Enqueues unanswered for `durationMs`; what happens in the last
 * `durationMs - settleMs` is measured (the first `settleMs`, while the pipelines fill, is not).
 */
export async function closedLoop(
  ledger: DeliveryLedger,
  senders: readonly Sender[],
  window: number,
  durationMs: number,
  settleMs: number,
  signal: AbortSignal,
): Promise<ClosedLoopResult> {
  const start = performance.now();
  const end = start + durationMs;
  let accepted = 0;
  const lane = async (sender: Sender) => {
    while (performance.now() < end && !signal.aborted) {
      const id = ledger.send(sender.recipients, performance.now());
      const ok = await sender.device.enqueue(sender.recipients, benchPayload(id, payloadSize()), sender.groupId);
      if (ok) {
        ledger.accepted(id.index);
        accepted++;
      } else {
        ledger.failed(id.index);
      }
    }
  };
  const lanes = Promise.all(senders.flatMap((s) => Array.from({ length: window }, () => lane(s))));
  await sleep(settleMs);
  const from = { at: performance.now(), pushed: ledger.pushedCount, accepted };
  await sleep(Math.max(0, end - performance.now()));
  const to = { at: performance.now(), pushed: ledger.pushedCount, accepted };
  await lanes;
  signal.throwIfAborted();
  return { seconds: (to.at - from.at) / 1000, pushed: to.pushed - from.pushed, accepted: to.accepted - from.accepted };
}

/**
 * Waits until every message of `ledger` was answered and every accepted copy pushed, or `timeoutMs`
 * passed (what is still missing then is looked for by Fetch, and otherwise lost). Returns the seconds waited.
 */
export async function drain(ledger: DeliveryLedger, timeoutMs: number, signal: AbortSignal): Promise<number> {
  const start = performance.now();
  while ((ledger.unanswered > 0 || ledger.awaited > 0) && performance.now() - start < timeoutMs) {
    signal.throwIfAborted();
    await sleep(DRAIN_POLL_MS);
  }
  return (performance.now() - start) / 1000;
}
