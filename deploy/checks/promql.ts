// Which metrics the Grafana dashboards and Prometheus rules in deploy/grafana/ read, found by parsing every
// PromQL expression with Prometheus's own grammar (@prometheus-io/lezer-promql), so that a test can compare
// them with what a running qpq exports on /metrics.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { SyntaxNode } from '@lezer/common';
import { parser } from '@prometheus-io/lezer-promql';
import { parse as parseYaml } from 'yaml';
import { grafanaDir, repoRoot } from '../tools/paths.js';

/** An expression that is not valid PromQL (after Grafana variables were substituted). */
export class PromqlSyntaxError extends Error {
  override readonly name = 'PromqlSyntaxError';
}

export interface LabelMatcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

/** One vector selector: `metric{label="value", …}` or `{__name__="metric", …}`. */
export interface Selector {
  /** Metric names the selector can match (empty for a selector such as `{job="x"}`). */
  metrics: string[];
  matchers: LabelMatcher[];
  /** The selector's source text. */
  text: string;
}

/** An expression together with where it was found, for error messages. */
export interface LocatedExpression {
  expr: string;
  where: string;
}

/**
 * Series that Prometheus writes itself for every scrape or rule evaluation: a running qpq cannot export them,
 * yet rules may rely on them (`up == 0`).
 */
export const PROMETHEUS_SYNTHETIC_METRICS: ReadonlySet<string> = new Set([
  'up',
  'scrape_duration_seconds',
  'scrape_samples_scraped',
  'scrape_samples_post_metric_relabeling',
  'scrape_series_added',
  'ALERTS',
  'ALERTS_FOR_STATE',
]);

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const;

/**
 * The vector selectors of a PromQL expression.
 *
 * @example
 * selectors('sum(rate(qpq_x_total{code!="OK"}[5m]))')[0].metrics // ['qpq_x_total']
 */
export function selectors(expr: string): Selector[] {
  const tree = parser.parse(expr);
  const found: Selector[] = [];
  const cursor = tree.cursor();
  do {
    if (cursor.type.isError) {
      const near = expr.slice(Math.max(0, cursor.from - 20), cursor.to + 20);
      throw new PromqlSyntaxError(`invalid PromQL at offset ${cursor.from} (near \`${near}\`) in: ${expr}`);
    }
    if (cursor.name === 'VectorSelector') found.push(readSelector(cursor.node, expr));
  } while (cursor.next());
  return found;
}

/** Metric names a PromQL expression reads, in order of appearance, without duplicates. */
export function metricsInExpr(expr: string): string[] {
  return [...new Set(selectors(expr).flatMap((s) => s.metrics))];
}

function readSelector(node: SyntaxNode, expr: string): Selector {
  const text = (n: SyntaxNode) => expr.slice(n.from, n.to);
  const metrics: string[] = [];
  const matchers: LabelMatcher[] = [];
  const identifier = node.getChild('Identifier');
  if (identifier) metrics.push(text(identifier));
  for (const child of node.getChild('LabelMatchers')?.getChildren('QuotedLabelName') ?? []) {
    // `{"metric.with.dots", job="x"}`: a quoted name alone is the metric name (Prometheus 3 UTF-8 names).
    metrics.push(unquote(text(child)));
  }
  const matcherNodes = [
    ...(node.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? []),
    ...(node.getChild('LabelMatchers')?.getChildren('QuotedLabelMatcher') ?? []),
  ].sort((a, b) => a.from - b.from);
  for (const matcher of matcherNodes) {
    const labelNode = matcher.getChild('LabelName') ?? matcher.getChild('QuotedLabelName');
    const opNode = matcher.getChild('MatchOp');
    const valueNode = matcher.getChild('StringLiteral');
    if (!labelNode || !opNode || !valueNode) continue;
    const label = labelNode.name === 'QuotedLabelName' ? unquote(text(labelNode)) : text(labelNode);
    const m: LabelMatcher = { label, op: text(opNode) as LabelMatcher['op'], value: unquote(text(valueNode)) };
    matchers.push(m);
    if (label === '__name__') metrics.push(...namesMatchedBy(m, expr));
  }
  return { metrics, matchers, text: text(node) };
}

function namesMatchedBy(matcher: LabelMatcher, expr: string): string[] {
  if (matcher.op === '=') return [matcher.value];
  if (matcher.op === '=~' && /^[a-zA-Z_:][a-zA-Z0-9_:]*(\|[a-zA-Z_:][a-zA-Z0-9_:]*)*$/.test(matcher.value)) {
    return matcher.value.split('|');
  }
  if (matcher.op === '=~') {
    throw new PromqlSyntaxError(
      `__name__=~"${matcher.value}" is not a plain list of names (a|b|c); name the metrics explicitly in: ${expr}`,
    );
  }
  return []; // a negative matcher reads no particular metric
}

function unquote(literal: string): string {
  const quote = literal[0];
  const body = literal.slice(1, -1);
  if (quote === '`') return body;
  return body.replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r' })[c] ?? c);
}

