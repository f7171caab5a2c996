import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { MachineInfo } from './machine.js';
import { formatTable, MissingBaselineError, Results, writeRunRecord } from './results.js';

const machine: MachineInfo = {
  cpu_model: 'Test CPU',
  cpu_count: 2,
  total_memory_bytes: 8 << 30,
  node_version: 'v20.0.0',
  os: 'linux 6.0.0 x64',
};

function sampleRun(): Results {
  const results = new Results();
  results.add(
    { name: 'postgres.insert_batched', value: 40_000, unit: 'rows/s', params: { rows: 1000, batch: 500 } },
    {
      name: 'ktlog.append',
      value: 8_000,
      unit: 'appends/s',
      params: { events: 1000, batch: 500 },
      baseline: 'postgres.insert_batched',
    },
  );
  return results;
}

describe('bench results', () => {
  it('gives a figure with a baseline the baseline value and ratio = value / baseline value', () => {
    const [base, append] = sampleRun().records();
    assert.deepEqual(base, {
      name: 'postgres.insert_batched',
      value: 40_000,
      unit: 'rows/s',
      params: { rows: 1000, batch: 500 },
    });
    assert.equal(append?.baseline_name, 'postgres.insert_batched');
    assert.equal(append?.baseline_value, 40_000);
    assert.equal(append?.ratio, 0.2);
  });

  it('refuses a baseline the run did not measure, a figure measured twice, and a value that is not finite', () => {
    const results = new Results();
    results.add({ name: 'ktlog.inclusion_ms_1m', value: 2, unit: 'ms', params: {}, baseline: 'ktlog.inclusion_ms_1k' });
    assert.throws(() => results.records(), MissingBaselineError);
    assert.throws(() => results.add({ name: 'ktlog.inclusion_ms_1m', value: 3, unit: 'ms', params: {} }), /twice/);
    assert.throws(() => results.add({ name: 'x', value: NaN, unit: 'ms', params: {} }), /finite/);
    const zero = new Results();
    zero.add({ name: 'zero', value: 0, unit: 'ms', params: {} });
    zero.add({ name: 'over_zero', value: 1, unit: 'ms', params: {}, baseline: 'zero' });
    assert.throws(() => zero.records(), /baseline of 0/);
  });

  it('writes latest.json in the documented shape', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qpq-bench-test-'));
    try {
      const path = join(dir, 'nested', 'latest.json');
      const record = sampleRun().toRecord({
        machine,
        commit: 'a'.repeat(40),
        started_at: '2026-11-26T00:00:00.000Z',
        quick: true,
      });
      await writeRunRecord(path, record);
      const json = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
      assert.deepEqual(Object.keys(json).sort(), ['commit', 'machine', 'quick', 'scenarios', 'started_at']);
      assert.deepEqual(json.machine, machine);
      assert.equal(json.quick, true);
      assert.deepEqual(json.scenarios, [
        { name: 'postgres.insert_batched', value: 40_000, unit: 'rows/s', params: { rows: 1000, batch: 500 } },
        {
          name: 'ktlog.append',
          value: 8_000,
          unit: 'appends/s',
          params: { events: 1000, batch: 500 },
          baseline_name: 'postgres.insert_batched',
          baseline_value: 40_000,
          ratio: 0.2,
        },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('prints one aligned row per figure with its baseline, ratio and params', () => {
    const lines = formatTable(sampleRun().records()).split('\n');
    assert.equal(lines.length, 4);
    assert.match(lines[0]!, /^name\s+value\s+unit\s+baseline\s+ratio\s+params$/);
    assert.match(
      lines[3]!,
      /^ktlog\.append\s+8,000\s+appends\/s\s+postgres\.insert_batched \(40,000\)\s+0\.200×\s+events=1,000 batch=500$/,
    );
    // The value column is right-aligned: both values end at the same column.
    assert.equal(lines[2]!.indexOf('40,000') + 6, lines[3]!.indexOf('8,000') + 5);
  });
});
