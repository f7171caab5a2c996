// Rendering the chart with the helm binary from tools/helm.ts and checking the result against the
// Kubernetes schemas (kubernetes-models, and @kubernetes-models/prometheus-operator for its CRDs).
import { parseAllDocuments } from 'yaml';
import { ensureHelm } from '../tools/helm.js';
import { run } from '../tools/exec.js';
import { chartDir } from '../tools/paths.js';

export const RELEASE = 'qpq';
export const NAMESPACE = 'qpq';

/** The API groups a cluster with the Prometheus Operator serves, so capability-gated templates render. */
const API_VERSIONS = [
  'monitoring.coreos.com/v1',
  'monitoring.coreos.com/v1/ServiceMonitor',
  'monitoring.coreos.com/v1/PrometheusRule',
];

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

export interface RenderInput {
  /** Values files, relative to the chart or absolute. */
  valuesFiles?: string[];
  /** `--set` arguments. */
  set?: string[];
}

function templateArgs(input: RenderInput): string[] {
  return [
    'template',
    RELEASE,
    chartDir,
    '--namespace',
    NAMESPACE,
    ...API_VERSIONS.flatMap((v) => ['--api-versions', v]),
    ...(input.valuesFiles ?? []).flatMap((f) => ['--values', f]),
    ...(input.set ?? []).flatMap((s) => ['--set', s]),
  ];
}

const renders = new Map<string, Promise<K8sObject[]>>();

/** `helm template` of the chart, parsed; the same input is rendered once per process. */
export function render(input: RenderInput = {}): Promise<K8sObject[]> {
  const key = JSON.stringify(input);
  let result = renders.get(key);
  if (!result) {
    result = renderUncached(input);
    renders.set(key, result);
  }
  return result;
}

async function renderUncached(input: RenderInput): Promise<K8sObject[]> {
  const helm = await ensureHelm();
  const { stdout } = await run(helm, templateArgs(input), { cwd: chartDir, timeoutMs: 120_000 });
  return parseManifests(stdout);
}

/** The objects of a multi-document YAML stream; empty documents are skipped, syntax errors thrown. */
export function parseManifests(text: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`helm rendered invalid YAML: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    objects.push(value as K8sObject);
  }
  return objects;
}

/** `helm lint --strict`; resolves to its output, rejects with it when lint fails. */
export async function lint(input: RenderInput = {}): Promise<string> {
  const helm = await ensureHelm();
  const args = ['lint', '--strict', chartDir, '--namespace', NAMESPACE];
  args.push(...(input.valuesFiles ?? []).flatMap((f) => ['--values', f]));
  args.push(...(input.set ?? []).flatMap((s) => ['--set', s]));
  const { stdout, stderr } = await run(helm, args, { cwd: chartDir, timeoutMs: 120_000 });
  return stdout + stderr;
}

interface Model {
  apiVersion?: string;
  kind?: string;
  validate(): void;
}
type ModelClass = new (data?: unknown) => Model;

/** The kubernetes-models class for an apiVersion/kind, or undefined when no schema package knows it. */
export async function modelFor(apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  if (!/^([a-z0-9.-]+\/)?v[0-9]+((alpha|beta)[0-9]+)?$/.test(apiVersion) || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) {
    return undefined;
  }
  const pkg = apiVersion.startsWith('monitoring.coreos.com/')
    ? '@kubernetes-models/prometheus-operator'
    : 'kubernetes-models';
  let module: Record<string, unknown>;
  try {
    module = (await import(`${pkg}/${apiVersion}/${kind}`)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const Model = module[kind] as ModelClass | undefined;
  // Only top-level resources set apiVersion and kind; `DeploymentSpec` and friends are not objects.
  if (typeof Model !== 'function') return undefined;
  const probe = new Model({});
  return probe.apiVersion === apiVersion && probe.kind === kind ? Model : undefined;
}

/** Schema problems of one rendered object: empty when it is valid. */
export async function schemaProblems(object: K8sObject): Promise<string[]> {
  const id = `${object.kind ?? '?'} ${object.metadata?.name ?? '?'}`;
  const Model = await modelFor(String(object.apiVersion), String(object.kind));
  if (!Model) return [`${id}: no schema for apiVersion ${object.apiVersion} kind ${object.kind}`];
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    return [`${id}: ${(error as Error).message}`];
  }
}

export function objectId(object: K8sObject): string {
  return `${object.kind}/${object.metadata.name}`;
}
