import assert from 'node:assert/strict';
import { test } from 'node:test';
import { packageOf, selfTimes, type CpuProfile } from './profile-summary.js';

test('packageOf names npm packages (scoped or not), workspace directories, Node and V8 pseudo-nodes', () => {
  assert.equal(packageOf('file:///r/node_modules/@matrixai/quic/dist/QUICConnection.js', 'send'), '@matrixai/quic');
  assert.equal(packageOf('file:///r/node_modules/a/node_modules/ip-num/x.js', 'f'), 'ip-num');
  assert.equal(packageOf('file:///r/libs/wire/src/framing.ts', 'push'), 'libs/wire');
  assert.equal(packageOf('node:dgram', 'doSend'), 'node:internal');
  assert.equal(packageOf('', '(idle)'), '(idle)');
  assert.equal(packageOf('', 'writev'), '(native)');
});

test('selfTimes adds each sample’s time to its function and package, largest first', () => {
  const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 9 });
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(idle)', '') },
      { id: 2, callFrame: frame('send', 'file:///r/node_modules/@matrixai/quic/dist/QUICConnection.js') },
      { id: 3, callFrame: frame('push', 'file:///r/libs/wire/src/framing.ts') },
    ],
    // The time of a sample is the delta to the next one; the last sample's is unknown.
    samples: [2, 2, 3, 1, 3],
    timeDeltas: [0, 100, 50, 30, 20],
  };
  const { total, byFunction, byPackage } = selfTimes(profile);
  assert.equal(total, 200);
  assert.deepEqual(byFunction, [
    { key: 'send (QUICConnection.js:10)', micros: 150 },
    { key: 'push (framing.ts:10)', micros: 30 },
    { key: '(idle)', micros: 20 },
  ]);
  assert.deepEqual(
    byPackage.map((p) => p.key),
    ['@matrixai/quic', 'libs/wire', '(idle)'],
  );
});
