import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  exportedMetrics,
  exprOfVariableQuery,
  metricsInExpr,
  metricsUsed,
  missingMetrics,
  PromqlSyntaxError,
  recordedMetrics,
  selectors,
  substituteGrafanaVariables,
} from './promql.js';

describe('metricsInExpr', () => {
  const cases: [string, string, string[]][] = [
    [
      'histogram_quantile with sum by (le)',
      'histogram_quantile(0.99, sum by (le, method) (rate(qpq_rpc_server_duration_seconds_bucket{namespace=~"ns"}[5m])))',
      ['qpq_rpc_server_duration_seconds_bucket'],
    ],
    ['offset and @', 'rate(a_total[5m] offset 1h) - rate(a_total[5m] @ end()) + b offset -5m', ['a_total', 'b']],
    ['on() group_left', 'a * on(pod) group_left(version) b_info', ['a', 'b_info']],
    ['ignoring()', 'sum(errors_total) / ignoring(code) sum(requests_total)', ['errors_total', 'requests_total']],
    ['unless and or', 'a unless b or c and d', ['a', 'b', 'c', 'd']],
    ['absent()', 'absent(qpq_up) or absent_over_time(qpq_seen[10m])', ['qpq_up', 'qpq_seen']],
    ['recording-rule names with colons', 'qpq:rpc_errors:ratio_rate5m > 0.05', ['qpq:rpc_errors:ratio_rate5m']],
    ['grouping labels are not metrics', 'sum without (pod) (x) + count by (method, code) (y)', ['x', 'y']],
    [
      'string arguments are not metrics',
      'label_replace(x, "dst", "$1", "src", "(.*)") + count_values("v", y)',
      ['x', 'y'],
    ],
    ['__name__ equality', '{__name__="a", job="j"} + {__name__=~"b|c"}', ['a', 'b', 'c']],
    ['negative __name__ reads no metric', 'count({__name__!~"go_.*", job="x"})', []],
    ['quoted UTF-8 metric name', '{"qpq.dotted", job="x"}', ['qpq.dotted']],
    ['subquery', 'max_over_time(rate(x_total[5m])[1h:1m])', ['x_total']],
    ['bool modifier and scalars', 'a > bool 1 * scalar(b) + vector(1) + time()', ['a', 'b']],
    ['duplicates collapse', 'a / a', ['a']],
    ['no metric', '1 + 2 * 3', []],
  ];
  for (const [name, expr, expected] of cases) {
    test(name, () => assert.deepEqual(metricsInExpr(expr), expected));
  }

  test('a regex over __name__ that is not a plain list of names is refused', () => {
    assert.throws(() => metricsInExpr('{__name__=~"qpq_.*"}'), PromqlSyntaxError);
  });

  for (const broken of ['sum(rate(x[5m])', 'foo{', 'rate(x[5m]', 'a +', 'sum by (le (x)', 'label_values(x, le)']) {
    test(`syntax error is reported: ${broken}`, () => assert.throws(() => metricsInExpr(broken), PromqlSyntaxError));
  }

  test('selectors keep their matchers', () => {
    assert.deepEqual(selectors('x{namespace=~"$namespace", code!="OK"}')[0]?.matchers, [
      { label: 'namespace', op: '=~', value: '$namespace' },
      { label: 'code', op: '!=', value: 'OK' },
    ]);
  });
});

describe('substituteGrafanaVariables', () => {
  test('built-in intervals become durations, numbers numbers', () => {
    assert.equal(
      substituteGrafanaVariables(
        'rate(x[$__rate_interval]) + increase(y[${__range}]) / $__range_s + z[[[__interval]]]',
      ),
      'rate(x[5m]) + increase(y[5m]) / 300 + z[5m]',
    );
  });
  test('variables inside string literals are left alone', () => {
    const expr = `x{namespace=~"$namespace", pod=~'\${pod:regex}', job=~\`[[job]]\`, a="\\"$q"}`;
    assert.equal(substituteGrafanaVariables(expr), expr);
  });
  test('dashboard variables outside strings take their current value', () => {
    assert.equal(substituteGrafanaVariables('topk($n, x)', new Map([['n', '5']])), 'topk(5, x)');
  });
  test('an unknown variable outside a string is an error', () => {
    assert.throws(() => substituteGrafanaVariables('topk($n, x)'), /\$n/);
  });
});

describe('exprOfVariableQuery', () => {
  test('label_values(metric, label) reads the metric', () => {
    assert.equal(
      exprOfVariableQuery('label_values(qpq_rpc_server_duration_seconds_count, namespace)'),
      'qpq_rpc_server_duration_seconds_count',
    );
  });
  test('label_values with a selector holding commas', () => {
    const expr = exprOfVariableQuery('label_values(qpq_x_total{namespace=~"$namespace", job="a,b"}, pod)');
    assert.equal(expr, 'qpq_x_total{namespace=~"$namespace", job="a,b"}');
    assert.deepEqual(metricsInExpr(expr!), ['qpq_x_total']);
  });
  test('label_values(label), label_names() and metrics() read no metric', () => {
    assert.equal(exprOfVariableQuery('label_values(namespace)'), undefined);
    assert.equal(exprOfVariableQuery('label_names()'), undefined);
    assert.equal(exprOfVariableQuery('metrics(qpq_.*)'), undefined);
  });
  test('query_result(expr) reads the expression', () => {
    assert.equal(exprOfVariableQuery('query_result(topk(5, sum by (pod) (x)))'), 'topk(5, sum by (pod) (x))');
  });
});

