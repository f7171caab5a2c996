import { ConfigError } from './config.js';

export interface Stoppable {
  stop(): Promise<void>;
}

export interface MainOptions {
  /** Migrates the service's database schema and answers the migrations applied (`bin.ts migrate`). */
  migrate?: () => Promise<string[]>;
}

/**
 * The body of every `bin.ts`: build and start the service, stop it on SIGTERM/SIGINT, and turn a
 * configuration error into one clear line per problem (exit code 2) rather than a stack trace.
 * `bin.ts migrate` instead migrates the service's schema and exits (0 when it is up to date).
 */
export async function runMain(name: string, start: () => Promise<Stoppable>, opts: MainOptions = {}): Promise<void> {
  if (process.argv[2] === 'migrate') return migrateAndExit(name, opts.migrate);
  if (process.argv[2] !== undefined) fail(name, 2, `unknown command ${process.argv[2]} (only: migrate)`);
  let service: Stoppable;
  try {
    service = await start();
  } catch (err) {
    if (err instanceof ConfigError) fail(name, 2, err.message);
    fail(name, 1, `failed to start: ${describe(err)}`);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${name}: ${signal}, draining\n`);
    service.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`${name}: stop failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function migrateAndExit(name: string, migrate: MainOptions['migrate']): Promise<never> {
  if (!migrate) fail(name, 2, 'has no database schema to migrate');
  try {
    const applied = await migrate();
    process.stdout.write(`${name}: schema up to date${applied.length ? `; applied ${applied.join(', ')}` : ''}\n`);
    process.exit(0);
  } catch (err) {
    if (err instanceof ConfigError) fail(name, 2, err.message);
    fail(name, 1, `migration failed: ${describe(err)}`);
  }
}

/** An error's message with its causes (a failed migration's reason is in its cause). */
function describe(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e !== undefined && parts.length < 4; e = e instanceof Error ? e.cause : undefined) {
    parts.push(e instanceof Error ? e.message : String(e));
  }
  return parts.join(': ');
}

function fail(name: string, code: number, message: string): never {
  process.stderr.write(`${name}: ${message}\n`);
  process.exit(code);
}
