import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, parseDuration } from './duration.js';

const ms = (text: string) => {
  const d = parseDuration(text);
  assert.ok(d.ok, `${text}: ${d.ok ? '' : d.error}`);
  return d.ms;
};
const refused = (text: string, why: RegExp) => {
  const d = parseDuration(text);
  assert.equal(d.ok, false, `${text} should be refused`);
  if (!d.ok) {
    assert.match(d.error, why);
    assert.ok(!d.error.includes('\n'), 'one line');
  }
};

describe('parseDuration', () => {
  it('reads a whole number and one unit', () => {
    assert.equal(ms('30s'), 30_000);
    assert.equal(ms('10m'), 600_000);
    assert.equal(ms('1h'), 3_600_000);
    assert.equal(ms('7d'), 7 * 86_400_000);
    assert.equal(ms('90m'), 5_400_000);
    assert.equal(ms('365d'), 365 * 86_400_000);
  });

  it('refuses anything else, saying how to write one', () => {
    for (const text of ['', '30', 's', '1.5h', '1h30m', '-1h', '1 h', ' 1h', '1H', '1w', 'off', '10 minutes', '1e3s']) {
      refused(text, /like 30s, 10m, 1h or 7d/);
    }
  });

  it('refuses a zero timer (that is "off") and one longer than a year', () => {
    refused('0s', /\/disappear off/);
    refused('0d', /\/disappear off/);
    refused('366d', /too long: the longest timer is 365d/);
    refused('9999999h', /like 30s/);
  });
});

describe('formatDuration', () => {
  it('writes the largest unit that fits exactly, so it reads back the same', () => {
    assert.equal(formatDuration(30_000), '30s');
    assert.equal(formatDuration(600_000), '10m');
    assert.equal(formatDuration(5_400_000), '90m');
    assert.equal(formatDuration(86_400_000), '1d');
    assert.equal(formatDuration(1_500), '1500ms');
    for (const text of ['30s', '10m', '1h', '7d', '90m']) assert.equal(formatDuration(ms(text)), text);
  });
});
