// Benchmark of the crypto core: `npx tsx libs/crypto/src/benchmark.ts [out.json]`.
// Each figure is measured beside its baseline, raw ts-mls on in-memory state, so the ratio (the cost of
// going through bytes on every call) survives a noisy machine.
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import {
  createApplicationMessage,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  processMessage as mlsProcessMessage,
  acceptAll,
} from 'ts-mls';
import { encryptMessage, processMessage } from './group.js';
import { decodeState } from './group-state.js';
import { generateKeyPackages } from './key-packages.js';
import { decodeMlsMessageExact } from './mls-message.js';
import { cipherSuite } from './suite.js';
import { twoMemberGroup } from './test-fixtures.js';

const ROUNDS = 5;
const MESSAGES = 200;

async function timeMs(run: () => Promise<void>, times: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < times; i++) await run();
  return (performance.now() - start) / times;
}

const cs = await cipherSuite();
const { alice, aliceState, bobState } = await twoMemberGroup(); // also warms up the suite
const keyPair = { signKey: alice.keys.signaturePrivateKey, publicKey: alice.keys.signaturePublicKey };
const credential = { credentialType: 'basic' as const, identity: new TextEncoder().encode(alice.identity) };

const kpOurs = await timeMs(async () => void (await generateKeyPackages(alice.keys, alice.identity, 10)), ROUNDS);
const kpBase = await timeMs(async () => {
  for (let i = 0; i < 10; i++) {
    await generateKeyPackageWithKey(credential, defaultCapabilities(), defaultLifetime, [], keyPair, cs);
  }
}, ROUNDS);

const payload = new TextEncoder().encode('x'.repeat(100));

// Ours: state bytes in, state bytes out, as the SDK uses it.
let a = aliceState;
let b = bobState;
let encOurs = 0;
let decOurs = 0;
for (let i = 0; i < MESSAGES; i++) {
  let t = performance.now();
  const sent = await encryptMessage(a, payload);
  encOurs += performance.now() - t;
  a = sent.state;
  t = performance.now();
  const got = await processMessage(b, sent.message);
  decOurs += performance.now() - t;
  b = got.state;
}

// Baseline: ts-mls with state kept in memory.
let sa = decodeState(a);
let sb = decodeState(b);
let encBase = 0;
let decBase = 0;
for (let i = 0; i < MESSAGES; i++) {
  let t = performance.now();
  const r = await createApplicationMessage(sa, payload, cs);
  const bytes = encodeMlsMessage({
    version: 'mls10',
    wireformat: 'mls_private_message',
    privateMessage: r.privateMessage,
  });
  encBase += performance.now() - t;
  sa = r.newState;
  t = performance.now();
  const m = decodeMlsMessageExact(bytes);
  if (m.wireformat !== 'mls_private_message') throw new Error('unexpected wire format');
  const d = await mlsProcessMessage(m, sb, emptyPskIndex, acceptAll, cs);
  decBase += performance.now() - t;
  sb = d.newState;
}

const rows = [
  { operation: 'generateKeyPackages(10)', ms: kpOurs, baselineMs: kpBase },
  { operation: 'encryptMessage (100 B)', ms: encOurs / MESSAGES, baselineMs: encBase / MESSAGES },
  { operation: 'processMessage (100 B)', ms: decOurs / MESSAGES, baselineMs: decBase / MESSAGES },
].map((r) => ({ ...r, ratio: r.ms / r.baselineMs }));

console.log(`bob state size after ${MESSAGES} received messages: ${b.length} B`);
console.table(
  rows.map((r) => ({ ...r, ms: r.ms.toFixed(2), baselineMs: r.baselineMs.toFixed(2), ratio: r.ratio.toFixed(2) })),
);
const out = process.argv[2];
if (out !== undefined) writeFileSync(out, JSON.stringify({ node: process.version, rows }, null, 2));
