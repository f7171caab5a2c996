/**
 * The dashboards and alert rules of deploy/grafana read only what a running qpq exports: the whole
 * system is booted (every service its own process, real Postgres, NATS JetStream, QUIC), people use it
 * through the CLI (register, message, file, key-transparency lookup), and every metric named by a
 * PromQL expression there must have samples on some service's /metrics.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportedMetrics, metricsUsed, missingMetrics } from '@qpq/deploy/promql';
import type { TestNetwork } from '@qpq/testnet';
import { bootNetwork, dataDirOf, jsonLines, qpq } from './support.js';

const PASSWORD = 'observability test password';
let net: TestNetwork;

before(async () => {
  net = await bootNetwork();
});
after(async () => {
  await net?.destroy();
});

const cli = (name: string, args: string[]) => qpq(net, dataDirOf(net, name), args);

/** Names with samples on every service's /metrics (a `# TYPE` line alone shows nothing on a panel). */
async function scrapeAll(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const service of net.serviceNames()) {
    const text = await (await fetch(`http://${net.addressOf(service).metrics}/metrics`)).text();
    const samples = text
      .split('\n')
      .filter((line) => !line.startsWith('#'))
      .join('\n');
    for (const name of exportedMetrics(samples)) names.add(name);
  }
  return names;
}

/** Pushes the gateway timed from delivery's acceptance to the client. */
async function pushesTimed(): Promise<number> {
  const text = await (await fetch(`http://${net.addressOf('gateway-0').metrics}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('qpq_gateway_push_latency_seconds_count'));
  return Number(line?.split(' ').at(-1) ?? 0);
}

describe('metrics read by the dashboards and alerts', { timeout: 300_000 }, () => {
  it('are all exported by the running system once people use it', async () => {
    for (const name of ['alice', 'bob']) {
      const res = await cli(name, ['register', '-u', name, '-p', PASSWORD]);
      assert.equal(res.code, 0, res.stderr);
    }
    // Bob online while Alice writes, so a message reaches him as a push (push latency has samples then).
    // `recv --wait` returns with the first message; until his client had attached in time, once more.
    for (let attempt = 1; !(await pushesTimed()); attempt++) {
      assert.ok(attempt <= 5, 'no message reached bob as a push');
      const listening = cli('bob', ['--json', 'recv', '--wait', '15']);
      await new Promise((r) => setTimeout(r, 2_500));
      assert.equal((await cli('alice', ['send', 'bob', `hello, metrics ${attempt}`])).code, 0);
      const live = await listening;
      assert.equal(live.code, 0, live.stderr);
    }
    const file = join(net.dir, 'note.txt');
    await writeFile(file, 'a small file for the blob panels\n');
    const sent = await cli('alice', ['--json', 'send-file', 'bob', file]);
    assert.equal(sent.code, 0, sent.stderr);
    const recv = await cli('bob', ['--json', 'recv', '--wait', '10']);
    assert.equal(recv.code, 0, recv.stderr);
    const fileId = jsonLines(recv.stdout).find((m) => m.file)?.file as { id: string } | undefined;
    assert.ok(fileId, recv.stdout);
    assert.equal((await cli('bob', ['download', fileId.id, '--out', join(net.dir, 'note.received')])).code, 0);
    assert.equal((await cli('bob', ['kt', 'lookup', 'alice'])).code, 0);

    const used = metricsUsed();
    assert.ok(used.size >= 30, `the dashboards and rules read ${used.size} metrics`);
    // Gauges sampled in the background (mailbox backlog, KeyPackage stock, JetStream consumers) show
    // up within one sampling period.
    let missing = missingMetrics(await scrapeAll(), used);
    for (const deadline = Date.now() + 40_000; missing.size > 0 && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 2_000));
      missing = missingMetrics(await scrapeAll(), used);
    }
    const report = [...missing].map(([metric, where]) => `${metric} (read by ${where.slice(0, 3).join('; ')})`);
    assert.deepEqual(report, [], `metrics read in deploy/grafana but not exported:\n${report.join('\n')}`);
    console.log(`${used.size} metrics read by deploy/grafana, every one exported`);
  });
});
