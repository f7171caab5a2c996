// The Prometheus rules in deploy/grafana/alerts.yaml: valid for promtool, unit-tested by promtool, and
// covering what operators were promised (error rate, latency, consumer lag, pool exhaustion, stalled KT head).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { run } from '../tools/exec.js';
import { grafanaDir } from '../tools/paths.js';
import { ensurePromtool } from '../tools/promtool.js';
import { metricsInExpr, ruleExpressions } from './promql.js';

const rulesFile = join(grafanaDir, 'alerts.yaml');
const testsFile = join(grafanaDir, 'alerts.test.yaml');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
}
interface RuleTests {
  rule_files?: string[];
  tests?: { alert_rule_test?: { alertname?: string }[] }[];
}

function rules(): Rule[] {
  const file = parse(readFileSync(rulesFile, 'utf8')) as { groups?: { rules?: Rule[] }[] };
  return (file.groups ?? []).flatMap((g) => g.rules ?? []);
}

/** Metrics an alert reads, looking through the recording rules it uses. */
function metricsReadByAlert(alert: Rule, all: Rule[]): Set<string> {
  const recorded = new Map(all.filter((r) => r.record).map((r) => [r.record!, r.expr]));
  const seen = new Set<string>();
  const pending = metricsInExpr(String(alert.expr));
  while (pending.length > 0) {
    const metric = pending.pop()!;
    if (seen.has(metric)) continue;
    seen.add(metric);
    const expr = recorded.get(metric);
    if (expr !== undefined) pending.push(...metricsInExpr(String(expr)));
  }
  return seen;
}

describe('deploy/grafana/alerts.yaml', () => {
  let promtool: string;
  before(async () => {
    promtool = await ensurePromtool();
  });

  test('exists beside its promtool unit tests', () => {
    assert.ok(existsSync(rulesFile), `${rulesFile} is missing`);
    assert.ok(existsSync(testsFile), `${testsFile} is missing`);
  });

  test('passes `promtool check rules` (duplicate rules are fatal)', async () => {
    await run(promtool, ['check', 'rules', '--lint=all', '--lint-fatal', 'alerts.yaml'], { cwd: grafanaDir });
  });

  test('passes `promtool test rules alerts.test.yaml`', async () => {
    await run(promtool, ['test', 'rules', 'alerts.test.yaml'], { cwd: grafanaDir, timeoutMs: 300_000 });
  });

  test('the unit tests load alerts.yaml itself and test every alert', () => {
    const tests = parse(readFileSync(testsFile, 'utf8')) as RuleTests;
    assert.deepEqual(tests.rule_files, ['alerts.yaml']);
    const tested = new Set(
      (tests.tests ?? []).flatMap((t) => (t.alert_rule_test ?? []).map((a) => a.alertname)).filter(Boolean),
    );
    const alerts = rules().flatMap((r) => (r.alert ? [r.alert] : []));
    assert.ok(alerts.length > 0, 'alerts.yaml defines no alert');
    const untested = alerts.filter((a) => !tested.has(a));
    assert.deepEqual(untested, [], `alerts without an alert_rule_test in alerts.test.yaml: ${untested.join(', ')}`);
  });

  test('every expression parses as PromQL', () => {
    for (const { expr, where } of ruleExpressions()) {
      assert.doesNotThrow(() => metricsInExpr(expr), `${where}: ${expr}`);
    }
  });

  // What the issue asks the alerts to watch, each recognised by the metrics an alert reads.
  const promised: [string, RegExp][] = [
    ['error rate', /^qpq_rpc_server_duration_seconds_count$/],
    ['latency', /^qpq_rpc_server_duration_seconds_bucket$/],
    ['consumer lag', /^qpq_jetstream_consumer_(pending|ack_pending)_messages$/],
    ['pool exhaustion', /^qpq_db_pool_(connections|waiting_clients|max_connections)$/],
    ['a KT head that stopped growing', /^qpq_ktlog_(newest_head_timestamp_seconds|tree_size_entries)$/],
  ];
  for (const [topic, metric] of promised) {
    test(`an alert watches ${topic}`, () => {
      const all = rules();
      const watching = all
        .filter((r) => r.alert)
        .filter((r) => [...metricsReadByAlert(r, all)].some((m) => metric.test(m)));
      assert.ok(watching.length > 0, `no alert reads a metric matching ${metric}`);
    });
  }
});
