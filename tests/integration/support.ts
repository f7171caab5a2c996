/**
 * What every whole-system test stands on: a TestNetwork (every service its own OS process, real
 * Postgres, NATS JetStream and QUIC), SDK clients, and the real `qpq` command as a subprocess.
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { QpqClient } from '@qpq/sdk';
import { TestNetwork, type TestNetworkOptions } from '@qpq/testnet';

export const repoRoot = join(import.meta.dirname, '..', '..');
const qpqBin = join(repoRoot, 'clients', 'cli', 'bin', 'qpq.mjs');

export async function bootNetwork(opts: TestNetworkOptions = {}): Promise<TestNetwork> {
  return TestNetwork.create(opts);
}

export function dataDirOf(net: TestNetwork, name: string): string {
  return join(net.dir, 'clients', name);
}

/** An SDK client with its own data dir inside the network's folder, talking to gateway `gateway`. */
export async function openClient(net: TestNetwork, name: string, gateway = 0): Promise<QpqClient> {
  const dataDir = dataDirOf(net, name);
  await mkdir(dataDir, { recursive: true });
  return QpqClient.open({ dataDir, server: net.gatewayAddresses[gateway]!, ca: net.caPath });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `qpq` command against the network, as a person or a script would. */
export function qpq(
  net: TestNetwork,
  dataDir: string,
  args: string[],
  gateway = 0,
  timeoutMs = 60_000,
): Promise<CliResult> {
  const globalArgs = ['--server', net.gatewayAddresses[gateway]!, '--ca', net.caPath, '--data-dir', dataDir];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [qpqBin, ...globalArgs, ...args],
      { cwd: repoRoot, timeout: timeoutMs, env: { ...process.env, QPQ_DEBUG: '' } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        // Killed for taking longer than timeoutMs: say so rather than look like a silent failure.
        if (err?.killed) stderr += `\n(test harness: qpq killed after ${timeoutMs} ms)`;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** JSON lines printed by `qpq recv --json`. */
export function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A string no one else would send: what the plaintext searches look for. */
export function marker(label: string): string {
  return `${label}-${Math.random().toString(36).slice(2, 10)}-${Date.now().toString(36)}`;
}
