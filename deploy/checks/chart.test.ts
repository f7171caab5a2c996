// The Helm chart (deploy/helm/qpq): lint-clean, every rendered object valid against the Kubernetes schemas,
// and the behaviour the issue asks of it, for the default values, the production-like values and the dev values.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { ensureHelm } from '../tools/helm.js';
import { chartDir, grafanaDir } from '../tools/paths.js';
import { SYNC_COMMAND } from '../tools/sync.js';
import { type K8sObject, lint, objectId, render, type RenderInput, schemaProblems } from './render.js';

const COMPONENTS = ['gateway', 'auth', 'keypackage', 'delivery', 'ktlog', 'blob'] as const;
const WITH_SCHEMA = ['auth', 'keypackage', 'delivery', 'ktlog', 'blob'] as const;
const COMPONENT_LABEL = 'app.kubernetes.io/component';

const productionValues = join(chartDir, 'ci', 'production-values.yaml');
const devValues = ['ci/dev-values.yaml', 'values-dev.yaml', 'ci/values-dev.yaml']
  .map((f) => join(chartDir, f))
  .find((f) => existsSync(f));

const valueSets: { name: string; input: RenderInput }[] = [
  { name: 'default values', input: {} },
  { name: 'ci/production-values.yaml', input: { valuesFiles: [productionValues] } },
  ...(devValues ? [{ name: devValues.slice(chartDir.length + 1), input: { valuesFiles: [devValues] } }] : []),
];
const production: RenderInput = { valuesFiles: [productionValues] };
const STALE_HINT = `differs from deploy/grafana (a stale copy in files/? run \`${SYNC_COMMAND}\`)`;

// ---------------------------------------------------------------------------------------------------------
// Reading rendered objects.

interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  securityContext?: SecurityContext;
  volumeMounts?: { name: string; mountPath: string }[];
  livenessProbe?: { httpGet?: { path?: string; port?: number | string } };
  readinessProbe?: { httpGet?: { path?: string; port?: number | string } };
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  capabilities?: { drop?: string[] };
  seccompProfile?: { type?: string };
}
interface PodSpec {
  automountServiceAccountToken?: boolean;
  securityContext?: SecurityContext;
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; emptyDir?: unknown }[];
}
interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: PodSpec;
}

function podTemplate(object: K8sObject): PodTemplate | undefined {
  const spec = object.spec as Record<string, unknown> | undefined;
  if (!spec) return undefined;
  switch (object.kind) {
    case 'Pod':
      return { metadata: object.metadata, spec: spec as unknown as PodSpec };
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'Job':
      return spec.template as PodTemplate;
    case 'CronJob':
      return ((spec.jobTemplate as { spec: { template: PodTemplate } }) ?? undefined)?.spec.template;
    default:
      return undefined;
  }
}

const ofKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const labelsOf = (o: K8sObject) => o.metadata.labels ?? {};
const hookOf = (o: K8sObject) => (o.metadata.annotations?.['helm.sh/hook'] ?? '').split(',').map((h) => h.trim());

function componentDeployment(objects: K8sObject[], component: string): K8sObject {
  const found = ofKind(objects, 'Deployment').filter((d) => labelsOf(d)[COMPONENT_LABEL] === component);
  assert.equal(
    found.length,
    1,
    `expected one Deployment labelled ${COMPONENT_LABEL}=${component}, found ${found.length}`,
  );
  return found[0]!;
}

function selects(matchLabels: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!matchLabels || Object.keys(matchLabels).length === 0) return false;
  return Object.entries(matchLabels).every(([k, v]) => labels?.[k] === v);
}

function checksumOf(objects: K8sObject[], component: string): string {
  const annotations = podTemplate(componentDeployment(objects, component))?.metadata?.annotations ?? {};
  const checksum = annotations['checksum/config'];
  assert.ok(checksum, `the ${component} pod template has no checksum/config annotation`);
  return checksum;
}

function renderFails(input: RenderInput): Promise<string> {
  return render(input).then(
    () => assert.fail(`rendering with ${JSON.stringify(input.set)} should fail`),
    (error: Error) => error.message,
  );
}

const ed25519Pem = () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

// ---------------------------------------------------------------------------------------------------------

