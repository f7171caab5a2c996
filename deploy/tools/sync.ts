// Copies the Grafana dashboards and alert rules (single source of truth: deploy/grafana/) into the chart,
// because Helm cannot read files outside the chart directory. Everything in deploy/helm/qpq/files/ is
// generated here; the drift test (deploy/checks/sync.test.ts) fails when a copy is out of date.
//
//   npm run deploy:sync           write the copies
//   npm run deploy:sync -- --check  exit 1 and list the differences instead
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chartDir, grafanaDir, repoRoot } from './paths.js';

export const SYNC_COMMAND = 'npm run deploy:sync';
export const chartFilesDir = join(chartDir, 'files');

/** Source and target of the copy; tests point them at temporary directories. */
export interface SyncDirs {
  source: string;
  target: string;
}

const defaultDirs: SyncDirs = { source: grafanaDir, target: chartFilesDir };

const ALERTS_HEADER = `# Generated from deploy/grafana/alerts.yaml by \`${SYNC_COMMAND}\`: do not edit here, edit the source.\n`;

const README = `# Generated files: do not edit

Everything in this directory is generated from \`deploy/grafana/\` by \`${SYNC_COMMAND}\`: edit the sources there.
Helm cannot read files outside the chart, so the Grafana dashboards and Prometheus rules, whose single
source of truth is \`deploy/grafana/\`, are copied here:

- \`dashboards/*.json\`: byte-identical copies of \`deploy/grafana/*.json\` (JSON has no comments, hence this note);
- \`alerts.yaml\`: \`deploy/grafana/alerts.yaml\` with a header comment.

\`npm test\` fails when these copies drift from their sources (deploy/checks/sync.test.ts).
`;

/** The exact contents deploy/helm/qpq/files/ must hold, by path relative to it. */
export async function plannedFiles(dirs: SyncDirs = defaultDirs): Promise<Map<string, string>> {
  const planned = new Map<string, string>([['README.md', README]]);
  const sources = (await readdir(dirs.source)).sort();
  for (const name of sources.filter((n) => n.endsWith('.json'))) {
    planned.set(`dashboards/${name}`, await readFile(join(dirs.source, name), 'utf8'));
  }
  if (sources.includes('alerts.yaml')) {
    const rules = await readFile(join(dirs.source, 'alerts.yaml'), 'utf8');
    planned.set('alerts.yaml', ALERTS_HEADER + rules);
  }
  return planned;
}

/** Human-readable differences between files/ and the plan; empty when in sync. */
export async function driftReport(dirs: SyncDirs = defaultDirs): Promise<string[]> {
  const planned = await plannedFiles(dirs);
  const actual = await listFiles(dirs.target);
  const display = displayIn(dirs.target);
  const problems: string[] = [];
  for (const [path, content] of planned) {
    if (!actual.has(path)) {
      problems.push(`missing: ${display(path)}`);
    } else if ((await readFile(join(dirs.target, path), 'utf8')) !== content) {
      problems.push(`out of date: ${display(path)}`);
    }
  }
  for (const path of actual) if (!planned.has(path)) problems.push(`stale (no source): ${display(path)}`);
  return problems;
}

/** Writes the planned files and removes everything else under files/. */
export async function syncChartFiles(dirs: SyncDirs = defaultDirs): Promise<{ written: string[]; removed: string[] }> {
  const planned = await plannedFiles(dirs);
  const display = displayIn(dirs.target);
  const written: string[] = [];
  const removed: string[] = [];
  for (const path of await listFiles(dirs.target)) {
    if (planned.has(path)) continue;
    await rm(join(dirs.target, path));
    removed.push(display(path));
  }
  for (const [path, content] of planned) {
    const file = join(dirs.target, path);
    if (existsSync(file) && (await readFile(file, 'utf8')) === content) continue;
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, content);
    written.push(display(path));
  }
  return { written, removed };
}

async function listFiles(dir: string, prefix = ''): Promise<Set<string>> {
  const found = new Set<string>();
  if (!existsSync(dir)) return found;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) for (const nested of await listFiles(join(dir, entry.name), path)) found.add(nested);
    else found.add(path);
  }
  return found;
}

function displayIn(dir: string): (path: string) => string {
  return (path) => relative(repoRoot, join(dir, path));
}

async function main(): Promise<void> {
  if (process.argv.includes('--check')) {
    const problems = await driftReport();
    for (const problem of problems) console.error(problem);
    if (problems.length > 0) {
      console.error(`chart files are out of sync with deploy/grafana: run \`${SYNC_COMMAND}\``);
      process.exitCode = 1;
    }
    return;
  }
  const { written, removed } = await syncChartFiles();
  for (const path of written) console.log(`wrote ${path}`);
  for (const path of removed) console.log(`removed ${path}`);
  if (written.length + removed.length === 0) console.log('chart files already in sync');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
