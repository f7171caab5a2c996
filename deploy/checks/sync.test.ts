// The chart's copies of the dashboards and rules (deploy/helm/qpq/files/) must equal deploy/grafana/.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parse } from 'yaml';
import { driftReport, SYNC_COMMAND, syncChartFiles } from '../tools/sync.js';

describe('chart files generated from deploy/grafana', () => {
  test('are in sync with their sources', async () => {
    const problems = await driftReport();
    assert.deepEqual(
      problems,
      [],
      `deploy/helm/qpq/files/ has drifted from deploy/grafana/ — run \`${SYNC_COMMAND}\`:\n  ${problems.join('\n  ')}`,
    );
  });
});

describe('syncChartFiles', () => {
  const scratch = mkdtemp(join(tmpdir(), 'qpq-sync-'));
  after(async () => rm(await scratch, { recursive: true, force: true }));

  test('copies dashboards byte for byte, heads alerts.yaml with a note, removes stale copies', async () => {
    const dirs = { source: join(await scratch, 'grafana'), target: join(await scratch, 'files') };
    await mkdir(dirs.source, { recursive: true });
    await mkdir(join(dirs.target, 'dashboards'), { recursive: true });
    const dashboard = '{\n  "uid": "qpq-x",\n  "title": "é",\n  "panels": []\n}\n';
    const rules = 'groups:\n  - name: qpq\n    rules:\n      - alert: Down\n        expr: up == 0\n';
    await writeFile(join(dirs.source, 'qpq-x.json'), dashboard);
    await writeFile(join(dirs.source, 'alerts.yaml'), rules);
    await writeFile(join(dirs.source, 'README.md'), 'not copied');
    await writeFile(join(dirs.target, 'dashboards', 'qpq-removed.json'), '{}');
    await writeFile(join(dirs.target, 'dashboards', 'qpq-x.json'), '{"old": true}');

    assert.deepEqual((await driftReport(dirs)).map((p) => p.split(':')[0]).sort(), [
      'missing',
      'missing',
      'out of date',
      'stale (no source)',
    ]);

    await syncChartFiles(dirs);

    assert.deepEqual(await driftReport(dirs), []);
    assert.deepEqual((await readdir(join(dirs.target, 'dashboards'))).sort(), ['qpq-x.json']);
    assert.equal(await readFile(join(dirs.target, 'dashboards', 'qpq-x.json'), 'utf8'), dashboard);
    const copied = await readFile(join(dirs.target, 'alerts.yaml'), 'utf8');
    assert.match(copied, /^# Generated from deploy\/grafana\/alerts\.yaml by `npm run deploy:sync`/);
    assert.deepEqual(parse(copied), parse(rules));
    assert.match(await readFile(join(dirs.target, 'README.md'), 'utf8'), /generated/i);
    assert.deepEqual(await syncChartFiles(dirs), { written: [], removed: [] }, 'a second run changes nothing');
  });
});