// ---------------------------------------------------------------------------------------------------------
// Grafana variables: queries hold `$__rate_interval`, `$namespace`, `${namespace:regex}`, `[[var]]`, which are
// not PromQL. Inside string literals they are harmless text; elsewhere they become a value of the right kind.

const GRAFANA_DURATIONS = new Set(['__interval', '__rate_interval', '__range', '__auto']);
const GRAFANA_NUMBERS = new Set(['__interval_ms', '__rate_interval_ms', '__range_s', '__range_ms', '__from', '__to']);
const VARIABLE = /\$\{([A-Za-z0-9_]+)(?:[.:][^}]*)?\}|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]|\$([A-Za-z0-9_]+)/y;

/**
 * Replaces Grafana variables outside PromQL string literals: built-in intervals by `5m`, built-in numbers by
 * `300`, dashboard variables by their current value from `values`. Throws for an unknown variable there.
 */
export function substituteGrafanaVariables(expr: string, values: ReadonlyMap<string, string> = new Map()): string {
  let out = '';
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (c === '"' || c === "'" || c === '`') {
      const end = stringEnd(expr, i);
      out += expr.slice(i, end);
      i = end;
      continue;
    }
    if (c === '$' || (c === '[' && expr[i + 1] === '[')) {
      VARIABLE.lastIndex = i;
      const match = VARIABLE.exec(expr);
      if (match) {
        const name = (match[1] ?? match[2] ?? match[3])!;
        out += variableValue(name, values, expr);
        i += match[0].length;
        continue;
      }
    }
    out += c;
    i++;
  }
  return out;
}

function stringEnd(expr: string, start: number): number {
  const quote = expr[start];
  for (let i = start + 1; i < expr.length; i++) {
    if (expr[i] === '\\' && quote !== '`') i++;
    else if (expr[i] === quote) return i + 1;
  }
  return expr.length; // unterminated: the parser reports it
}

function variableValue(name: string, values: ReadonlyMap<string, string>, expr: string): string {
  if (GRAFANA_DURATIONS.has(name)) return '5m';
  if (GRAFANA_NUMBERS.has(name)) return '300';
  const value = values.get(name);
  if (value !== undefined) return value;
  throw new PromqlSyntaxError(`Grafana variable $${name} outside a string has no known value in: ${expr}`);
}

// ---------------------------------------------------------------------------------------------------------
// Reading deploy/grafana.

interface GrafanaTarget {
  expr?: unknown;
  refId?: unknown;
}
interface GrafanaPanel {
  id?: unknown;
  title?: unknown;
  targets?: GrafanaTarget[];
  panels?: GrafanaPanel[];
}
interface GrafanaVariable {
  name?: unknown;
  type?: unknown;
  query?: unknown;
  definition?: unknown;
  current?: { value?: unknown };
}
interface GrafanaDashboard {
  panels?: GrafanaPanel[];
  templating?: { list?: GrafanaVariable[] };
  annotations?: { list?: { name?: unknown; expr?: unknown }[] };
}

/** The dashboards in `dir` (every `*.json`), parsed, by file name. */
export function readDashboards(dir = grafanaDir): Map<string, unknown> {
  const dashboards = new Map<string, unknown>();
  for (const name of readdirSync(dir).sort()) {
    if (name.endsWith('.json')) dashboards.set(name, JSON.parse(readFileSync(join(dir, name), 'utf8')) as unknown);
  }
  return dashboards;
}

/**
 * Every PromQL expression of the dashboards in `dir`, Grafana variables substituted: panel targets (rows'
 * nested panels too), annotation queries and query-variable queries (`label_values(metric, label)`,
 * `query_result(expr)`).
 */
export function dashboardExpressions(dir = grafanaDir): LocatedExpression[] {
  const found: LocatedExpression[] = [];
  for (const [file, json] of readDashboards(dir)) {
    const dashboard = json as GrafanaDashboard;
    const source = relative(repoRoot, join(dir, file));
    const variables = dashboard.templating?.list ?? [];
    const values = new Map<string, string>();
    for (const variable of variables) {
      const value = currentValue(variable);
      if (typeof variable.name === 'string' && value !== undefined) values.set(variable.name, value);
    }
    const add = (raw: string, where: string) => {
      if (raw.trim() === '') return;
      found.push({ expr: substituteGrafanaVariables(raw, values), where: `${source}: ${where}` });
    };
    const visit = (panels: GrafanaPanel[] | undefined) => {
      for (const panel of panels ?? []) {
        const title = typeof panel.title === 'string' ? panel.title : `#${String(panel.id)}`;
        for (const target of panel.targets ?? []) {
          if (typeof target.expr === 'string') add(target.expr, `panel "${title}" target ${String(target.refId)}`);
        }
        visit(panel.panels);
      }
    };
    visit(dashboard.panels);
    for (const annotation of dashboard.annotations?.list ?? []) {
      if (typeof annotation.expr === 'string') add(annotation.expr, `annotation "${String(annotation.name)}"`);
    }
    for (const variable of variables) {
      if (variable.type !== 'query') continue;
      const query = variableQuery(variable);
      const expr = query === undefined ? undefined : exprOfVariableQuery(query);
      if (expr !== undefined) add(expr, `variable $${String(variable.name)}`);
    }
  }
  return found;
}

