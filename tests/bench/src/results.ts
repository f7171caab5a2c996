// What a run measured: collected as scenarios report them, then printed as a table and written as
// JSON. A figure names its baseline (another figure of the same run) rather than carrying a number,
// so the ratio always compares two measurements taken on the same machine at the same time.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { MachineInfo } from './machine.js';

export type ParamValue = string | number | boolean;

/** One figure as a scenario reports it. */
export interface Measurement {
  /** e.g. `ktlog.append`; unique within a run. */
  name: string;
  value: number;
  /** e.g. `appends/s`, `ms`. */
  unit: string;
  /** What the figure was measured with (sizes, counts), so two runs can be compared fairly. */
  params: Record<string, ParamValue>;
  /** The name of another figure of this run that this one is compared with (ratio = value / its value). */
  baseline?: string;
}

/** One figure as written to latest.json. */
export interface ScenarioRecord {
  name: string;
  value: number;
  unit: string;
  params: Record<string, ParamValue>;
  baseline_name?: string;
  baseline_value?: number;
  ratio?: number;
}

/** The whole of latest.json. */
export interface RunRecord {
  machine: MachineInfo;
  /** `git rev-parse HEAD` of the measured tree. */
  commit: string;
  /** ISO 8601 time the run started. */
  started_at: string;
  quick: boolean;
  scenarios: ScenarioRecord[];
}

/** A figure's baseline is not a figure of the same run: the ratio would mean nothing. */
export class MissingBaselineError extends Error {
  override readonly name = 'MissingBaselineError';
  constructor(figure: string, baseline: string) {
    super(`${figure} names ${baseline} as its baseline, which this run did not measure`);
  }
}

export class Results {
  private readonly measurements: Measurement[] = [];

  /** Adds figures in the order they are to be shown. */
  add(...measurements: Measurement[]): void {
    for (const m of measurements) {
      if (!Number.isFinite(m.value)) throw new Error(`${m.name}: value ${m.value} is not a finite number`);
      if (this.measurements.some((x) => x.name === m.name)) throw new Error(`${m.name} was measured twice`);
      this.measurements.push(m);
    }
  }

  get size(): number {
    return this.measurements.length;
  }

  /** Every figure with its baseline resolved; throws MissingBaselineError for a baseline not measured. */
  records(): ScenarioRecord[] {
    return this.measurements.map((m) => {
      const record: ScenarioRecord = { name: m.name, value: m.value, unit: m.unit, params: m.params };
      if (m.baseline === undefined) return record;
      const base = this.measurements.find((x) => x.name === m.baseline);
      if (!base) throw new MissingBaselineError(m.name, m.baseline);
      return { ...record, baseline_name: base.name, baseline_value: base.value, ratio: ratio(m.value, base.value) };
    });
  }

  toRecord(run: Omit<RunRecord, 'scenarios'>): RunRecord {
    return { ...run, scenarios: this.records() };
  }
}

/** value / baseline; a zero baseline has no meaningful ratio and gives Infinity, which JSON cannot hold. */
export function ratio(value: number, baseline: number): number {
  if (baseline === 0) throw new Error('a baseline of 0 gives no ratio');
  return value / baseline;
}

/** A number as a person reads it in a table: grouped thousands, fewer decimals as it grows. */
export function formatNumber(n: number): string {
  const abs = Math.abs(n);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The run as a plain-text table: name, value, unit, baseline, ratio, params. */
export function formatTable(records: readonly ScenarioRecord[]): string {
  const header = ['name', 'value', 'unit', 'baseline', 'ratio', 'params'];
  const rows = records.map((r) => [
    r.name,
    formatNumber(r.value),
    r.unit,
    r.baseline_name === undefined ? '' : `${r.baseline_name} (${formatNumber(r.baseline_value ?? NaN)})`,
    r.ratio === undefined ? '' : `${r.ratio.toFixed(3)}×`,
    Object.entries(r.params)
      .map(([k, v]) => `${k}=${typeof v === 'number' ? formatParam(v) : String(v)}`)
      .join(' '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  // Numbers right-aligned so magnitudes line up; the last column is left ragged.
  const rightAligned = new Set([1, 4]);
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

// Parameters are mostly counts: shown exactly, with grouping; fractions with at most three decimals.
function formatParam(n: number): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: 3 });
}

/** Writes the run as pretty JSON (creating the folder). */
export async function writeRunRecord(path: string, record: RunRecord): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(record, null, 2)}\n`);
}
