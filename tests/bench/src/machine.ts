// The machine a run measured on, written beside its figures: numbers from different machines are
// not comparable, and a reader of latest.json must be able to tell.
import { execFileSync } from 'node:child_process';
import { arch, cpus, platform, release, totalmem } from 'node:os';

export interface MachineInfo {
  cpu_model: string;
  cpu_count: number;
  total_memory_bytes: number;
  node_version: string;
  /** e.g. `linux 6.8.0 x64` */
  os: string;
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpu_model: list[0]?.model.trim() ?? 'unknown',
    cpu_count: list.length,
    total_memory_bytes: totalmem(),
    node_version: process.version,
    os: `${platform()} ${release()} ${arch()}`,
  };
}

/** The commit the working tree is at (`git rev-parse HEAD`), or "unknown" outside a git checkout. */
export function gitCommit(cwd: string): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}
