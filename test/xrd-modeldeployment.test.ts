// The consumer side's declarative files, checked against the code that serves them:
// - every status the ModelDeployment core writes (its goldens) is admitted by the XRD's status
//   schema, and every per-cluster reason it can write is documented there;
// - examples/10-mount-step: the third-party XRD admits its XR, the prerequisites are valid
//   ModelCaches and InferenceClusters (status included), and what the author's first step
//   composes (its patches applied as function-patch-and-transform applies them) is mounted by the
//   mount step, or held back while a cache is not Ready. The conformance render skips this
//   example (its first Function runs from an image), so this is where it is run.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { inferenceClusterSpec } from '../function/api/inferencecluster.js';
import { modelCacheSpec } from '../function/api/modelcache.js';
import { mountStepInput } from '../function/api/mountstep.js';
import {
  CONDITION_CACHES_READY,
  DEPLOY_REASON,
  INPUT_API_VERSION,
  MOUNT_STEP_INPUT_KIND,
  REQUIRE_CACHE_PREFIX,
  REQUIRE_CLUSTERS,
} from '../function/constants.js';
import { isFatal, type CoreRequest, type CoreResponse } from '../function/core.js';
import type { Json } from '../function/k8s/object.js';
import { composeMountStep } from '../function/mountstep/compose.js';
import { admit, properties, readXrdSchema } from './support/cel-admission.js';
import { asArray, asNode, isNode, openApiSchema, readYaml, type Node } from './support/xrd.js';

const root = (relative: string): string =>
  fileURLToPath(new URL(`../${relative}`, import.meta.url));

/** Every document of a multi-document YAML file of the repository. */
function readDocuments(relative: string): Node[] {
  return parseAllDocuments(readFileSync(root(relative), 'utf8')).map((d) =>
    asNode(d.toJS(), relative),
  );
}

const MODEL_DEPLOYMENT = readXrdSchema('apis/modeldeployments/definition.yaml');
const MD_STATUS = properties(MODEL_DEPLOYMENT)['status'] as Node;