describe('deploy/helm/qpq', () => {
  before(async () => {
    await ensureHelm();
  });

  test('has a values schema and production-like values', () => {
    assert.ok(existsSync(join(chartDir, 'values.schema.json')), 'values.schema.json is missing');
    assert.ok(existsSync(productionValues), 'ci/production-values.yaml is missing');
    assert.ok(existsSync(join(chartDir, 'templates', 'NOTES.txt')), 'templates/NOTES.txt is missing');
  });

  for (const { name, input } of valueSets) {
    describe(name, () => {
      test('helm lint --strict is clean', async () => {
        const output = await lint(input);
        assert.doesNotMatch(output, /\[(WARNING|ERROR)\]/, output);
      });

      test('every rendered object passes the Kubernetes schema of its kind', async () => {
        const objects = await render(input);
        assert.ok(objects.length > 0, 'helm template rendered nothing');
        const problems = (await Promise.all(objects.map(schemaProblems))).flat();
        assert.deepEqual(problems, []);
      });

      test('object names are unique, valid DNS names', async () => {
        const objects = await render(input);
        const seen = new Set<string>();
        for (const object of objects) {
          const id = `${object.apiVersion.split('/')[0]}/${objectId(object)}`;
          assert.ok(!seen.has(id), `${id} is rendered twice`);
          seen.add(id);
          assert.match(object.metadata.name, /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, `${id}: invalid name`);
          if (object.kind === 'Service') assert.ok(object.metadata.name.length <= 63, `${id}: name over 63`);
          for (const [key, value] of Object.entries(labelsOf(object))) {
            assert.match(String(value), /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/, `${id}: label ${key}`);
          }
        }
      });

      test('every pod runs with the secure defaults', async () => {
        const problems: string[] = [];
        for (const object of await render(input)) {
          const template = podTemplate(object);
          if (!template) continue;
          problems.push(...secureDefaultProblems(objectId(object), template.spec));
        }
        assert.deepEqual(problems, []);
      });

      test('every service has a Deployment probed on /healthz and /readyz', async () => {
        const objects = await render(input);
        for (const component of COMPONENTS) {
          const pod = podTemplate(componentDeployment(objects, component))!.spec;
          const main = pod.containers[0]!;
          assert.equal(main.livenessProbe?.httpGet?.path, '/healthz', `${component} liveness probe`);
          assert.equal(main.readinessProbe?.httpGet?.path, '/readyz', `${component} readiness probe`);
        }
      });

      test('every service has a PodDisruptionBudget selecting its pods', async () => {
        const objects = await render(input);
        const pdbs = ofKind(objects, 'PodDisruptionBudget');
        for (const component of COMPONENTS) {
          const labels = podTemplate(componentDeployment(objects, component))?.metadata?.labels;
          const matching = pdbs.filter((p) =>
            selects((p.spec as { selector?: { matchLabels?: Record<string, string> } }).selector?.matchLabels, labels),
          );
          assert.equal(matching.length, 1, `${component}: ${matching.length} PodDisruptionBudgets select its pods`);
        }
      });

      test('a Deployment scaled by an HPA leaves replicas to it', async () => {
        const objects = await render(input);
        for (const hpa of ofKind(objects, 'HorizontalPodAutoscaler')) {
          const target = (hpa.spec as { scaleTargetRef: { kind: string; name: string } }).scaleTargetRef;
          const deployment = objects.find((o) => o.kind === target.kind && o.metadata.name === target.name);
          assert.ok(deployment, `${objectId(hpa)} targets ${target.kind}/${target.name}, which is not rendered`);
          assert.equal((deployment.spec as { replicas?: number }).replicas, undefined, `${objectId(deployment)}`);
        }
      });
    });
  }

  describe('default install', () => {
    test('the gateway Service is a UDP LoadBalancer on port 7000', async () => {
      const services = ofKind(await render(), 'Service').filter((s) => labelsOf(s)[COMPONENT_LABEL] === 'gateway');
      const balancers = services.filter((s) => (s.spec as { type?: string }).type === 'LoadBalancer');
      assert.equal(balancers.length, 1, `gateway LoadBalancer Services: ${balancers.map(objectId).join(', ')}`);
      const ports = (balancers[0]!.spec as { ports: { port: number; protocol?: string }[] }).ports;
      assert.ok(ports.length > 0);
      assert.ok(
        ports.every((p) => p.protocol === 'UDP'),
        `non-UDP port on the gateway LoadBalancer: ${JSON.stringify(ports)}`,
      );
      assert.ok(ports.some((p) => p.port === 7000));
    });

    test('no ServiceMonitor, PrometheusRule, HPA or NetworkPolicy unless asked for', async () => {
      const kinds = new Set((await render()).map((o) => o.kind));
      for (const kind of ['ServiceMonitor', 'PrometheusRule', 'HorizontalPodAutoscaler', 'NetworkPolicy']) {
        assert.ok(!kinds.has(kind), `${kind} rendered with default values`);
      }
    });

    test('bundled NATS keeps JetStream on file storage with fsync always', async () => {
      const objects = await render();
      const text = JSON.stringify(objects.filter((o) => o.kind === 'ConfigMap' || o.kind === 'StatefulSet'));
      assert.match(text, /sync_interval\W+always/, 'no `sync_interval: always` in the bundled NATS config');
      assert.match(text, /store_dir/, 'no JetStream store_dir (file storage) in the bundled NATS config');
    });

    test('a helm test hook is rendered', async () => {
      const tests = (await render()).filter((o) => hookOf(o).includes('test'));
      assert.ok(tests.length > 0, 'no object with helm.sh/hook: test');
    });

    test('schema migrations run as hook Jobs before upgrades', async () => {
      const jobs = ofKind(await render(), 'Job').filter((j) => hookOf(j).includes('pre-upgrade'));
      for (const component of WITH_SCHEMA) {
        const migrating = jobs.filter((j) => {
          const text = JSON.stringify(j.spec);
          return text.includes('migrate') && text.includes(`services/${component}/`);
        });
        assert.ok(migrating.length > 0, `no pre-upgrade hook Job migrates ${component}`);
      }
    });

    test('values.schema.json rejects a misspelt key', async () => {
      const message = await renderFails({ set: ['gateway.replicass=2'] });
      assert.match(message, /replicass|additional/i);
    });
  });

  describe('config checksum', () => {
    test('is the same for the same config, even when other values change', async () => {
      const first = await render();
      const again = await render({ set: ['gateway.replicas=2', 'auth.resources.limits.memory=600Mi'] });
      for (const component of COMPONENTS) {
        assert.equal(checksumOf(again, component), checksumOf(first, component), component);
      }
    });

    test('changes on every pod when a shared config value changes', async () => {
      const before = await render();
      const after = await render({ set: ['config.QPQ_LOG_LEVEL=debug'] });
      for (const component of COMPONENTS) {
        assert.notEqual(checksumOf(after, component), checksumOf(before, component), component);
      }
    });

    test("changes on a service's pods when its own config changes", async () => {
      const before = await render();
      const after = await render({ set: ['delivery.config.QPQ_MESSAGE_TTL=7d'] });
      assert.notEqual(checksumOf(after, 'delivery'), checksumOf(before, 'delivery'));
    });
  });

  describe('secrets: created by the chart or taken from an existing Secret, never both', () => {
    const pem = ed25519Pem();
    const cases: [string, string[], string[]][] = [
      ['app keys', ['secrets.existingSecret=my-keys'], [`secrets.ktlogSigningKey=${pem}`]],
      [
        'external Postgres',
        ['postgresql.mode=external', 'postgresql.external.existingSecret=my-pg'],
        ['postgresql.mode=external', 'postgresql.external.url=postgres://qpq:pw@db:5432/qpq'],
      ],
      [
        'external NATS',
        ['nats.mode=external', 'nats.external.existingSecret=my-nats'],
        ['nats.mode=external', 'nats.external.url=nats://nats:4222'],
      ],
      [
        'bundled Postgres password',
        ['postgresql.bundled.auth.existingSecret=my-pg-password'],
        ['postgresql.bundled.auth.password=hunter2hunter2'],
      ],
    ];
    for (const [name, existing, inline] of cases) {
      test(name, async () => {
        await render({ set: existing });
        await render({ set: inline });
        const message = await renderFails({ set: [...existing, ...inline] });
        assert.match(message, /existingSecret|both/i, message);
      });
    }

    test('with existingSecret the pods read it and the chart holds no app keys', async () => {
      const objects = await render({ set: ['secrets.existingSecret=my-keys'] });
      const values = parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as {
        secrets: { existingSecretKeys: Record<string, string> };
      };
      const keyNames = Object.values(values.secrets.existingSecretKeys);
      for (const secret of ofKind(objects, 'Secret')) {
        const keys = Object.keys({ ...(secret.data as object), ...(secret.stringData as object) });
        const held = keys.filter((k) => keyNames.includes(k));
        assert.deepEqual(held, [], `${objectId(secret)} holds ${held.join(', ')} although existingSecret is set`);
      }
      for (const component of ['ktlog', 'delivery']) {
        const pod = JSON.stringify(podTemplate(componentDeployment(objects, component))?.spec);
        assert.ok(pod.includes('"my-keys"'), `${component} pods do not use the existing Secret my-keys`);
      }
    });
  });

  describe('production values', () => {
    test('render a ServiceMonitor that scrapes every service', async () => {
      const objects = await render(production);
      const monitors = ofKind(objects, 'ServiceMonitor');
      assert.ok(monitors.length > 0, 'no ServiceMonitor');
      const services = ofKind(objects, 'Service');
      for (const component of COMPONENTS) {
        const scraped = monitors.some((monitor) => {
          const spec = monitor.spec as {
            selector?: { matchLabels?: Record<string, string> };
            endpoints?: { port?: string; path?: string }[];
          };
          return services.some((service) => {
            if (labelsOf(service)[COMPONENT_LABEL] !== component) return false;
            if (!selects(spec.selector?.matchLabels, labelsOf(service))) return false;
            const ports = (service.spec as { ports?: { name?: string }[] }).ports ?? [];
            return (spec.endpoints ?? []).some(
              (e) => ports.some((p) => p.name === e.port) && (e.path ?? '/metrics') === '/metrics',
            );
          });
        });
        assert.ok(scraped, `no ServiceMonitor endpoint scrapes /metrics of the ${component} Service`);
      }
    });

    test("render a PrometheusRule whose groups are deploy/grafana/alerts.yaml's", async () => {
      const rules = ofKind(await render(production), 'PrometheusRule');
      assert.equal(rules.length, 1, `${rules.length} PrometheusRules`);
      const source = parse(readFileSync(join(grafanaDir, 'alerts.yaml'), 'utf8')) as { groups: unknown };
      assert.deepEqual((rules[0]!.spec as { groups: unknown }).groups, source.groups, STALE_HINT);
    });

    test('render one Grafana dashboard ConfigMap entry per deploy/grafana dashboard, unchanged', async () => {
      const configMaps = ofKind(await render(production), 'ConfigMap').filter(
        (c) => labelsOf(c).grafana_dashboard !== undefined,
      );
      const rendered = new Map<string, unknown>();
      for (const configMap of configMaps) {
        for (const [key, value] of Object.entries((configMap.data ?? {}) as Record<string, string>)) {
          rendered.set(key, JSON.parse(value));
        }
      }
      const sources = readdirSync(grafanaDir).filter((f) => f.endsWith('.json'));
      assert.deepEqual([...rendered.keys()].sort(), sources.sort());
      for (const file of sources) {
        const source = JSON.parse(readFileSync(join(grafanaDir, file), 'utf8')) as unknown;
        assert.deepEqual(rendered.get(file), source, `${file}: ${STALE_HINT}`);
      }
    });

    test('every service has a NetworkPolicy and autoscaling is on', async () => {
      const objects = await render(production);
      const policies = ofKind(objects, 'NetworkPolicy');
      for (const component of COMPONENTS) {
        const labels = podTemplate(componentDeployment(objects, component))?.metadata?.labels;
        const selecting = policies.filter((p) =>
          selects(
            (p.spec as { podSelector?: { matchLabels?: Record<string, string> } }).podSelector?.matchLabels,
            labels,
          ),
        );
        assert.ok(selecting.length > 0, `no NetworkPolicy selects the ${component} pods`);
      }
      assert.ok(ofKind(objects, 'HorizontalPodAutoscaler').length > 0, 'no HorizontalPodAutoscaler');
    });

    test('use external Postgres and NATS: nothing bundled', async () => {
      const statefulSets = ofKind(await render(production), 'StatefulSet');
      assert.deepEqual(statefulSets.map(objectId), []);
    });

    test('migrations run as pre-install and pre-upgrade hook Jobs', async () => {
      const jobs = ofKind(await render(production), 'Job').filter(
        (j) => hookOf(j).includes('pre-install') && hookOf(j).includes('pre-upgrade'),
      );
      for (const component of WITH_SCHEMA) {
        const migrating = jobs.filter((j) => {
          const text = JSON.stringify(j.spec);
          return text.includes('migrate') && text.includes(`services/${component}/`);
        });
        assert.ok(migrating.length > 0, `no pre-install,pre-upgrade hook Job migrates ${component}`);
      }
    });
  });
});

