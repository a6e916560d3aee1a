// Generators of odd and malformed requests: valid-looking XRs with one thing wrong,
// arbitrary JSON where objects belong, ints as floats, nulls, huge and unicode strings.
import fc from 'fast-check';
import type { Json } from '../../function/k8s/object.js';
import * as f from '../support/fixtures.js';

const NAMES = ['llama', 'a', 'x'.repeat(253), 'model.v1.2', 'UPPER', '', 'ünïcode', 'a/b', '-x-'];

/** Any JSON value, biased toward the shapes the cores read. */
export const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.constantFrom(null, 0, 1.5, -1, 2 ** 53, '', 'x'.repeat(10_000), '🦙'.repeat(100), [], {}),
);

/** A known-good value at some path replaced by something arbitrary. */
function mutate(value: Json, paths: string[][]): fc.Arbitrary<Json> {
  return fc
    .tuple(fc.constantFrom(...paths), anyJson, fc.boolean())
    .map(([path, replacement, drop]) => {
      const copy = structuredClone(value);
      let node: Record<string, unknown> = copy;
      for (const key of path.slice(0, -1)) {
        const next = node[key];
        if (next === null || typeof next !== 'object' || Array.isArray(next)) return copy;
        node = next as Record<string, unknown>;
      }
      const last = path[path.length - 1] ?? '';
      if (drop) Reflect.deleteProperty(node, last);
      else node[last] = replacement;
      return copy;
    });
}

const MODEL_CACHE_PATHS = [
  ['spec'],
  ['spec', 'artifact'],
  ['spec', 'artifact', 'kind'],
  ['spec', 'artifact', 'source'],
  ['spec', 'artifact', 'source', 'huggingFace'],
  ['spec', 'artifact', 'source', 'huggingFace', 'repo'],
  ['spec', 'artifact', 'source', 'huggingFace', 'revision'],
  ['spec', 'artifact', 'source', 'huggingFace', 'include'],
  ['spec', 'artifact', 'source', 'huggingFace', 'secretRef'],
  ['spec', 'storage'],
  ['spec', 'storage', 'pvc'],
  ['spec', 'storage', 'pvc', 'sizeGiB'],
  ['spec', 'mount'],
  ['spec', 'clusterSelector'],
  ['metadata'],
  ['metadata', 'name'],
  ['metadata', 'namespace'],
  ['metadata', 'annotations'],
  ['status'],
  ['status', 'clusters'],
  ['kind'],
];

export const modelCacheXR: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom(...NAMES).map((name) => f.modelCache(f.HF_WEIGHTS, { name })),
  mutate(
    f.modelCache(f.HF_WEIGHTS, {
      status: {
        clusters: [
          {
            name: 'a',
            phase: 'Ready',
            reason: 'Staged',
            message: '',
            namespace: 'n',
            claimName: 'c',
            identity: 'x',
          },
        ],
      },
    }),
    MODEL_CACHE_PATHS,
  ),
  fc.record({
    apiVersion: fc.constant('modelplane.ai/v1alpha1'),
    kind: fc.constant('ModelCache'),
    metadata: anyJson,
    spec: anyJson,
    status: anyJson,
  }),
);

export const inferenceClusterXR: fc.Arbitrary<Json> = fc.oneof(
  fc
    .constantFrom(...NAMES)
    .map((n) => f.inferenceClusterXR(n, { storageClassName: 'nfs', classExists: true })),
  mutate(f.inferenceClusterXR('c1', { storageClassName: 'nfs' }), [
    ['spec'],
    ['spec', 'providerConfigRef'],
    ['spec', 'providerConfigRef', 'kind'],
    ['spec', 'storage'],
    ['status'],
    ['status', 'storage'],
    ['metadata'],
    ['metadata', 'name'],
  ]),
);

/** Replicas as a cache composes them (with a status), then mutated anywhere it can be. */
export const modelCacheReplicaXR: fc.Arbitrary<Json> = fc.oneof(
  fc
    .constantFrom(...NAMES.filter((n) => !n.includes('/')))
    .map((n) =>
      f.modelCacheReplica(
        f.modelCache(f.HF_WEIGHTS),
        f.inferenceClusterXR(n, { storageClassName: 'nfs', classExists: true }),
      ),
    ),
  mutate(
    f.modelCacheReplica(
      f.modelCache(f.HF_WEIGHTS),
      f.inferenceClusterXR('c1', { storageClassName: 'nfs', classExists: true }),
      {
        phase: 'Ready',
        reason: 'Staged',
        message: '',
        namespace: 'n',
        claimName: 'c',
        identity: 'x',
      },
    ),
    [
      ['spec'],
      ['spec', 'cacheRef'],
      ['spec', 'cluster'],
      ['spec', 'identity'],
      ['spec', 'providerConfigRef'],
      ['metadata'],
      ['status'],
      ['status', 'phase'],
      ['status', 'identity'],
    ],
  ),
);

export const modelDeploymentXR: fc.Arbitrary<Json> = mutate(
  f.modelDeployment({
    caches: [{ name: 'llama', kind: 'Weights' }],
    replicas: 3,
    engine: { image: 'vllm/vllm-openai:v0.6.3' },
    topology: { strategy: 'TensorPipeline', tensor: 8, pipeline: 2 },
  }),
  [
    ['spec'],
    ['spec', 'caches'],
    ['spec', 'replicas'],
    ['spec', 'engine'],
    ['spec', 'topology'],
    ['metadata'],
    ['status'],
  ],
);

/** Observed composed resources: real-looking Objects, or arbitrary values under odd keys. */
export const observed: fc.Arbitrary<Record<string, Json>> = fc.dictionary(
  fc.oneof(
    fc.constantFrom(
      'a/pvc',
      'a/namespace',
      'a/credentials',
      'a/fetch-00000000',
      'storage-class',
      'a/workload',
      '/',
      'x/',
    ),
    fc.string(),
  ),
  fc.oneof(
    anyJson.map((v) => ({ spec: v, status: { atProvider: { manifest: v }, conditions: v } })),
    fc.constant(
      f.observedObject(
        {
          spec: { forProvider: { manifest: { apiVersion: 'v1', kind: 'PersistentVolumeClaim' } } },
        },
        { status: { phase: 'Bound' } },
      ),
    ),
  ),
  { maxKeys: 6 },
);

/** Required resources: resolved, unresolved, empty, or holding odd items. */
export const required: fc.Arbitrary<Record<string, Json[]>> = fc.dictionary(
  fc.constantFrom(
    'inference-clusters',
    'inference-cluster',
    'provider-config',
    'cache',
    'cache-llama',
    'cache-tok',
  ),
  fc.array(
    fc.oneof(
      inferenceClusterXR,
      modelCacheXR,
      fc.constantFrom('a', 'c1').map((n) => f.clusterProviderConfig(n)),
      anyJson.map((v) => ({ metadata: { name: 'c1' }, spec: v, status: v })),
    ),
    { maxLength: 4 },
  ),
  { maxKeys: 5 },
);

export const input: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(undefined),
  fc.constant({
    apiVersion: 'modelcache.fn.modelplane.ai/v1alpha1',
    kind: 'Input',
    ttlSeconds: 30,
  }),
  fc.constant({
    apiVersion: 'modelcache.fn.modelplane.ai/v1alpha1',
    kind: 'MountCaches',
    cachesFrom: 'spec.caches',
  }),
  fc.record({
    kind: fc.constantFrom('Input', 'MountCaches'),
    ttlSeconds: anyJson,
    fetch: anyJson,
    cachesFrom: anyJson,
  }),
);
