// Reads the Dockerfile's stages, so the staged images run with the configuration the real images
// carry (ENTRYPOINT, ENV, USER, WORKDIR, EXPOSE) instead of a copy of it kept here.
import { posix } from 'node:path';

export interface Instruction {
  /** Upper case: FROM, RUN, COPY, ENV, … */
  readonly keyword: string;
  /** Everything after the keyword, continuation lines joined. */
  readonly rest: string;
  readonly line: number;
}

export interface Stage {
  /** `FROM <base> AS <name>`; unnamed stages get their index. */
  readonly name: string;
  readonly base: string;
  readonly instructions: readonly Instruction[];
}

export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  readonly globalArgs: ReadonlyMap<string, string>;
  readonly stages: readonly Stage[];
}

/** A COPY from another stage: `COPY --from=<stage> <sources…> <dest>`. */
export interface StageCopy {
  readonly from: string;
  readonly sources: readonly string[];
  readonly dest: string;
}

/** What `docker run` of a final stage starts with, as far as qpq's images use it. */
export interface ImageConfig {
  readonly target: string;
  /** The external image at the bottom of the stage chain (after ARG substitution). */
  readonly baseImage: string;
  readonly workdir: string;
  /** `USER` as written, e.g. "10001:10001"; '' when never set. */
  readonly user: string;
  readonly env: Readonly<Record<string, string>>;
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  /** e.g. ["7000/udp", "9100/tcp"]; a bare port means tcp. */
  readonly exposed: readonly string[];
  /** COPY --from lines of the whole stage chain, in order. */
  readonly copies: readonly StageCopy[];
}

export class DockerfileError extends Error {
  override readonly name = 'DockerfileError';
}

/** Splits a Dockerfile into instructions: comments dropped, `\` continuations joined. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    if (pending === '' && (line.trim() === '' || line.trim().startsWith('#'))) return;
    if (pending !== '' && line.trim().startsWith('#')) return; // comments inside a continued instruction
    if (pending === '') start = index + 1;
    const continued = line.endsWith('\\');
    pending += `${continued ? line.slice(0, -1) : line} `;
    if (continued) return;
    const text = pending.trim();
    pending = '';
    const match = /^(\S+)\s*(.*)$/.exec(text);
    if (match) out.push({ keyword: (match[1] as string).toUpperCase(), rest: match[2] as string, line: start });
  });
  if (pending.trim() !== '') throw new DockerfileError('the Dockerfile ends inside a continued instruction');
  return out;
}

/** `${NAME}` / `$NAME` from `vars`, as Docker substitutes FROM and ENV values. */
function substitute(value: string, vars: ReadonlyMap<string, string>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a?: string, b?: string) => {
    return vars.get((a ?? b) as string) ?? '';
  });
}

export function parseDockerfile(text: string): Dockerfile {
  const globalArgs = new Map<string, string>();
  const stages: { name: string; base: string; instructions: Instruction[] }[] = [];
  for (const ins of instructions(text)) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.rest);
      if (!m) throw new DockerfileError(`line ${ins.line}: cannot read FROM ${ins.rest}`);
      stages.push({ base: m[1] as string, name: (m[2] ?? String(stages.length)).toLowerCase(), instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new DockerfileError(`line ${ins.line}: only ARG may come before FROM`);
      const [name, value = ''] = ins.rest.split('=', 2) as [string, string?];
      globalArgs.set(name.trim(), value.trim().replace(/^"(.*)"$/, '$1'));
    } else {
      (stages[stages.length - 1] as { instructions: Instruction[] }).instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** `ENV a=1 b="two words"` (or the old `ENV a 1`) as pairs. */
function envPairs(rest: string, line: number): [string, string][] {
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(rest)) {
    const m = /^(\S+)\s+(.*)$/.exec(rest);
    if (!m) throw new DockerfileError(`line ${line}: cannot read ENV ${rest}`);
    return [[m[1] as string, m[2] as string]];
  }
  const pairs: [string, string][] = [];
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)\s*/y;
  for (let pos = 0; pos < rest.length; pos = re.lastIndex) {
    re.lastIndex = pos;
    const m = re.exec(rest);
    if (!m || m[0] === '') throw new DockerfileError(`line ${line}: cannot read ENV ${rest}`);
    const raw = m[2] as string;
    pairs.push([m[1] as string, raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw]);
  }
  return pairs;
}

