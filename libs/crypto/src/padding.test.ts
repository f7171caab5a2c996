import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { CryptoFormatError } from './errors.js';
import { bucketSize, looksPadded, padToBucket, unpad } from './padding.js';

const KiB = 1024;

describe('padding', () => {
  it('pads to 256 B … 16 KiB in powers of two, then to multiples of 16 KiB', () => {
    const cases: [number, number][] = [
      [0, 256],
      [252, 256],
      [253, 512],
      [508, 512],
      [509, KiB],
      [2 * KiB - 4, 2 * KiB],
      [4 * KiB, 8 * KiB],
      [16 * KiB - 4, 16 * KiB],
      [16 * KiB - 3, 32 * KiB],
      [40 * KiB, 48 * KiB],
      [64 * KiB - 4, 64 * KiB],
    ];
    for (const [length, bucket] of cases) {
      assert.equal(padToBucket(new Uint8Array(length)).length, bucket, `length ${length}`);
      assert.equal(bucketSize(length), bucket);
    }
  });

  it('round-trips content and hides everything but the bucket', () => {
    for (const length of [0, 1, 100, 252, 253, 1000, 5000, 16 * KiB, 70_000]) {
      const content = randomBytes(length);
      const padded = padToBucket(content);
      assert.equal(new DataView(padded.buffer).getUint32(0), length);
      assert.ok(padded.subarray(4 + length).every((b) => b === 0));
      assert.deepEqual(Buffer.from(unpad(padded)), content);
    }
  });

  it('refuses anything padToBucket would not produce', () => {
    const padded = padToBucket(new TextEncoder().encode('hello'));
    const withLength = (n: number) => {
      const b = padded.slice();
      new DataView(b.buffer).setUint32(0, n);
      return b;
    };
    assert.throws(() => unpad(new Uint8Array(0)), CryptoFormatError);
    assert.throws(() => unpad(padded.subarray(0, 255)), CryptoFormatError); // not a bucket
    assert.throws(() => unpad(withLength(253)), CryptoFormatError); // length beyond the message
    assert.throws(() => unpad(withLength(0xffffffff)), CryptoFormatError);
    const nonZero = padded.slice();
    nonZero[200] = 1;
    assert.throws(() => unpad(nonZero), CryptoFormatError);
    const tooBig = new Uint8Array(512); // 5 bytes belong in the 256 B bucket
    tooBig.set(padded);
    assert.throws(() => unpad(tooBig), CryptoFormatError);
  });
});

it('looksPadded tells padded bytes from opaque ones without throwing', () => {
  for (const n of [0, 1, 252, 253, 4000, 20_000]) {
    const padded = padToBucket(new Uint8Array(n).fill(7));
    assert.equal(looksPadded(padded), true, `padded ${n} bytes`);
    assert.equal(looksPadded(padded.subarray(0, padded.length - 1)), false, 'one byte short of its bucket');
  }
  assert.equal(looksPadded(new Uint8Array(100)), false, 'shorter than the smallest bucket');
  const lying = padToBucket(new Uint8Array(10));
  new DataView(lying.buffer).setUint32(0, 1000);
  assert.equal(looksPadded(lying), false, 'a length prefix past the end');
});
