import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isIgnored, parseDockerignore } from './dockerignore.js';
import { repoRoot } from './stage.js';

test('patterns follow BuildKit: folders carry their matches down, the last matching line decides', () => {
  const p = parseDockerignore('# comment\n\n**\n!libs/*/src\n/docs/\n**/*.test.ts\n*.md\n!keep.md\nsp\\*cial\n');
  assert.equal(isIgnored(p, 'README.md'), true);
  assert.equal(isIgnored(p, 'libs/runtime/src/main.ts'), false, 'let back in by a folder');
  assert.equal(isIgnored(p, 'libs/runtime/src/deep/er.ts'), false);
  assert.equal(isIgnored(p, 'libs/runtime/src/main.test.ts'), true, 'a later line wins');
  assert.equal(isIgnored(p, 'libs/runtime/package.json'), true);
  assert.equal(isIgnored(p, 'keep.md'), false);
  const q = parseDockerignore('*.md\ndocs\n**/node_modules\nsp\\*cial\n');
  assert.equal(isIgnored(q, 'docs/a/b.txt'), true, 'a folder takes everything in it');
  assert.equal(isIgnored(q, 'sub/x.md'), false, '* stays within one folder');
  assert.equal(isIgnored(q, 'node_modules/a/index.js'), true, '**/ matches no folder too');
  assert.equal(isIgnored(q, 'libs/x/node_modules/a/package.json'), true);
  assert.equal(isIgnored(q, 'sp*cial'), true);
  assert.equal(isIgnored(q, 'special'), false, '\\ escapes');
});

test("the repository's .dockerignore sends manifests, sources and the assembler, and no tests", async () => {
  const p = parseDockerignore(await readFile(join(repoRoot, '.dockerignore'), 'utf8'));
  for (const sent of [
    'package-lock.json',
    'package.json',
    'tsconfig.json',
    'tsconfig.base.json',
    'libs/proto/src/gen/qpq/v1/client.ts',
    'services/gateway/package.json',
    'services/gateway/src/bin.ts',
    'clients/cli/bin/qpq.mjs',
    'tests/integration/package.json',
    'deploy/package.json',
    'deploy/image/assemble.mjs',
  ]) {
    assert.equal(isIgnored(p, sent), false, `${sent} must reach the build`);
  }
  for (const left of [
    'services/gateway/src/gateway.test.ts',
    'libs/runtime/node_modules/x/package.json',
    'node_modules/tsx/package.json',
    'docs/architecture.md',
    'tests/integration/files.test.ts',
    'deploy/helm/qpq/values.yaml',
    'deploy/image/stage.ts',
    '.git/config',
    '.qpq/certs/ca-key.pem',
  ]) {
    assert.equal(isIgnored(p, left), true, `${left} must stay out of the build`);
  }
});