function currentValue(variable: GrafanaVariable): string | undefined {
  const value = variable.current?.value;
  const first = Array.isArray(value) ? (value[0] as unknown) : value;
  return typeof first === 'string' && first !== '$__all' ? first : undefined;
}

function variableQuery(variable: GrafanaVariable): string | undefined {
  const query = variable.query;
  if (typeof query === 'string') return query;
  if (query && typeof query === 'object' && typeof (query as { query?: unknown }).query === 'string') {
    return (query as { query: string }).query;
  }
  return typeof variable.definition === 'string' ? variable.definition : undefined;
}

/** The PromQL inside a Grafana Prometheus variable query, or undefined when it reads no metric. */
export function exprOfVariableQuery(query: string): string | undefined {
  const trimmed = query.trim();
  const labelValues = /^label_values\(\s*(.*)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$/s.exec(trimmed);
  if (labelValues) return labelValues[1];
  if (/^label_values\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$/.test(trimmed)) return undefined; // all series: no metric
  const queryResult = /^query_result\((.*)\)$/s.exec(trimmed);
  if (queryResult) return queryResult[1];
  if (/^(label_names|metrics)\(.*\)$/s.test(trimmed)) return undefined;
  return trimmed; // a plain PromQL query
}

interface RuleFile {
  groups?: { name?: unknown; rules?: { alert?: unknown; record?: unknown; expr?: unknown }[] }[];
}

function readRules(dir: string): { file: string; rules: RuleFile } | undefined {
  const file = join(dir, 'alerts.yaml');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  return { file: relative(repoRoot, file), rules: (parseYaml(text) ?? {}) as RuleFile };
}

/** Every `expr` of the alerting and recording rules in `dir`/alerts.yaml. */
export function ruleExpressions(dir = grafanaDir): LocatedExpression[] {
  const read = readRules(dir);
  if (!read) return [];
  const found: LocatedExpression[] = [];
  for (const group of read.rules.groups ?? []) {
    for (const rule of group.rules ?? []) {
      const kind = rule.alert !== undefined ? `alert ${String(rule.alert)}` : `record ${String(rule.record)}`;
      const expr = typeof rule.expr === 'number' ? String(rule.expr) : rule.expr;
      if (typeof expr === 'string') found.push({ expr, where: `${read.file}: group ${String(group.name)} ${kind}` });
    }
  }
  return found;
}

/** Names defined by `record:` rules in `dir`/alerts.yaml: Prometheus computes them, nothing exports them. */
export function recordedMetrics(dir = grafanaDir): Set<string> {
  const recorded = new Set<string>();
  for (const group of readRules(dir)?.rules.groups ?? []) {
    for (const rule of group.rules ?? []) if (typeof rule.record === 'string') recorded.add(rule.record);
  }
  return recorded;
}

/**
 * Every metric read by a dashboard or rule in `dir`, with where each is read.
 * Throws PromqlSyntaxError for an expression that does not parse.
 */
export function metricsUsed(dir = grafanaDir): Map<string, string[]> {
  const used = new Map<string, string[]>();
  for (const { expr, where } of [...dashboardExpressions(dir), ...ruleExpressions(dir)]) {
    let metrics: string[];
    try {
      metrics = metricsInExpr(expr);
    } catch (error) {
      throw new PromqlSyntaxError(`${where}: ${(error as Error).message}`, { cause: error });
    }
    for (const metric of metrics) {
      const places = used.get(metric) ?? [];
      if (!places.includes(where)) places.push(where);
      used.set(metric, places);
    }
  }
  return used;
}

/**
 * The metrics read in `dir` that are not in `exported` (names of series or metric families scraped from
 * /metrics), with where each is read. Recording-rule outputs and series Prometheus writes itself are not
 * required; `x_bucket`, `x_sum` and `x_count` are satisfied by a histogram family `x`.
 *
 * @example
 * const missing = missingMetrics(exportedMetrics(await (await fetch(url)).text()));
 */
export function missingMetrics(
  exported: ReadonlySet<string>,
  used: ReadonlyMap<string, string[]> = metricsUsed(),
  recorded: ReadonlySet<string> = recordedMetrics(),
): Map<string, string[]> {
  const missing = new Map<string, string[]>();
  for (const [metric, where] of used) {
    if (recorded.has(metric) || PROMETHEUS_SYNTHETIC_METRICS.has(metric) || exported.has(metric)) continue;
    const suffix = HISTOGRAM_SUFFIXES.find((s) => metric.endsWith(s));
    if (suffix && exported.has(metric.slice(0, -suffix.length))) continue;
    missing.set(metric, where);
  }
  return missing;
}

/** Metric names in a Prometheus text exposition: every sample's name and every `# TYPE` family name. */
export function exportedMetrics(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const type = /^# TYPE (\S+) \S+/.exec(line);
    if (type) names.add(type[1]!);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{\s]/.exec(line);
    if (sample) names.add(sample[1]!);
  }
  return names;
}
