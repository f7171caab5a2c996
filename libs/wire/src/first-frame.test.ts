import assert from 'node:assert/strict';
import { ReadableStream } from 'node:stream/web';
import { test } from 'node:test';
import { FirstFrameParser, readFirstFrame, TruncatedFrameError } from './first-frame.js';
import { encodeFrame, FrameTooLargeError } from './framing.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** A stream delivering `chunks` as they are, then FIN; it reads from its source only when asked. */
function streamOf(chunks: Uint8Array[]) {
  let i = 0;
  let reads = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        reads++;
        const chunk = chunks[i++];
        if (chunk) controller.enqueue(chunk);
        else controller.close();
      },
    },
    { highWaterMark: 0 },
  );
  return { reader: stream.getReader(), reads: () => reads };
}

const frame = Uint8Array.from([10, 20, 30, 40, 50]);
const file = Uint8Array.from(Array.from({ length: 300 }, (_, i) => i % 251));
const wire = Buffer.concat([encodeFrame(frame), file]);

test('bytes behind the frame in the same chunk are kept, in order, and nothing more is read', async () => {
  const { reader, reads } = streamOf([wire.subarray(0, 100), wire.subarray(100)]);
  const first = await readFirstFrame(reader, 1024);
  assert.equal(hex(first.frame), hex(frame));
  assert.equal(hex(first.rest), hex(file.subarray(0, 100 - 4 - frame.byteLength)));
  assert.equal(reads(), 1, 'the file bytes after the first chunk stay in the stream');
  const next = await reader.read();
  assert.equal(hex(next.value!), hex(file.subarray(100 - 4 - frame.byteLength)));
});

test('a frame split across chunks at every point comes out whole, with the rest intact', async () => {
  for (let cut = 1; cut < 4 + frame.byteLength + 3; cut++) {
    for (const size of [1, 2, 3, 7]) {
      // The first `cut` bytes in pieces of `size`, then everything else in one chunk.
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < cut; at += size) chunks.push(wire.subarray(at, Math.min(at + size, cut)));
      chunks.push(wire.subarray(cut));
      const { reader } = streamOf(chunks);
      const first = await readFirstFrame(reader, 1024);
      assert.equal(hex(first.frame), hex(frame), `cut ${cut} size ${size}`);
      const after: Uint8Array[] = [first.rest];
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        after.push(value);
      }
      assert.equal(hex(Buffer.concat(after)), hex(file), `cut ${cut} size ${size}`);
    }
  }
});

test('an empty frame, and a frame that ends exactly with its chunk, leave no rest', async () => {
  const empty = await readFirstFrame(streamOf([encodeFrame(new Uint8Array(0))]).reader, 16);
  assert.equal(empty.frame.byteLength, 0);
  assert.equal(empty.rest.byteLength, 0);
  const exact = await readFirstFrame(streamOf([encodeFrame(frame)]).reader, 16);
  assert.equal(hex(exact.frame), hex(frame));
  assert.equal(exact.rest.byteLength, 0);
});

test('a length over the limit is refused from the header, before the frame arrives', async () => {
  const { reader, reads } = streamOf([encodeFrame(new Uint8Array(17)).subarray(0, 4), new Uint8Array(17)]);
  await assert.rejects(
    readFirstFrame(reader, 16),
    (err: unknown) => err instanceof FrameTooLargeError && err.length === 17 && err.limit === 16,
  );
  assert.equal(reads(), 1);
});

test('a stream that ends before or inside its first frame is truncated', async () => {
  await assert.rejects(
    readFirstFrame(streamOf([]).reader, 16),
    (err: unknown) => err instanceof TruncatedFrameError && err.receivedBytes === 0,
  );
  await assert.rejects(
    readFirstFrame(streamOf([wire.subarray(0, 6)]).reader, 16),
    (err: unknown) => err instanceof TruncatedFrameError && err.receivedBytes === 6,
  );
});

test('the parser holds nothing back once the frame is whole', () => {
  const parser = new FirstFrameParser(1024);
  assert.equal(parser.push(wire.subarray(0, 2)), undefined);
  assert.equal(parser.push(new Uint8Array(0)), undefined);
  assert.equal(parser.push(wire.subarray(2, 8)), undefined);
  const found = parser.push(wire.subarray(8, 20));
  assert.ok(found);
  assert.equal(hex(found.frame), hex(frame));
  assert.equal(hex(found.rest), hex(wire.subarray(4 + frame.byteLength, 20)));
});
