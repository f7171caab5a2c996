import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { benchPayload, DeliveryLedger, PAYLOAD_HEADER_BYTES, payloadId } from './e2e-ledger.js';

describe('bench payloads', () => {
  it('carry the id they were made with, at any size, and random bytes after it', () => {
    const a = benchPayload({ phase: 3, index: 123_456 }, 480);
    const b = benchPayload({ phase: 3, index: 123_456 }, 480);
    assert.equal(a.length, 480);
    assert.deepEqual(payloadId(a), { phase: 3, index: 123_456 });
    assert.deepEqual(payloadId(benchPayload({ phase: 0, index: 0xffff_ffff }, PAYLOAD_HEADER_BYTES)), {
      phase: 0,
      index: 0xffff_ffff,
    });
    assert.notDeepEqual(a.subarray(PAYLOAD_HEADER_BYTES), b.subarray(PAYLOAD_HEADER_BYTES));
  });

  it('are read from a view into a larger buffer (as a decoded push hands them over)', () => {
    const payload = benchPayload({ phase: 1, index: 7 }, 300);
    const outer = new Uint8Array(1000);
    outer.set(payload, 100);
    assert.deepEqual(payloadId(outer.subarray(100, 400)), { phase: 1, index: 7 });
  });

  it('are told apart from other bytes, and refuse a size without room for the id', () => {
    assert.equal(payloadId(new Uint8Array(300)), undefined);
    assert.equal(payloadId(new Uint8Array(4)), undefined);
    assert.throws(() => benchPayload({ phase: 0, index: 0 }, PAYLOAD_HEADER_BYTES - 1), /at least/);
  });
});

describe('DeliveryLedger', () => {
  it('times each copy from when it was due, and a message to its last recipient', () => {
    const ledger = new DeliveryLedger(0);
    const id = ledger.send(['a', 'b'], 1000);
    ledger.accepted(id.index);
    ledger.pushed(id.index, 'a', 1010);
    assert.equal(ledger.awaited, 1);
    ledger.pushed(id.index, 'b', 1050);
    assert.equal(ledger.awaited, 0);
    const s = ledger.summary();
    assert.deepEqual(s.latencies, [10, 50]);
    assert.deepEqual(s.lastLatencies, [50]);
    assert.equal(s.lost, 0);
    assert.equal(s.pushed, 2);
  });

  it('counts an accepted copy never pushed nor fetched as lost, and one found by Fetch as recovered', () => {
    const ledger = new DeliveryLedger(0);
    const lost = ledger.send(['a', 'b'], 0);
    const recovered = ledger.send(['a'], 0);
    ledger.accepted(lost.index);
    ledger.accepted(recovered.index);
    ledger.pushed(lost.index, 'a', 5);
    ledger.fetched(recovered.index, 'a');
    // Pushed and not acknowledged yet, so the Fetch sees it again: not a duplicate.
    ledger.fetched(lost.index, 'a');
    const s = ledger.summary();
    assert.equal(s.lost, 1);
    assert.equal(s.recovered, 1);
    assert.equal(s.duplicated, 0);
    // Neither message reached all its recipients by push: no time to the last one.
    assert.deepEqual(s.lastLatencies, []);
    assert.deepEqual(s.latencies, [5]);
  });

  it('does not count a refused message as lost, even though nobody gets it', () => {
    const ledger = new DeliveryLedger(0);
    const id = ledger.send(['a'], 0);
    assert.equal(ledger.unanswered, 1);
    ledger.failed(id.index);
    assert.equal(ledger.unanswered, 0);
    const s = ledger.summary();
    assert.equal(s.failed, 1);
    assert.equal(s.lost, 0);
    assert.equal(ledger.awaited, 0);
  });

  it('counts a second push of a copy as duplicated, and pushes to the wrong device or of no message as misdelivered', () => {
    const ledger = new DeliveryLedger(0);
    const id = ledger.send(['a'], 0);
    ledger.accepted(id.index);
    ledger.pushed(id.index, 'a', 1);
    ledger.pushed(id.index, 'a', 2);
    ledger.pushed(id.index, 'b', 3);
    ledger.pushed(99, 'a', 4);
    const s = ledger.summary();
    assert.equal(s.duplicated, 1);
    assert.equal(s.misdelivered, 2);
    assert.deepEqual(s.latencies, [1]);
  });

  it('keeps a push that came before the Enqueue answer (the push goes out right after commit)', () => {
    const ledger = new DeliveryLedger(0);
    const id = ledger.send(['a'], 0);
    ledger.pushed(id.index, 'a', 3);
    ledger.accepted(id.index);
    assert.equal(ledger.awaited, 0);
    assert.equal(ledger.summary().lost, 0);
  });
});
