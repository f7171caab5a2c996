import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { metricValue } from '@qpq/testnet';
import { Telemetry } from './telemetry.js';

setFlagsFromString('--expose-gc');
const forceGc = runInNewContext('gc') as () => void;

/** A major GC once the buffers freed by the one before are swept (V8 sweeps them concurrently). */
async function gc(): Promise<void> {
  forceGc();
  await new Promise((r) => setTimeout(r, 50));
  forceGc();
  await new Promise((r) => setImmediate(r));
}

let telemetry: Telemetry;
let server: Server;
let address: string;

before(async () => {
  telemetry = Telemetry.start('process-metrics-test');
  server = createServer((req, res) => telemetry.serveMetrics(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.close();
  await telemetry.shutdown();
});

/** The value of the series of `name` carrying `labels` on the test's /metrics. */
const metric = (name: string, labels: Record<string, string> = {}) => metricValue(address, name, labels);

test('live memory after GC follows what the process holds, not its garbage', async () => {
  await gc();
  const base = (await metric('qpq_nodejs_live_memory_bytes'))!;
  assert.ok(base > 0, 'reported after a major GC');
  const held: { buffer?: Buffer } = { buffer: Buffer.alloc(64 * 1024 * 1024, 1) };
  await gc();
  const holding = (await metric('qpq_nodejs_live_memory_bytes'))!;
  assert.ok(holding - base >= 60 * 1024 * 1024, `holding 64 MiB: ${base} → ${holding}`);
  assert.equal(held.buffer?.at(-1), 1);
  delete held.buffer;
  // Garbage of the same size, never held: the next major GC's figure is back near the start.
  for (let i = 0; i < 64; i++) Buffer.alloc(1024 * 1024, 2);
  await gc();
  const released = (await metric('qpq_nodejs_live_memory_bytes'))!;
  assert.ok(released - base < 16 * 1024 * 1024, `after release: ${base} → ${released}`);
});

test('resident and JS memory, GC pauses by kind and event-loop delay are exported', async () => {
  await gc();
  assert.ok((await metric('qpq_process_resident_memory_bytes'))! > 10 * 1024 * 1024);
  assert.ok((await metric('qpq_nodejs_memory_bytes', { kind: 'heap_used' }))! > 1024 * 1024);
  assert.ok((await metric('qpq_nodejs_memory_bytes', { kind: 'external' }))! > 0);
  assert.ok((await metric('qpq_nodejs_gc_duration_seconds_count', { kind: 'major' }))! >= 1);
  assert.ok((await metric('qpq_nodejs_eventloop_delay_p99_seconds'))! >= 0);
});
