import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { selectScenarios, type Scenario } from './scenario.js';

const scenario = (name: string): Scenario => ({ name, description: '', run: async () => [] });
const all = [scenario('ktlog.append'), scenario('ktlog.inclusion'), scenario('delivery.fanout')];
const names = (only: string | undefined) => selectScenarios(all, only).map((s) => s.name);

describe('--only', () => {
  it('selects by name prefix, or the scenario whose figure is named', () => {
    assert.deepEqual(names(undefined), ['ktlog.append', 'ktlog.inclusion', 'delivery.fanout']);
    assert.deepEqual(names('ktlog'), ['ktlog.append', 'ktlog.inclusion']);
    assert.deepEqual(names('ktlog.inclusion_p99_ms_1m'), ['ktlog.inclusion']);
    assert.deepEqual(names('delivery'), ['delivery.fanout']);
    assert.deepEqual(names('postgres'), []);
  });
});
