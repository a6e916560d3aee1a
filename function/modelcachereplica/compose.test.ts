import { describe, expect, it } from 'vitest';
import { REQUIRE_CLUSTERS, REQUIRE_CLUSTER_PROVIDER_CONFIGS } from '../constants.js';
import type { CoreRequest } from '../core.js';
import type { Json } from '../k8s/object.js';
import * as f from '../../test/support/fixtures.js';
import { golden, wire } from '../../test/support/golden.js';
import { composeModelCache } from './compose.js';

const NFS = { storageClassName: 'nfs-rwx', classExists: true };

/** Compose once with nothing observed, then observe the given resources and compose again. */
function withObserved(
  req: CoreRequest,
  pick: (desired: Record<string, Json>) => Record<string, Json>,
): CoreRequest {
  const first = composeModelCache(req);
  if ('fatal' in first) throw new Error(first.fatal);
  return { ...req, observed: pick(first.resources) };
}

function key(resources: Record<string, Json>, prefix: string): Json {
  const k = Object.keys(resources).find((r) => r.startsWith(prefix));
  if (k === undefined) throw new Error(`no desired resource ${prefix}*`);
  return resources[k] as Json;
}

const cases: { name: string; reason: string; req: CoreRequest }[] = [
  {
    name: 'hf-weights-fresh',
    reason:
      'a new cache on one cluster composes namespace, RWX claim, credential copy and prefetch Job; Pending until the claim binds',
    req: f.request(f.modelCache(f.HF_WEIGHTS), [f.inferenceClusterXR('us-east', NFS)]),
  },
  {
    name: 's3-private-endpoint',
    reason:
      'an S3-compatible source copies the whole credential Secret and passes region and endpoint in the plan',
    req: f.request(
      f.modelCache({
        artifact: {
          kind: 'Weights',
          source: {
            s3: {
              uri: 's3://models/qwen2/7b/',
              region: 'eu-west-1',
              endpoint: 'https://minio.internal:9000',
              secretRef: { name: 's3-creds' },
            },
          },
        },
        storage: { pvc: { sizeGiB: 20, storageClassName: 'cephfs' } },
      }),
      [f.inferenceClusterXR('eu-west', NFS)],
    ),
  },
  {
    name: 'http-bytes-bearer',
    reason: 'an HTTP source stages one file under its URL name with a checksum and a bearer token',
    req: f.request(
      f.modelCache({
        artifact: {
          kind: 'Bytes',
          source: {
            http: {
              url: 'https://example.com/data/vocab.bin?x=1',
              sha256: 'a'.repeat(64),
              secretRef: { name: 'http-token', key: 'token' },
            },
          },
        },
        storage: { pvc: { sizeGiB: 1 } },
      }),
      [f.inferenceClusterXR('us-east', NFS)],
    ),
  },
  {
    name: 'inline-tokenizer',
    reason:
      'inline files travel in a ConfigMap with positional keys mapped back to their paths; the claim is sized 1 GiB',
    req: f.request(
      f.modelCache(
        {
          artifact: {
            kind: 'Tokenizer',
            source: {
              inline: {
                files: {
                  'tokenizer_config.json': '{"a":1}',
                  'templates/chat.jinja': '{{ messages }}',
                },
              },
            },
          },
          mount: { path: '/mnt/tokenizer' },
        },
        { name: 'tok' },
      ),
      [f.inferenceClusterXR('us-east', NFS)],
    ),
  },
  {
    name: 'configmap-bytes',
    reason:
      'a ConfigMap source is copied to the cluster by provider-kubernetes, never read by the Function',
    req: f.request(
      f.modelCache(
        {
          artifact: {
            kind: 'Bytes',
            source: { configMap: { name: 'prompts', items: ['system.txt'] } },
          },
        },
        { name: 'prompts' },
      ),
      [f.inferenceClusterXR('us-east', NFS)],
    ),
  },
  {
    name: 'no-storage-class',
    reason: 'a cluster without an RWX class fails fast with NoRWXStorageClass and composes nothing',
    req: f.request(f.modelCache(f.HF_WEIGHTS), [f.inferenceClusterXR('edge-1')]),
  },
  {
    name: 'storage-class-absent',
    reason: 'a class the InferenceCluster observed to be absent fails fast',
    req: f.request(f.modelCache(f.HF_WEIGHTS), [
      f.inferenceClusterXR('edge-1', { storageClassName: 'nfs-rwx', classExists: false }),
    ]),
  },
  {
    name: 'provider-config-missing',
    reason: 'a provider config that does not exist fails fast with its own reason',
    req: ((): CoreRequest => {
      const r = f.request(f.modelCache(f.HF_WEIGHTS), [f.inferenceClusterXR('us-east', NFS)]);
      r.required[REQUIRE_CLUSTER_PROVIDER_CONFIGS] = [];
      return r;
    })(),
  },
  {
    name: 'no-clusters',
    reason: 'no matching cluster: ClustersMatched False and the XR is not Ready',
    req: f.request(
      f.modelCache({ ...f.HF_WEIGHTS, clusterSelector: { matchLabels: { region: 'mars' } } }),
      [],
    ),
  },
  {
    name: 'requirements-unresolved',
    reason: 'the first call asks for clusters and provider configs and composes nothing new',
    req: { composite: f.modelCache(f.HF_WEIGHTS), observed: {}, required: {}, input: undefined },
  },
  {
    name: 'existing-pvc-bound',
    reason: 'ExistingPVC only observes the named claim and is Ready once it is Bound',
    req: withObserved(
      f.request(
        f.modelCache({
          artifact: { kind: 'Weights', source: { huggingFace: { repo: 'org/m' } } },
          storage: { backend: 'ExistingPVC', existingPVC: { claimName: 'shared-weights' } },
        }),
        [f.inferenceClusterXR('us-east', NFS)],
      ),
      (d) => ({ 'us-east/pvc': f.pvcObserved(key(d, 'us-east/pvc'), 'Bound') }),
    ),
  },
  {
    name: 'three-clusters-mixed',
    reason:
      'per-cluster phases aggregate into summary and conditions: one hydrating with progress, one failed, one pending',
    req: withObserved(
      f.request(f.modelCache(f.HF_WEIGHTS), [
        f.inferenceClusterXR('us-west', NFS),
        f.inferenceClusterXR('us-east', NFS),
        f.inferenceClusterXR('eu-west', NFS),
      ]),
      (d) => ({
        'us-east/pvc': f.pvcObserved(key(d, 'us-east/pvc'), 'Bound'),
        [Object.keys(d).find((k) => k.startsWith('us-east/fetch-')) ?? '']: f.jobObserved(
          key(d, 'us-east/fetch-'),
          { state: 'running', done: 5 * 2 ** 30, total: 16 * 2 ** 30 },
        ),
        'eu-west/pvc': f.pvcObserved(key(d, 'eu-west/pvc'), 'Bound'),
        [Object.keys(d).find((k) => k.startsWith('eu-west/fetch-')) ?? '']: f.jobObserved(
          key(d, 'eu-west/fetch-'),
          { state: 'failed', error: 'model.safetensors: sha256 mismatch' },
        ),
      }),
    ),
  },
];