/** What a pod spec lacks of the secure defaults the issue asks for, one line per problem. */
function secureDefaultProblems(id: string, pod: PodSpec): string[] {
  const problems: string[] = [];
  if (pod.automountServiceAccountToken !== false) problems.push(`${id}: automountServiceAccountToken is not false`);
  const emptyDirs = new Set((pod.volumes ?? []).filter((v) => v.emptyDir !== undefined).map((v) => v.name));
  for (const container of [...(pod.initContainers ?? []), ...pod.containers]) {
    const where = `${id} container ${container.name}`;
    const own = container.securityContext ?? {};
    const podLevel = pod.securityContext ?? {};
    if ((own.runAsNonRoot ?? podLevel.runAsNonRoot) !== true) problems.push(`${where}: runAsNonRoot is not true`);
    if ((own.seccompProfile ?? podLevel.seccompProfile)?.type !== 'RuntimeDefault') {
      problems.push(`${where}: seccompProfile is not RuntimeDefault`);
    }
    if (own.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem is not true`);
    if (own.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation is not false`);
    if (own.privileged === true) problems.push(`${where}: privileged`);
    if (!own.capabilities?.drop?.includes('ALL')) problems.push(`${where}: capabilities.drop lacks ALL`);
    const tmp = (container.volumeMounts ?? []).find((m) => m.mountPath === '/tmp');
    if (!tmp || !emptyDirs.has(tmp.name)) problems.push(`${where}: /tmp is not an emptyDir`);
  }
  return problems;
}
