import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeFrame, FrameDecoder, FrameTooLargeError } from './framing.js';

const bytes = (...xs: number[]) => Uint8Array.from(xs);

test('frames survive arbitrary chunking', () => {
  const payloads = [bytes(1, 2, 3), bytes(), bytes(...Array.from({ length: 1000 }, (_, i) => i % 256)), bytes(9)];
  const stream = Buffer.concat(payloads.map((p) => encodeFrame(p)));
  for (const chunkSize of [1, 2, 3, 5, 7, 64, stream.byteLength]) {
    const decoder = new FrameDecoder();
    const out: Uint8Array[] = [];
    for (let i = 0; i < stream.byteLength; i += chunkSize) out.push(...decoder.push(stream.subarray(i, i + chunkSize)));
    assert.deepEqual(
      out.map((f) => Buffer.from(f).toString('hex')),
      payloads.map((p) => Buffer.from(p).toString('hex')),
      `chunk size ${chunkSize}`,
    );
    assert.equal(decoder.pendingBytes, 0);
  }
});

test('frames of every size survive every split, whole or across many chunks', () => {
  // A fixed pseudo-random sequence, so a failure reproduces.
  let seed = 7;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const payloads = Array.from({ length: 300 }, (_, i) =>
    Uint8Array.from({ length: [0, 1, 3, 4, 5, 250, 1500, 5000, 70_000][next(9)]! }, (_, j) => (i + j) % 251),
  );
  const stream = Buffer.concat(payloads.map((p) => encodeFrame(p)));
  for (const maxChunk of [3, 9, 700, 5000, 100_000]) {
    const decoder = new FrameDecoder();
    const out: Uint8Array[] = [];
    for (let i = 0; i < stream.byteLength;) {
      const n = 1 + next(maxChunk);
      // A fresh copy per chunk, as QUIC hands them over: frames may be views of it.
      out.push(...decoder.push(Uint8Array.from(stream.subarray(i, i + n))));
      i += n;
    }
    assert.equal(out.length, payloads.length, `max chunk ${maxChunk}`);
    out.forEach((f, i) => assert.ok(Buffer.from(payloads[i]!).equals(f), `max chunk ${maxChunk}: frame ${i}`));
    assert.equal(decoder.pendingBytes, 0);
  }
});

test('a length over the limit is refused from the header alone', () => {
  const decoder = new FrameDecoder(16);
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 17);
  assert.throws(
    () => decoder.push(header),
    (err: unknown) => err instanceof FrameTooLargeError && err.length === 17,
  );
  assert.throws(() => encodeFrame(new Uint8Array(17), 16), FrameTooLargeError);
});

test('a partial frame waits for the rest', () => {
  const decoder = new FrameDecoder();
  const frame = encodeFrame(bytes(7, 7, 7));
  assert.deepEqual(decoder.push(frame.subarray(0, 5)), []);
  assert.equal(decoder.pendingBytes, 5);
  assert.deepEqual(
    decoder.push(frame.subarray(5)).map((f) => [...f]),
    [[7, 7, 7]],
  );
});
