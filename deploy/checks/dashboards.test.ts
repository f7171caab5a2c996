// The Grafana dashboards in deploy/grafana/: every .json is a dashboard with top-level panels, each with
// the datasource and namespace variables, no hard-coded datasource, every query filtered by namespace and
// valid for Prometheus's own parser (promtool).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { run } from '../tools/exec.js';
import { ensurePromtool } from '../tools/promtool.js';
import { dashboardExpressions, readDashboards, selectors } from './promql.js';

/** The dashboards the issue asks for, by file name. */
const EXPECTED = ['overview', 'gateway', 'delivery', 'nats', 'keys', 'blob', 'postgres'].map((n) => `qpq-${n}.json`);

interface Variable {
  name?: string;
  type?: string;
  query?: unknown;
}

const dashboards = readDashboards();

describe('deploy/grafana dashboards', () => {
  test('every dashboard the issue asks for exists', () => {
    const missing = EXPECTED.filter((name) => !dashboards.has(name));
    assert.deepEqual(missing, [], `missing dashboards in deploy/grafana: ${missing.join(', ')}`);
  });

  for (const [file, json] of dashboards) {
    describe(file, () => {
      const dashboard = json as {
        uid?: unknown;
        title?: unknown;
        panels?: unknown;
        templating?: { list?: Variable[] };
      };

      test('is a dashboard with top-level panels, a title and uid qpq-<name>', () => {
        assert.ok(Array.isArray(dashboard.panels) && dashboard.panels.length > 0, 'no top-level panels');
        assert.equal(typeof dashboard.title, 'string');
        assert.equal(dashboard.uid, file.replace(/\.json$/, ''));
      });

      test('has the datasource and namespace variables', () => {
        const variables = dashboard.templating?.list ?? [];
        const datasource = variables.find((v) => v.name === 'datasource');
        assert.equal(datasource?.type, 'datasource');
        assert.equal(datasource?.query, 'prometheus');
        const namespace = variables.find((v) => v.name === 'namespace');
        assert.equal(namespace?.type, 'query');
        assert.match(JSON.stringify(namespace?.query), /label_values\(.*,\s*namespace\s*\)/);
      });

      test('names no datasource except through $datasource', () => {
        const hardCoded: string[] = [];
        walk(json, '', (path, key, value) => {
          if (key !== 'datasource' || path.startsWith('templating')) return;
          const uid = typeof value === 'string' ? value : (value as { uid?: unknown } | null)?.uid;
          const type = (value as { type?: unknown } | null)?.type;
          if (type === 'grafana' || type === 'datasource') return; // Grafana's built-in annotations / mixed
          if (uid !== '${datasource}' && uid !== '$datasource') hardCoded.push(`${path}: ${JSON.stringify(value)}`);
        });
        assert.deepEqual(hardCoded, []);
      });

      test('every selector is filtered by namespace=~"$namespace"', () => {
        const unfiltered: string[] = [];
        for (const { expr, where } of dashboardExpressions().filter((e) => e.where.includes(file))) {
          if (where.endsWith('variable $namespace')) continue; // the query that lists the namespaces
          for (const selector of selectors(expr)) {
            const filtered = selector.matchers.some(
              (m) => m.label === 'namespace' && (m.op === '=~' || m.op === '=') && /\$\{?namespace\b/.test(m.value),
            );
            if (!filtered) unfiltered.push(`${where}: ${selector.text}`);
          }
        }
        assert.deepEqual(unfiltered, []);
      });
    });
  }

  test('every query is valid for promtool (Prometheus parser, types included)', async () => {
    const expressions = dashboardExpressions();
    assert.ok(expressions.length > 0, 'no dashboard queries found');
    const dir = await mkdtemp(join(tmpdir(), 'qpq-dashboards-'));
    try {
      // Each query becomes a recording rule so `promtool check rules` parses and type-checks it.
      const rules = expressions.map((e, i) => ({ record: `dashboard_query_${i}`, expr: e.expr }));
      await writeFile(join(dir, 'queries.yaml'), stringify({ groups: [{ name: 'dashboards', rules }] }));
      await run(await ensurePromtool(), ['check', 'rules', '--lint=none', 'queries.yaml'], { cwd: dir }).catch(
        (error: Error) => {
          const where = expressions.map((e, i) => `  dashboard_query_${i} = ${e.where}`).join('\n');
          throw new Error(`${error.message}\nqueries:\n${where}`);
        },
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

function walk(value: unknown, path: string, visit: (path: string, key: string, value: unknown) => void): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => walk(item, `${path}[${i}]`, visit));
  } else if (value && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      const childPath = path ? `${path}.${key}` : key;
      visit(childPath, key, child);
      walk(child, childPath, visit);
    }
  }
}
