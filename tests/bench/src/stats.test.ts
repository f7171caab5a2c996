import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { percentile } from './stats.js';

describe('percentile', () => {
  it('is the nearest-rank value, whatever order the samples came in', () => {
    const samples = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 … 1
    assert.equal(percentile(samples, 50), 50);
    assert.equal(percentile(samples, 99), 99);
    assert.equal(percentile(samples, 100), 100);
    assert.equal(percentile([7], 99), 7);
    assert.equal(percentile([1, 2, 3], 50), 2);
  });

  it('refuses no samples and a percentile outside (0, 100]', () => {
    assert.throws(() => percentile([], 50), /no samples/);
    assert.throws(() => percentile([1], 0), /not in/);
    assert.throws(() => percentile([1], 101), /not in/);
  });
});
