// `npm test`: every unit test (beside the code, *.test.ts) and every integration test
// (tests/integration), on a fresh clone too. `npm test -- unit` or `-- integration` runs one tier.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ensureDependencies, root } from './bootstrap.mjs';

ensureDependencies();

function findTests(dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) findTests(path, out);
    else if (entry.name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out.sort();
}

const tier = process.argv[2];
// Whole-system tests: tests/integration, and any `*.integration.test.ts` elsewhere (e.g. the image check).
const everywhere = ['libs', 'services', 'clients', 'tests/bench', 'deploy'].flatMap((d) => findTests(join(root, d)));
const unit = everywhere.filter((f) => !f.endsWith('.integration.test.ts'));
const integration = [...findTests(join(root, 'tests', 'integration')), ...everywhere.filter((f) => !unit.includes(f))];

function run(files, concurrency) {
  if (files.length === 0) return 0;
  const args = [
    '--import',
    'tsx',
    '--test',
    // Per test file (and the default of each test in it): the longest file moves about 80 MiB through
    // the QUIC stack at 1–2 MiB/s, about four minutes alone, more on a shared machine.
    '--test-timeout=900000',
    `--test-concurrency=${concurrency}`,
    '--test-reporter=spec',
    ...files,
  ];
  const res = spawnSync(process.execPath, args, {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, QPQ_LOG_LEVEL: process.env.QPQ_LOG_LEVEL ?? 'warn' },
  });
  return res.status ?? 1;
}

let status = 0;
if (tier !== 'integration') status ||= run(unit, 2);
// Integration tests each boot a whole network: one at a time on a 2-core machine.
if (tier !== 'unit' && status === 0) status ||= run(integration, 1);
process.exit(status);
