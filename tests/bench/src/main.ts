// `npm run bench [-- --quick] [-- --only <prefix>]`: runs the benchmark scenarios against real
// Postgres, NATS JetStream and services, prints a table and writes results/latest.json. A program,
// not a test: `npm test` never runs it.
import { execFileSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gitCommit, machineInfo } from './machine.js';
import { formatTable, Results, writeRunRecord } from './results.js';
import { RunContext } from './run-context.js';
import { selectScenarios } from './scenario.js';
import { scenarios } from './scenarios/index.js';

const BENCH_DIR = fileURLToPath(new URL('../', import.meta.url));
const RESULTS_FILE = fileURLToPath(new URL('../results/latest.json', import.meta.url));
const LOG_DIR = fileURLToPath(new URL('../results/logs/', import.meta.url));

const USAGE = `usage: npm run bench [-- --quick] [-- --only <prefix>]

  --quick          smaller sizes: about three minutes instead of about ten
  --only <prefix>  only the scenarios whose name starts with <prefix> (or whose figure it names)

scenarios:
${scenarios.map((s) => `  ${s.name.padEnd(18)} ${s.description}`).join('\n')}
`;

async function main(): Promise<number> {
  let args: { quick: boolean; only: string | undefined; help: boolean };
  try {
    const { values } = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    });
    args = { quick: values.quick ?? false, only: values.only, help: values.help ?? false };
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const selected = selectScenarios(scenarios, args.only);
  if (selected.length === 0) {
    process.stderr.write(`no scenario matches --only ${args.only}\n\n${USAGE}`);
    return 2;
  }

  const startedAt = new Date();
  await rm(LOG_DIR, { recursive: true, force: true });
  await mkdir(LOG_DIR, { recursive: true });
  const controller = new AbortController();
  const ctx = new RunContext(args.quick, controller.signal, LOG_DIR);
  let interrupted = false;
  const interrupt = (signal: NodeJS.Signals) => {
    // A second Ctrl-C leaves at once; what was started dies with this process (pdeathsig).
    if (interrupted) process.exit(130);
    interrupted = true;
    ctx.progress(`${signal}: stopping everything the run started`);
    controller.abort();
    void ctx.close().then(
      () => process.exit(130),
      (err: unknown) => {
        process.stderr.write(`${String(err)}\n`);
        process.exit(130);
      },
    );
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);

  const results = new Results();
  let failure: unknown;
  try {
    for (const scenario of selected) {
      ctx.progress(`${scenario.name}${args.quick ? ' (quick)' : ''}`);
      // What earlier scenarios wrote (a million-leaf log, 50 MiB files) is flushed to disk first, so
      // its write-back does not land in this scenario's fsyncs (commit latency).
      execFileSync('sync');
      const started = performance.now();
      results.add(...(await scenario.run(ctx)));
      ctx.progress(`${scenario.name} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
  } catch (err) {
    failure = err;
  }
  try {
    await ctx.close();
  } catch (err) {
    failure ??= err;
  }
  if (interrupted) return 130;
  if (failure) {
    process.stderr.write(
      `bench failed: ${failure instanceof Error ? (failure.stack ?? failure.message) : String(failure)}\n`,
    );
    process.stderr.write(`service logs: ${LOG_DIR}\n`);
    return 1;
  }

  const record = results.toRecord({
    machine: machineInfo(),
    commit: gitCommit(BENCH_DIR),
    started_at: startedAt.toISOString(),
    quick: args.quick,
  });
  await writeRunRecord(RESULTS_FILE, record);
  const seconds = (Date.now() - startedAt.getTime()) / 1000;
  process.stdout.write(`\n${formatTable(record.scenarios)}\n\n`);
  process.stdout.write(
    `${record.machine.cpu_count} × ${record.machine.cpu_model}, node ${record.machine.node_version}, ` +
      `commit ${record.commit.slice(0, 12)}; ${seconds.toFixed(0)} s in all; written to ${RESULTS_FILE}\n`,
  );
  return 0;
}

// Exits explicitly: a client library's idle timer must not keep a finished run alive.
process.exit(await main());