describe('composeModelCache: whole responses', () => {
  it.each(cases)('$name: $reason', ({ name, req }) => {
    const actual = wire(composeModelCache(req));
    expect(actual).toEqual(golden(`modelcache/${name}`, actual));
  });
});

describe('composeModelCache: bad input is fatal and names the field', () => {
  const bad: { reason: string; spec: Json; fatal: string }[] = [
    {
      reason: 'two sources set',
      spec: {
        artifact: {
          kind: 'Weights',
          source: { huggingFace: { repo: 'a/b' }, s3: { uri: 's3://bkt/x' } },
        },
        storage: { pvc: { sizeGiB: 1 } },
      },
      fatal:
        'invalid ModelCache: spec.artifact.source: exactly one of huggingFace, s3, http, inline, configMap must be set (found huggingFace, s3)',
    },
    {
      reason: 'Weights from inline text',
      spec: { artifact: { kind: 'Weights', source: { inline: { files: { a: 'b' } } } } },
      fatal:
        'invalid ModelCache: spec.artifact.source.inline: inline and configMap sources are for Tokenizer and Bytes artifacts, not Weights',
    },
    {
      reason: 'remote source without a size',
      spec: { artifact: { kind: 'Weights', source: { huggingFace: { repo: 'a/b' } } } },
      fatal:
        'invalid ModelCache: spec.storage.pvc.sizeGiB: is required for huggingFace sources: the volume is sized before the download starts',
    },
    {
      reason: 'a v0.2 artifact kind',
      spec: {
        artifact: { kind: 'Adapter', source: { huggingFace: { repo: 'a/b' } } },
        storage: { pvc: { sizeGiB: 1 } },
      },
      fatal:
        'invalid ModelCache: spec.artifact.kind: Adapter artifacts arrive in v0.2; v0.1 stages Weights, Tokenizer or Bytes',
    },
    {
      reason: 'a relative mount path',
      spec: { ...f.HF_WEIGHTS, mount: { path: 'mnt/model' } },
      fatal: 'invalid ModelCache: spec.mount.path: must be an absolute path',
    },
  ];
  it.each(bad)('$reason', ({ spec, fatal }) => {
    expect(composeModelCache(f.request(f.modelCache(spec), []))).toEqual({ fatal });
  });
});

describe('composeModelCache: requirements', () => {
  it('selects InferenceClusters by the cache selector and lists provider configs, identically on every call', () => {
    const xr = f.modelCache({ ...f.HF_WEIGHTS, clusterSelector: { matchLabels: { gpu: 'h100' } } });
    const first = composeModelCache({
      composite: xr,
      observed: {},
      required: {},
      input: undefined,
    });
    const second = composeModelCache(
      f.request(xr, [f.inferenceClusterXR('a', { ...NFS, labels: { gpu: 'h100' } })]),
    );
    if ('fatal' in first || 'fatal' in second) throw new Error('unexpected fatal');
    expect(first.requirements).toEqual({
      [REQUIRE_CLUSTERS]: {
        apiVersion: 'modelplane.ai/v1alpha1',
        kind: 'InferenceCluster',
        matchLabels: { gpu: 'h100' },
      },
      [REQUIRE_CLUSTER_PROVIDER_CONFIGS]: {
        apiVersion: 'kubernetes.m.crossplane.io/v1alpha1',
        kind: 'ClusterProviderConfig',
        matchLabels: {},
      },
      'provider-configs': {
        apiVersion: 'kubernetes.m.crossplane.io/v1alpha1',
        kind: 'ProviderConfig',
        matchLabels: {},
        namespace: 'team-a',
      },
    });
    expect(second.requirements).toEqual(first.requirements);
  });
});
