/**
 * The push-latency clock reads accepted_at_ms without decoding the envelope: it must give the
 * generated decoder's answer for every push, the ones delivery sends and malformed ones alike.
 */
import { Push, type Envelope } from '@qpq/proto';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodedAcceptedAtMs, envelopeAcceptedAtMs } from './push-acceptance.js';

const NOW = 1_795_000_000_123;

function envelope(fields: Partial<Envelope>): Envelope {
  return {
    seq: 41n,
    messageId: '0193a0c4-6d1e-7cc2-9d55-6a4a2f1f0e11',
    senderUser: 'alice',
    senderDeviceId: 'd-1',
    payload: new Uint8Array(480).fill(7),
    acceptedAtMs: BigInt(NOW),
    groupId: new Uint8Array(0),
    ...fields,
  };
}

const envelopePush = (fields: Partial<Envelope> = {}) =>
  Push.encode({ kind: { $case: 'envelope', value: envelope(fields) } }).finish();

const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
};

describe('envelopeAcceptedAtMs', () => {
  test('reads the acceptance time of an envelope push as delivery encodes it', () => {
    assert.equal(envelopeAcceptedAtMs(envelopePush()), NOW);
    assert.equal(envelopeAcceptedAtMs(envelopePush({ groupId: new Uint8Array(32).fill(1), seq: 2n ** 40n })), NOW);
    // A payload large enough that lengths take several varint bytes.
    assert.equal(envelopeAcceptedAtMs(envelopePush({ payload: new Uint8Array(70_000) })), NOW);
  });

  test('no time for an envelope without one, with a negative one, or for other pushes', () => {
    assert.equal(envelopeAcceptedAtMs(envelopePush({ acceptedAtMs: 0n })), undefined);
    assert.equal(envelopeAcceptedAtMs(envelopePush({ acceptedAtMs: -5n })), undefined);
    const delivered = Push.encode({ kind: { $case: 'messageDelivered', value: { messageId: 'm' } } }).finish();
    assert.equal(envelopeAcceptedAtMs(delivered), undefined);
    assert.equal(envelopeAcceptedAtMs(new Uint8Array()), undefined);
  });

  test('gives the decoder’s answer for every shape, malformed ones included', () => {
    const good = envelopePush();
    const delivered = Push.encode({ kind: { $case: 'messageDelivered', value: { messageId: 'm' } } }).finish();
    const later = envelopePush({ acceptedAtMs: BigInt(NOW + 1) });
    const cases: [string, Uint8Array][] = [
      ['delivery’s push', good],
      ['huge time', envelopePush({ acceptedAtMs: 2n ** 62n })],
      ['another kind after the envelope', concat(good, delivered)],
      ['a second envelope', concat(good, later)],
      ['truncated', good.subarray(0, good.byteLength - 3)],
      ['truncated inside the time', good.subarray(0, good.byteLength - 1)],
      ['garbage after', concat(good, new Uint8Array([0xff]))],
      ['field 0', concat(good.subarray(0, 2), new Uint8Array([0x00]), good.subarray(3))],
    ];
    // accepted_at_ms twice inside one envelope (by hand: 0x0a, length, envelope, 0x30, 1): the last wins.
    const env = good.subarray(2 + (good[1]! >= 0x80 ? 1 : 0));
    const extra = new Uint8Array([0x30, 0x01]);
    const body = concat(env, extra);
    cases.push(['time twice', concat(new Uint8Array([0x0a]), varint(body.byteLength), body)]);
    for (const [name, bytes] of cases) {
      assert.equal(envelopeAcceptedAtMs(bytes), decodedAcceptedAtMs(bytes), name);
    }
    assert.equal(envelopeAcceptedAtMs(cases.at(-1)![1]), 1);
  });
});

function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return new Uint8Array(out);
}
