/**
 * The binary COPY reader, against streams built by hand in Postgres's format and cut at every place:
 * the field bytes come out whole and in order however the chunks fall, and a stream that is not one,
 * ends early or carries NULL is refused. (The storage contract test reads real COPY output.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { binaryCopyFields } from './copy-binary.js';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

function copyStream(fields: (Buffer | null)[], extension = Buffer.alloc(0), trailer = true): Buffer {
  const u32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  const parts = [SIGNATURE, u32(0), u32(extension.length), extension];
  for (const field of fields) {
    parts.push(Buffer.from([0, 1]));
    parts.push(field === null ? Buffer.from([255, 255, 255, 255]) : Buffer.concat([u32(field.length), field]));
  }
  if (trailer) parts.push(Buffer.from([255, 255]));
  return Buffer.concat(parts);
}

async function* chunked(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function read(bytes: Buffer, size: number): Promise<Buffer> {
  const pieces: Uint8Array[] = [];
  for await (const piece of binaryCopyFields(chunked(bytes, size))) pieces.push(piece);
  return Buffer.concat(pieces);
}

describe('binaryCopyFields', () => {
  it("yields every row's field in order, however the stream is cut", async () => {
    const fields = [randomBytes(1000), Buffer.alloc(0), randomBytes(33)];
    const stream = copyStream(fields, Buffer.from('ext'));
    for (const size of [1, 2, 3, 7, 19, 64, 1000, stream.length]) {
      assert.ok((await read(stream, size)).equals(Buffer.concat(fields)), `chunks of ${size}`);
    }
    assert.equal((await read(copyStream([]), 5)).length, 0, 'no rows: nothing');
  });

  it('refuses what is not a whole binary COPY stream of non-NULL single fields', async () => {
    await assert.rejects(read(Buffer.from('id\tbytes\n'.repeat(4)), 4), /not a binary COPY stream/);
    await assert.rejects(read(copyStream([randomBytes(10)], undefined, false), 4), /ended early/);
    await assert.rejects(read(copyStream([randomBytes(10)]).subarray(0, 30), 4), /ended early/);
    await assert.rejects(read(copyStream([null]), 4), /NULL/);
  });
});
