// The transparency-dev/merkle proof vectors (testdata/, Apache-2.0, source in testdata/README.md):
// every `wantErr: false` case must verify and every `wantErr: true` case must be refused.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { verifyConsistency } from './consistency.js';
import { verifyInclusion } from './inclusion.js';

const testdata = fileURLToPath(new URL('../testdata/', import.meta.url));

interface InclusionVector {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

interface ConsistencyVector {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

function jsonFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory() ? jsonFiles(join(dir, e.name)) : e.name.endsWith('.json') ? [join(dir, e.name)] : [],
    )
    .sort();
}

// Base64 as Go's encoding/json writes []byte; the vectors use it for hashes, including malformed ones.
const bytes = (b64: string): Uint8Array => new Uint8Array(Buffer.from(b64, 'base64'));
// Go writes an empty proof as null. A size past 2^53 (one vector has 2^64 − 1) parses to an unsafe
// number, which the verifiers refuse as they should.
const proofOf = (proof: string[] | null): Uint8Array[] => (proof ?? []).map(bytes);

const inclusionFiles = jsonFiles(join(testdata, 'inclusion'));
const consistencyFiles = jsonFiles(join(testdata, 'consistency'));
const counts = { inclusion: { accepted: 0, rejected: 0 }, consistency: { accepted: 0, rejected: 0 } };

describe('inclusion vectors', () => {
  for (const file of inclusionFiles) {
    const v = JSON.parse(readFileSync(file, 'utf8')) as InclusionVector;
    test(`${relative(testdata, file)}: ${v.wantErr ? 'refused' : 'verifies'}`, () => {
      const ok = verifyInclusion(v.leafIdx, v.treeSize, bytes(v.leafHash), proofOf(v.proof), bytes(v.root));
      assert.equal(ok, !v.wantErr, v.desc);
      counts.inclusion[ok ? 'accepted' : 'rejected']++;
    });
  }
});

describe('consistency vectors', () => {
  for (const file of consistencyFiles) {
    const v = JSON.parse(readFileSync(file, 'utf8')) as ConsistencyVector;
    test(`${relative(testdata, file)}: ${v.wantErr ? 'refused' : 'verifies'}`, () => {
      const ok = verifyConsistency(v.size1, v.size2, bytes(v.root1), bytes(v.root2), proofOf(v.proof));
      assert.equal(ok, !v.wantErr, v.desc);
      counts.consistency[ok ? 'accepted' : 'rejected']++;
    });
  }
});

test('every vector ran, and both outcomes occur in both kinds', () => {
  // 196 files were copied from the source commit; fewer means the fixtures were damaged.
  assert.equal(inclusionFiles.length + consistencyFiles.length, 196);
  for (const [kind, files] of [
    ['inclusion', inclusionFiles],
    ['consistency', consistencyFiles],
  ] as const) {
    const { accepted, rejected } = counts[kind];
    assert.ok(accepted > 0 && rejected > 0, `${kind}: ${accepted} accepted, ${rejected} rejected`);
    assert.equal(accepted + rejected, files.length, `${kind}: every file was checked`);
  }
});

after(() => {
  console.log(
    `merkle vectors: inclusion ${counts.inclusion.accepted} accepted / ${counts.inclusion.rejected} rejected, ` +
      `consistency ${counts.consistency.accepted} accepted / ${counts.consistency.rejected} rejected`,
  );
});