/** ENTRYPOINT/CMD in exec form (JSON); the shell form is refused: signals would reach a shell. */
function execForm(ins: Instruction): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(ins.rest);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) {
    throw new DockerfileError(`line ${ins.line}: ${ins.keyword} must be in exec form (a JSON array)`);
  }
  return parsed;
}

function stageCopy(ins: Instruction): StageCopy | undefined {
  const words = ins.rest.split(/\s+/).filter(Boolean);
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  if (from === undefined) return undefined;
  if (paths.length < 2) throw new DockerfileError(`line ${ins.line}: cannot read COPY ${ins.rest}`);
  return { from: from.toLowerCase(), sources: paths.slice(0, -1), dest: paths[paths.length - 1] as string };
}

/** The configuration of stage `target` with everything it inherits from the stages below it. */
export function imageConfig(file: Dockerfile, target: string): ImageConfig {
  const chain: Stage[] = [];
  for (let name: string | undefined = target.toLowerCase(); name !== undefined;) {
    const stage = file.stages.find((s) => s.name === name);
    if (!stage) {
      if (chain.length === 0) throw new DockerfileError(`the Dockerfile has no stage ${target}`);
      break;
    }
    if (chain.includes(stage)) throw new DockerfileError(`stage ${name} is its own base`);
    chain.unshift(stage);
    name = file.stages.some((s) => s.name === stage.base.toLowerCase()) ? stage.base.toLowerCase() : undefined;
  }
  const env: Record<string, string> = {};
  const exposed: string[] = [];
  const copies: StageCopy[] = [];
  let workdir = '/';
  let user = '';
  let entrypoint: string[] = [];
  let cmd: string[] = [];
  for (const stage of chain) {
    for (const ins of stage.instructions) {
      const vars = new Map([...file.globalArgs, ...Object.entries(env)]);
      switch (ins.keyword) {
        case 'ENV':
          for (const [k, v] of envPairs(ins.rest, ins.line)) env[k] = substitute(v, vars);
          break;
        case 'WORKDIR':
          workdir = posix.resolve(workdir, substitute(ins.rest.trim(), vars));
          break;
        case 'USER':
          user = ins.rest.trim();
          break;
        case 'EXPOSE':
          for (const p of ins.rest.split(/\s+/).filter(Boolean)) exposed.push(p.includes('/') ? p : `${p}/tcp`);
          break;
        case 'ENTRYPOINT':
          entrypoint = execForm(ins);
          cmd = []; // Docker drops an inherited CMD when ENTRYPOINT is set
          break;
        case 'CMD':
          cmd = execForm(ins);
          break;
        case 'COPY': {
          const copy = stageCopy(ins);
          if (copy) copies.push(copy);
          break;
        }
      }
    }
  }
  const bottom = chain[0] as Stage;
  return {
    target,
    baseImage: substitute(bottom.base, file.globalArgs),
    workdir,
    user,
    env,
    entrypoint,
    cmd,
    exposed,
    copies,
  };
}

/** Final stages: those no other stage builds on or copies from (the images one would push). */
export function finalStages(file: Dockerfile): string[] {
  const used = new Set<string>();
  for (const stage of file.stages) {
    used.add(stage.base.toLowerCase());
    for (const ins of stage.instructions) {
      const from = ins.keyword === 'COPY' ? stageCopy(ins)?.from : undefined;
      if (from) used.add(from);
    }
  }
  return file.stages.map((s) => s.name).filter((name) => !used.has(name));
}