describe('ModelDeployment status schema', () => {
  const dir = 'test/golden/modeldeployment';
  const goldens = readdirSync(root(dir))
    .filter((f) => f.endsWith('.json'))
    .sort();

  it('has goldens to check', () => {
    expect(goldens.length).toBeGreaterThan(0);
  });

  it.each(goldens)('admits the status the Function writes in %s', (file) => {
    const golden = asNode(JSON.parse(readFileSync(root(`${dir}/${file}`), 'utf8')), file);
    expect(admit(MD_STATUS, 'status', golden['status'])).toEqual([]);
  });

  it('documents every per-cluster reason the Function can write', () => {
    const clusters = asNode(properties(MD_STATUS)['clusters'], 'clusters');
    const reason = properties(asNode(clusters['items'], 'items'))['reason'];
    const description = String(reason?.['description']).replace(/\s+/g, ' ');
    // Ready and NoEligibleClusters are condition reasons only, never a cluster's.
    const perCluster = Object.values(DEPLOY_REASON).filter(
      (r) => r !== DEPLOY_REASON.Ready && r !== DEPLOY_REASON.NoEligibleClusters,
    );
    expect(perCluster.filter((r) => !new RegExp(`\\b${r}\\b`).test(description))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// examples/10-mount-step

const EXAMPLE = 'examples/10-mount-step';
const exampleXrd = readYaml(`${EXAMPLE}/definition.yaml`);
const xr = readYaml(`${EXAMPLE}/xr.yaml`);
const composition = readYaml(`${EXAMPLE}/composition.yaml`);
const steps = asArray(asNode(composition['spec'], 'spec')['pipeline'], 'pipeline').map((s) =>
  asNode(s, 'step'),
);

/** Path segments of a field path: `a.b[0].c` and `labels[app.kubernetes.io/name]`. */
function segments(path: string): (string | number)[] {
  return [...path.matchAll(/([^.[\]]+)|\[([^\]]+)\]/g)].map((m) => {
    const key = m[1] ?? m[2] ?? '';
    return m[2] !== undefined && /^[0-9]+$/.test(key) ? Number(key) : key;
  });
}

function getPath(value: unknown, path: string): unknown {
  let cur = value;
  for (const s of segments(path)) {
    if (typeof s === 'number') cur = Array.isArray(cur) ? (cur[s] as unknown) : undefined;
    else cur = isNode(cur) ? cur[s] : undefined;
  }
  return cur;
}

function setPath(value: Node, path: string, v: unknown): void {
  const segs = segments(path);
  let cur: unknown = value;
  segs.forEach((s, i) => {
    const last = i === segs.length - 1;
    const container = cur as Record<string | number, unknown>;
    if (last) container[s] = v;
    else {
      container[s] ??= typeof segs[i + 1] === 'number' ? [] : {};
      cur = container[s];
    }
  });
}

/**
 * The first step's desired resources: each base with its FromCompositeFieldPath patches applied
 * (the only patch type the example uses). A patch whose source is absent is skipped, as
 * function-patch-and-transform skips it.
 */
function patchAndTransform(input: Node, composite: Node): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const r of asArray(input['resources'], 'resources').map((x) => asNode(x, 'resource'))) {
    const base = structuredClone(asNode(r['base'], 'base'));
    for (const p of asArray(r['patches'] ?? [], 'patches').map((x) => asNode(x, 'patch'))) {
      expect(p['type']).toBe('FromCompositeFieldPath');
      const value = getPath(composite, String(p['fromFieldPath']));
      if (value !== undefined) setPath(base, String(p['toFieldPath']), value);
    }
    out[String(r['name'])] = base;
  }
  return out;
}

const prerequisites = [
  ...readDocuments(`${EXAMPLE}/prerequisites/modelcaches.yaml`),
  ...readDocuments(`${EXAMPLE}/prerequisites/inferencecluster.yaml`),
];
const requiredOf = (kind: string): Node[] => prerequisites.filter((d) => d['kind'] === kind);

/** What Crossplane hands the mount step, with the caches' phase on us-east overridden. */
function mountRequest(phases: Record<string, string> = {}): CoreRequest {
  const caches = requiredOf('ModelCache').map((c) => {
    const copy = structuredClone(c);
    const name = String(asNode(copy['metadata'], 'metadata')['name']);
    const phase = phases[name];
    if (phase !== undefined) {
      const status = asNode(copy['status'], 'status');
      const entry = asNode(asArray(status['clusters'], 'clusters')[0], 'entry');
      entry['phase'] = phase;
      entry['reason'] = 'Downloading';
      entry['message'] = 'staging';
    }
    return copy;
  });
  const requiredResources: CoreRequest['required'] = {
    [REQUIRE_CLUSTERS]: requiredOf('InferenceCluster'),
  };
  for (const c of caches) {
    requiredResources[
      `${REQUIRE_CACHE_PREFIX}${String(asNode(c['metadata'], 'metadata')['name'])}`
    ] = [c];
  }
  const first = asNode(steps[0]?.['input'], 'input');
  return {
    composite: xr,
    observed: {},
    required: requiredResources,
    input: steps[1]?.['input'],
    desired: patchAndTransform(first, xr),
  };
}

function run(req: CoreRequest): CoreResponse {
  const res = composeMountStep(req);
  if (isFatal(res)) throw new Error(res.fatal);
  return res;
}

describe(EXAMPLE, () => {
  it('the XR is admitted by the third-party XRD', () => {
    const spec = properties(openApiSchema(exampleXrd))['spec'] as Node;
    expect(admit(spec, 'spec', xr['spec'])).toEqual([]);
  });

  it('the prerequisites are valid ModelCaches and InferenceClusters, status included', () => {
    const mc = properties(readXrdSchema('apis/modelcaches/definition.yaml'));
    const ic = properties(readXrdSchema('apis/inferenceclusters/definition.yaml'));
    expect(
      prerequisites.map((d) => {
        const isCache = d['kind'] === 'ModelCache';
        const schema = isCache ? mc : ic;
        return {
          kind: d['kind'],
          spec: admit(schema['spec'] as Node, 'spec', d['spec']),
          status: admit(schema['status'] as Node, 'status', d['status']),
          zod: (isCache ? modelCacheSpec : inferenceClusterSpec).safeParse(d['spec']).success,
        };
      }),
    ).toEqual([
      { kind: 'ModelCache', spec: [], status: [], zod: true },
      { kind: 'ModelCache', spec: [], status: [], zod: true },
      { kind: 'InferenceCluster', spec: [], status: [], zod: true },
    ]);
  });

  it('the Composition runs the author step, then the mount step with an input that parses', () => {
    expect(steps.map((s) => [s['step'], asNode(s['functionRef'], 'ref')['name']])).toEqual([
      ['compose-app', 'function-patch-and-transform'],
      ['mount-caches', 'function-modelcache'],
    ]);
    expect(mountStepInput.parse(steps[1]?.['input'])).toEqual({
      apiVersion: INPUT_API_VERSION,
      kind: MOUNT_STEP_INPUT_KIND,
      cachesFrom: 'spec.models',
      ttlSeconds: 60,
    });
    // cachesFrom names a list of {name} in the XRD.
    const models = asNode(
      properties(properties(openApiSchema(exampleXrd))['spec'] as Node)['models'],
      'models',
    );
    expect([models['type'], asNode(models['items'], 'items')['required']]).toEqual([
      'array',
      ['name'],
    ]);
  });

  it('mounts both caches read-only into the Deployment the first step composed', () => {
    const res = run(mountRequest());
    const ns = 'team-a';
    expect({
      resources: res.resources,
      withheld: res.withheld,
      ready: res.ready,
      conditions: res.conditions,
    }).toEqual({
      resources: {
        server: {
          apiVersion: 'kubernetes.m.crossplane.io/v1alpha1',
          kind: 'Object',
          spec: {
            providerConfigRef: { kind: 'ClusterProviderConfig', name: 'us-east' },
            readiness: {
              policy: 'DeriveFromCelQuery',
              celQuery:
                'has(object.status.availableReplicas) && object.status.availableReplicas >= object.spec.replicas',
            },
            forProvider: {
              manifest: {
                apiVersion: 'apps/v1',
                kind: 'Deployment',
                metadata: { namespace: ns, name: 'chat' },
                spec: {
                  replicas: 2,
                  selector: { matchLabels: { 'app.kubernetes.io/name': 'chat' } },
                  template: {
                    metadata: { labels: { 'app.kubernetes.io/name': 'chat' } },
                    spec: {
                      containers: [
                        {
                          name: 'server',
                          image: 'vllm/vllm-openai:v0.6.3',
                          args: [
                            '--model',
                            '$(MODELCACHE_WEIGHTS_PATH)',
                            '--tokenizer',
                            '$(MODELCACHE_TOKENIZER_PATH)',
                          ],
                          ports: [{ name: 'http', containerPort: 8000 }],
                          volumeMounts: [
                            {
                              name: 'modelcache-llama-3-8b',
                              mountPath: '/mnt/models/llama-3-8b',
                              readOnly: true,
                            },
                            {
                              name: 'modelcache-llama-3-tokenizer',
                              mountPath: '/mnt/tokenizers/llama-3',
                              readOnly: true,
                            },
                          ],
                          env: [
                            { name: 'MODELCACHE_TOKENIZER_PATH', value: '/mnt/tokenizers/llama-3' },
                            { name: 'MODELCACHE_WEIGHTS_PATH', value: '/mnt/models/llama-3-8b' },
                            { name: 'MODELCACHE_PATH_LLAMA_3_8B', value: '/mnt/models/llama-3-8b' },
                            {
                              name: 'MODELCACHE_PATH_LLAMA_3_TOKENIZER',
                              value: '/mnt/tokenizers/llama-3',
                            },
                          ],
                        },
                      ],
                      volumes: [
                        {
                          name: 'modelcache-llama-3-8b',
                          persistentVolumeClaim: {
                            claimName: 'modelcache-llama-3-8b',
                            readOnly: true,
                          },
                        },
                        {
                          name: 'modelcache-llama-3-tokenizer',
                          persistentVolumeClaim: {
                            claimName: 'modelcache-llama-3-tokenizer',
                            readOnly: true,
                          },
                        },
                      ],
                    },
                  },
                },
              },
            },
          },
        },
      },
      withheld: [],
      ready: undefined,
      conditions: [
        {
          type: CONDITION_CACHES_READY,
          status: 'True',
          reason: DEPLOY_REASON.Ready,
          message: 'llama-3-8b, llama-3-tokenizer mounted read-only into 1 workload',
        },
      ],
    });
  });

  it('runs the server in the namespace where the caches put their claims', () => {
    const manifest = getPath(
      run(mountRequest()).resources['server'],
      'spec.forProvider.manifest.metadata.namespace',
    );
    const claimNamespaces = requiredOf('ModelCache').map((c) => getPath(c, 'status.namespace'));
    expect(claimNamespaces).toEqual([manifest, manifest]);
  });

  it('holds the Deployment back while the tokenizer is still Hydrating on its cluster', () => {
    const res = run(mountRequest({ 'llama-3-tokenizer': 'Hydrating' }));
    expect({
      resources: res.resources,
      withheld: res.withheld,
      ready: res.ready,
      conditions: res.conditions,
    }).toEqual({
      resources: {},
      withheld: ['server'],
      ready: false,
      conditions: [
        {
          type: CONDITION_CACHES_READY,
          status: 'False',
          reason: DEPLOY_REASON.WaitingForCache,
          message:
            'holding back server on cluster us-east: cache llama-3-tokenizer is Hydrating on cluster us-east (Downloading)',
        },
      ],
    });
  });
});
