// CPU time of the processes a blob transfer passes through, so a figure can say where its time went
// (the client's QUIC stack, the gateway, the blob service, Postgres). Linux /proc only; elsewhere the
// processes read as 0.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces), or undefined. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** utime + stime + cutime + cstime (fields 14–17 of the line; 11–14 after the name), in ticks. */
const ticksOf = (fields: string[]) => [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);

/**
 * CPU seconds (user + system) that process `pid` and its live direct children have used so far,
 * with their children that exited: for Postgres, the postmaster and its connection backends.
 */
export function cpuSecondsOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const own = statFields(pid);
  if (!own) return 0;
  let ticks = ticksOf(own);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    // Field 4 of the line (1 after the name) is the parent's pid.
    if (fields && Number(fields[1]) === pid) ticks += ticksOf(fields);
  }
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticks / ticksPerSecond;
}

/** CPU seconds of this process (the benchmark, which is the client). */
export function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/**
 * Adds up the CPU seconds some processes spend inside the measured transfers only.
 *
 * @example
 * const cpu = new CpuTally({ client: ownCpuSeconds, gateway: () => cpuSecondsOf(gatewayPid) });
 * const seconds = await cpu.during(() => upload());
 * cpu.msPerMiB(totalBytes); // "client:35 gateway:80"
 */
export class CpuTally {
  private readonly spent = new Map<string, number>();

  constructor(private readonly readers: Record<string, () => number>) {
    for (const name of Object.keys(readers)) this.spent.set(name, 0);
  }

  async during<T>(work: () => Promise<T>): Promise<T> {
    const before = this.read();
    const result = await work();
    const after = this.read();
    for (const [name, at] of after) this.spent.set(name, (this.spent.get(name) ?? 0) + at - (before.get(name) ?? 0));
    return result;
  }

  /** Milliseconds of CPU per MiB moved, per process, e.g. `client:35 gateway:80`. */
  msPerMiB(bytes: number): string {
    const mib = bytes / (1024 * 1024);
    return [...this.spent].map(([name, s]) => `${name}:${Math.round((s * 1000) / mib)}`).join(' ');
  }

  private read(): Map<string, number> {
    return new Map(Object.entries(this.readers).map(([name, read]) => [name, read()]));
  }
}
