// What a benchmark scenario is, and what the program hands it. Adding a scenario: write a module under
// scenarios/ whose scenarios implement `Scenario`, and list them in scenarios/index.ts.
import type { Servers } from './servers.js';
import type { Measurement } from './results.js';

export interface Scenario {
  /**
   * A dotted name, e.g. `ktlog.inclusion`; the figures it reports start with it (their baselines may
   * be named otherwise). `--only <prefix>` selects the scenarios whose name starts with the prefix,
   * or that the prefix names a figure of (`--only ktlog.inclusion_ms_1m`).
   */
  readonly name: string;
  /** One line for `--help`. */
  readonly description: string;
  /** Measures; every figure's baseline must be measured by this same call. Throws to abort the run. */
  run(ctx: BenchContext): Promise<Measurement[]>;
}

export interface BenchContext {
  /** `--quick`: smaller sizes so the whole run takes about three minutes; figure names stay honest. */
  readonly quick: boolean;
  /** Aborted on Ctrl-C: long loops check it so the run stops promptly. */
  readonly signal: AbortSignal;
  /** Real Postgres, NATS JetStream and dev certificates, started on first use and shared by all scenarios. */
  servers(): Promise<Servers>;
  /**
   * Registers a cleanup that runs when the run ends however it ends (also on Ctrl-C), newest first.
   * Returns a function that runs it now (once): a scenario releases what it started when done.
   */
  own(cleanup: () => Promise<unknown>): () => Promise<void>;
  /** Folder for the logs of processes a scenario starts (kept after the run). */
  readonly logDir: string;
  /** A progress line on stderr (the table goes to stdout). */
  progress(line: string): void;
}

/**
 * The scenarios `--only <prefix>` selects (all of them without one): those whose name starts with the
 * prefix, and the one whose figures the prefix names (`ktlog.inclusion_ms_1m` → `ktlog.inclusion`).
 */
export function selectScenarios(all: readonly Scenario[], only: string | undefined): Scenario[] {
  if (only === undefined || only === '') return [...all];
  return all.filter((s) => s.name.startsWith(only) || only.startsWith(s.name));
}