describe('metricsUsed / missingMetrics on a grafana directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qpq-promql-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'qpq-demo.json'),
    JSON.stringify({
      uid: 'qpq-demo',
      panels: [
        {
          id: 1,
          title: 'Rate',
          targets: [{ refId: 'A', expr: 'sum(rate(req_total{namespace=~"$namespace"}[$__rate_interval]))' }],
        },
        {
          id: 2,
          type: 'row',
          title: 'Collapsed',
          collapsed: true,
          panels: [
            {
              id: 3,
              title: 'Latency',
              targets: [{ refId: 'B', expr: 'histogram_quantile(0.9, sum by (le) (rate(lat_seconds_bucket[5m])))' }],
            },
          ],
        },
        { id: 4, title: 'Recorded', targets: [{ refId: 'C', expr: 'job:errors:ratio' }] },
      ],
      annotations: { list: [{ name: 'Restarts', expr: 'changes(start_time_seconds[5m]) > 0' }] },
      templating: {
        list: [
          { name: 'datasource', type: 'datasource', query: 'prometheus' },
          { name: 'namespace', type: 'query', query: { query: 'label_values(req_total, namespace)', refId: 'v' } },
          { name: 'pod', type: 'query', query: 'label_values(pod_info{namespace=~"$namespace"}, pod)' },
        ],
      },
    }),
  );
  writeFileSync(
    join(dir, 'alerts.yaml'),
    [
      'groups:',
      '  - name: g',
      '    rules:',
      '      - record: job:errors:ratio',
      '        expr: sum(rate(err_total[5m])) / sum(rate(req_total[5m]))',
      '      - alert: Down',
      '        expr: up{job="qpq"} == 0',
      '      - alert: Errors',
      '        expr: job:errors:ratio > 0.1',
      '',
    ].join('\n'),
  );

  test('collects metrics from targets, nested rows, annotations, variables and rules, with places', () => {
    const used = metricsUsed(dir);
    assert.deepEqual([...used.keys()].sort(), [
      'err_total',
      'job:errors:ratio',
      'lat_seconds_bucket',
      'pod_info',
      'req_total',
      'start_time_seconds',
      'up',
    ]);
    assert.ok(used.get('lat_seconds_bucket')?.[0]?.endsWith('qpq-demo.json: panel "Latency" target B'));
    assert.ok(used.get('pod_info')?.[0]?.endsWith('qpq-demo.json: variable $pod'));
    assert.ok(used.get('err_total')?.[0]?.endsWith('alerts.yaml: group g record job:errors:ratio'));
    assert.equal(used.get('req_total')?.length, 3, 'panel, variable and rule');
    assert.deepEqual([...recordedMetrics(dir)], ['job:errors:ratio']);
  });

  test('missingMetrics ignores recorded and Prometheus-made series and knows histogram suffixes', () => {
    const used = metricsUsed(dir);
    const recorded = recordedMetrics(dir);
    const exported = new Set(['req_total', 'err_total', 'lat_seconds', 'pod_info']);
    assert.deepEqual([...missingMetrics(exported, used, recorded).keys()], ['start_time_seconds']);
    const none = missingMetrics(new Set(), used, recorded);
    assert.deepEqual([...none.keys()].sort(), [
      'err_total',
      'lat_seconds_bucket',
      'pod_info',
      'req_total',
      'start_time_seconds',
    ]);
  });

  test('a bare histogram name is missing even when its _bucket series exist', () => {
    const used = new Map([['lat_seconds', ['somewhere']]]);
    const exported = new Set(['lat_seconds_bucket', 'lat_seconds_sum', 'lat_seconds_count']);
    assert.deepEqual([...missingMetrics(exported, used, new Set()).keys()], ['lat_seconds']);
  });

  test('an invalid dashboard expression names its place', () => {
    const bad = mkdtempSync(join(tmpdir(), 'qpq-promql-bad-'));
    try {
      writeFileSync(
        join(bad, 'qpq-bad.json'),
        JSON.stringify({ panels: [{ title: 'Broken', targets: [{ refId: 'A', expr: 'sum(x' }] }] }),
      );
      assert.throws(() => metricsUsed(bad), /qpq-bad\.json: panel "Broken" target A/);
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });
});

describe('exportedMetrics', () => {
  test('reads sample names and TYPE families from an exposition', () => {
    const text = [
      '# HELP qpq_x_seconds Latency.',
      '# TYPE qpq_x_seconds histogram',
      'qpq_x_seconds_bucket{le="0.1",method="/a"} 3',
      'qpq_x_seconds_sum{method="/a"} 0.2',
      'qpq_x_seconds_count{method="/a"} 3',
      '# TYPE qpq_y_total counter',
      'qpq_y_total 0',
      'target_info{service_name="x"} 1',
    ].join('\n');
    assert.deepEqual([...exportedMetrics(text)].sort(), [
      'qpq_x_seconds',
      'qpq_x_seconds_bucket',
      'qpq_x_seconds_count',
      'qpq_x_seconds_sum',
      'qpq_y_total',
      'target_info',
    ]);
  });
});
