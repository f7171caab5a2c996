import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CryptoUsageError } from './errors.js';
import { encodeLogEntry } from './kt-entry.js';

describe('key-transparency log entry encoding', () => {
  const key = new Uint8Array(32).fill(7);

  it('encodes the canonical bytes as specified in ktlog.proto', () => {
    const bytes = encodeLogEntry({ op: 2, address: 'al@x', deviceId: 'd1', identityKey: key, timestampMs: 258n });
    const expected = Buffer.concat([
      Buffer.from('qpq-kt-entry-v1'),
      Buffer.from([2]),
      Buffer.from([0, 4]),
      Buffer.from('al@x'),
      Buffer.from([0, 2]),
      Buffer.from('d1'),
      Buffer.from([0, 32]),
      key,
      Buffer.from([0, 0, 0, 0, 0, 0, 1, 2]),
    ]);
    assert.deepEqual(Buffer.from(bytes), expected);
  });

  it('differs whenever any bound field differs', () => {
    const base = { op: 1, address: 'alice@example.test', deviceId: 'dev', identityKey: key, timestampMs: 1 };
    const variants = [
      { ...base, op: 2 },
      { ...base, address: 'alicE@example.test' },
      { ...base, deviceId: 'dev2' },
      { ...base, identityKey: new Uint8Array(32).fill(8) },
      { ...base, timestampMs: 2 },
      // Length prefixes keep a byte moved from one field to the next from giving the same encoding.
      { ...base, address: 'alice@example.tes', deviceId: 'tdev' },
    ];
    const encoded = Buffer.from(encodeLogEntry(base));
    for (const v of variants) assert.notDeepEqual(Buffer.from(encodeLogEntry(v)), encoded);
  });

  it('refuses fields it cannot encode', () => {
    const base = { op: 1, address: 'a@b', deviceId: 'd', identityKey: key, timestampMs: 0 };
    assert.throws(() => encodeLogEntry({ ...base, op: 256 }), CryptoUsageError);
    assert.throws(() => encodeLogEntry({ ...base, address: 'x'.repeat(65536) }), CryptoUsageError);
    assert.throws(() => encodeLogEntry({ ...base, timestampMs: 2n ** 63n }), CryptoUsageError);
  });
});
