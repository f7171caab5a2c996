// `node --import tsx tests/bench/src/profile-summary.ts <file.cpuprofile>… [--top N]`: where a
// process spent its time, from V8 CPU profiles (`node --cpu-prof`): self time by function and by
// package, in % of the profile's wall time, so "(idle)" shows how much of it waited. Used to write
// docs/performance.md; a profile of the bench's own process mixes every scenario it ran.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

/** The parts of a V8 .cpuprofile this reads. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  /** `function (file:line)` or a V8 pseudo-node such as `(idle)`. */
  key: string;
  micros: number;
}

/** Where a script belongs: an npm package, a workspace directory, Node itself, or a V8 pseudo-node. */
export function packageOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node:internal';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const ws = /\/(libs|services|clients|tests)\/([^/]+)\//.exec(url);
  return ws ? `${ws[1]}/${ws[2]}` : url;
}

/** Self time per function and per package, largest first; and the profile's total. */
export function selfTimes(profile: CpuProfile): { total: number; byFunction: SelfTime[]; byPackage: SelfTime[] } {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    // A sample's time is the delta to the next one; the last sample's is unknown and skipped.
    const micros = profile.timeDeltas[i + 1];
    const frame = nodes.get(id);
    if (micros === undefined || !frame) return;
    total += micros;
    const where = frame.url === '' ? '' : ` (${basename(frame.url)}:${frame.lineNumber + 1})`;
    const fn = `${frame.functionName || '(anonymous)'}${where}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + micros);
    const pkg = packageOf(frame.url, frame.functionName);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + micros);
  });
  const sorted = (m: Map<string, number>) =>
    [...m].map(([key, micros]) => ({ key, micros })).sort((a, b) => b.micros - a.micros);
  return { total, byFunction: sorted(byFunction), byPackage: sorted(byPackage) };
}

function main(): void {
  const { values, positionals } = parseArgs({
    options: { top: { type: 'string', default: '15' } },
    allowPositionals: true,
  });
  const top = Number(values.top);
  for (const file of positionals) {
    const { total, byFunction, byPackage } = selfTimes(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
    const pct = (m: number) => `${((m / total) * 100).toFixed(1).padStart(5)} %`;
    const busy = total - (byPackage.find((p) => p.key === '(idle)')?.micros ?? 0);
    process.stdout.write(`\n${file}: ${(total / 1e6).toFixed(1)} s sampled, ${pct(busy)} busy\n  by package:\n`);
    for (const p of byPackage.slice(0, top)) process.stdout.write(`    ${pct(p.micros)}  ${p.key}\n`);
    process.stdout.write('  by function:\n');
    for (const f of byFunction.slice(0, top)) process.stdout.write(`    ${pct(f.micros)}  ${f.key}\n`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
