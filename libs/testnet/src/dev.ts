/**
 * `npm run dev` (through scripts/dev.mjs): the whole system on this machine on the fixed laptop
 * ports (see FIXED_PORTS), with its state in devDir() so accounts and the CA survive restarts.
 * Ctrl-C or SIGTERM stops everything, Postgres and NATS included, and exits 0.
 */
import { join } from 'node:path';
import { devDir } from './dev-dir.js';
import { TestNetwork } from './network.js';
import { PortInUseError } from './ports.js';

/** Beyond destroy()'s own 20 s bound: if something still hangs, leave rather than wait forever. */
const HARD_EXIT_MS = 25_000;

const say = (line: string) => process.stdout.write(`${line}\n`);
const complain = (line: string) => process.stderr.write(`${line}\n`);

const dir = devDir();
const logDir = join(dir, 'logs');
const abort = new AbortController();
let network: TestNetwork | undefined;
let stopping = false;

async function shutdown(): Promise<never> {
  setTimeout(() => {
    complain('qpq dev: could not stop everything within 25 s; exiting anyway');
    process.exit(1);
  }, HARD_EXIT_MS).unref();
  try {
    await network?.destroy();
  } catch (err) {
    complain(`qpq dev: stopped with errors: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
  say('qpq dev: stopped');
  process.exit(0);
}

function onSignal(signal: NodeJS.Signals): void {
  if (stopping) {
    complain('qpq dev: already stopping (at most 20 s)…');
    return;
  }
  stopping = true;
  say(`qpq dev: ${signal}, stopping…`);
  abort.abort();
  // While booting, create() itself stops what it started once it sees the abort.
  if (network) void shutdown();
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

say(`qpq dev: starting Postgres, NATS, auth, keypackage, delivery, ktlog, blob and the gateway (state in ${dir})…`);
const started = Date.now();
try {
  network = await TestNetwork.create({
    dir,
    logDir,
    ports: 'fixed',
    persistent: true,
    signal: abort.signal,
    onServiceExit: (name, code, signal) =>
      complain(
        `qpq dev: ${name} exited unexpectedly (${signal ?? `exit ${code}`}); see ${join(logDir, `${name}.log`)}`,
      ),
  });
} catch (err) {
  if (stopping) {
    say('qpq dev: stopped');
    process.exit(0);
  }
  if (err instanceof PortInUseError) complain(`qpq dev: ${err.message}`);
  else complain(`qpq dev: failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
if (stopping) await shutdown();

const [gateway] = network.gatewayAddresses;
say(`qpq ready: gateway quic://${gateway} (CA ${network.caPath}, logs ${logDir})`);
say(`qpq dev: up in ${((Date.now() - started) / 1000).toFixed(1)} s; Ctrl-C stops everything`);
