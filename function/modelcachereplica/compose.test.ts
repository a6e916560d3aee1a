import { describe, expect, it } from 'vitest';
import {
  API_VERSION,
  REQUIRE_CLUSTER,
  REQUIRE_PARENT_CACHE,
  REQUIRE_PROVIDER_CONFIG,
} from '../constants.js';
import { isFatal, type CoreRequest, type CoreResponse } from '../core.js';
import type { Json } from '../k8s/object.js';
import * as f from '../../test/support/fixtures.js';
import { golden, wire } from '../../test/support/golden.js';
import { composeModelCacheReplica } from './compose.js';

const NFS = { storageClassName: 'nfs-rwx', classExists: true };
const US_EAST = f.inferenceClusterXR('us-east', NFS);
const HF = f.modelCache(f.HF_WEIGHTS);

function compose(req: CoreRequest): CoreResponse {
  const res = composeModelCacheReplica(req);
  if (isFatal(res)) throw new Error(res.fatal);
  return res;
}

/** Compose once with nothing observed, then observe the given resources and compose again. */
function withObserved(
  req: CoreRequest,
  pick: (desired: Record<string, Json>) => Record<string, Json>,
  status?: (first: CoreResponse) => Json,
): CoreRequest {
  const first = compose(req);
  return {
    ...req,
    composite: { ...req.composite, ...(status ? { status: status(first) } : {}) },
    observed: pick(first.resources),
  };
}

function jobKey(resources: Record<string, Json>): string {
  const k = Object.keys(resources).find((r) => r.startsWith('fetch-'));
  if (k === undefined) throw new Error('no desired prefetch Job');
  return k;
}

function get(resources: Record<string, Json>, key: string): Json {
  const r = resources[key];
  if (r === undefined) throw new Error(`no desired resource ${key}`);
  return r;
}

/** The PVC Bound and the Job in the given state, observed after a first call. */
function bound(req: CoreRequest, job: f.JobObservation): CoreRequest {
  return withObserved(
    req,
    (d) => ({
      pvc: f.pvcObserved(get(d, 'pvc'), 'Bound', 'uid-1'),
      [jobKey(d)]: f.jobObserved(get(d, jobKey(d)), job),
    }),
    (first) => first.status,
  );
}

const cases: { name: string; reason: string; req: CoreRequest }[] = [
  {
    name: 'hf-weights-fresh',
    reason:
      'a new replica composes namespace, RWX claim, credential copy, reporter RBAC and prefetch Job; Pending until the claim binds',
    req: f.replicaRequest(HF, US_EAST),
  },
  {
    name: 's3-private-endpoint',
    reason:
      'an S3-compatible source copies the whole credential Secret and passes region and endpoint in the plan',
    req: f.replicaRequest(
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
      f.inferenceClusterXR('eu-west', NFS),
    ),
  },
  {
    name: 'http-bytes-bearer',
    reason: 'an HTTP source stages one file under its URL name with a checksum and a bearer token',
    req: f.replicaRequest(
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
      US_EAST,
    ),
  },
  {
    name: 'inline-tokenizer',
    reason:
      'inline files travel in a ConfigMap with positional keys mapped back to their paths; the claim is sized 1 GiB',
    req: f.replicaRequest(
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
      US_EAST,
    ),
  },
  {
    name: 'configmap-bytes',
    reason:
      'a ConfigMap source is copied to the cluster by provider-kubernetes, never read by the Function',
    req: f.replicaRequest(
      f.modelCache(
        {
          artifact: {
            kind: 'Bytes',
            source: { configMap: { name: 'prompts', items: ['system.txt'] } },
          },
        },
        { name: 'prompts' },
      ),
      US_EAST,
    ),
  },
  {
    name: 'no-storage-class',
    reason: 'a cluster without an RWX class fails fast with NoRWXStorageClass and composes nothing',
    req: f.replicaRequest(HF, f.inferenceClusterXR('edge-1')),
  },
  {
    name: 'storage-class-absent',
    reason: 'a class the InferenceCluster observed to be absent fails fast',
    req: f.replicaRequest(
      HF,
      f.inferenceClusterXR('edge-1', { storageClassName: 'nfs-rwx', classExists: false }),
    ),
  },
  {
    name: 'provider-config-missing',
    reason: 'a provider config Crossplane listed as absent fails fast with its own reason',
    req: f.replicaRequest(HF, US_EAST, { providerConfigs: [] }),
  },
  {
    name: 'existing-pvc-bound',
    reason: 'ExistingPVC only observes the named claim and is Ready once it is Bound',
    req: withObserved(
      f.replicaRequest(
        f.modelCache({
          artifact: { kind: 'Weights', source: { huggingFace: { repo: 'org/m' } } },
          storage: { backend: 'ExistingPVC', existingPVC: { claimName: 'shared-weights' } },
        }),
        US_EAST,
      ),
      (d) => ({ pvc: f.pvcObserved(get(d, 'pvc'), 'Bound') }),
    ),
  },
  {
    name: 'hydrating-with-progress',
    reason: 'a running Job that reports bytes makes the replica Hydrating with progress',
    req: bound(f.replicaRequest(HF, US_EAST), {
      state: 'running',
      done: 5 * 2 ** 30,
      total: 16 * 2 ** 30,
    }),
  },
  {
    name: 'fetch-failed',
    reason: 'a failed Job is FetchFailed with the fetch program error and how to retry',
    req: bound(f.replicaRequest(HF, US_EAST), {
      state: 'failed',
      error: 'model.safetensors: sha256 mismatch',
    }),
  },
  {
    name: 'staged',
    reason: 'a complete Job makes the replica Ready/Staged at the resolved revision',
    req: bound(f.replicaRequest(HF, US_EAST), { state: 'complete', revision: '0e9e39f2' }),
  },
];

describe('composeModelCacheReplica: whole responses', () => {
  it.each(cases)('$name: $reason', ({ name, req }) => {
    const actual = wire(composeModelCacheReplica(req));
    expect(actual).toEqual(golden(`modelcachereplica/${name}`, actual));
  });
});

/** A replica Ready for the current identity, with its claim and Job observed. */
function readyReplica(): CoreRequest {
  const staged = bound(f.replicaRequest(HF, US_EAST), { state: 'complete', revision: 'abc' });
  return { ...staged, composite: { ...staged.composite, status: compose(staged).status } };
}

describe('composeModelCacheReplica: transient inputs hold everything as observed', () => {
  const ready = readyReplica();
  const held = compose({ ...ready, required: {} });
  const holds: { reason: string; req: CoreRequest; inputs: string }[] = [
    {
      reason: 'requirements not resolved yet',
      req: { ...ready, required: {} },
      inputs: 'Resolving',
    },
    {
      reason: 'the parent ModelCache is not listed (being deleted)',
      req: { ...ready, required: { ...ready.required, [REQUIRE_PARENT_CACHE]: [] } },
      inputs: 'CacheUnavailable',
    },
    {
      reason: 'the parent spec does not parse',
      req: {
        ...ready,
        required: {
          ...ready.required,
          [REQUIRE_PARENT_CACHE]: [f.modelCache({ artifact: { kind: 'Weights' } })],
        },
      },
      inputs: 'CacheUnavailable',
    },
    {
      reason: 'the parent carries a refetch token the replica spec does not have yet',
      req: {
        ...ready,
        required: {
          ...ready.required,
          [REQUIRE_PARENT_CACHE]: [
            f.modelCache(f.HF_WEIGHTS, { annotations: { 'modelplane.ai/refetch': '2' } }),
          ],
        },
      },
      inputs: 'IdentityMismatch',
    },
    {
      reason: 'the InferenceCluster is malformed',
      req: {
        ...ready,
        required: {
          ...ready.required,
          [REQUIRE_CLUSTER]: [{ metadata: { name: 'us-east' }, spec: { providerConfigRef: {} } }],
        },
      },
      inputs: 'InvalidInferenceCluster',
    },
    {
      reason: 'the InferenceCluster is not listed',
      req: { ...ready, required: { ...ready.required, [REQUIRE_CLUSTER]: [] } },
      inputs: 'InvalidInferenceCluster',
    },
    {
      reason: 'the provider config was renamed and the replica spec is not updated yet',
      req: {
        ...ready,
        required: {
          ...ready.required,
          [REQUIRE_CLUSTER]: [
            f.inferenceClusterXR('us-east', {
              ...NFS,
              providerConfig: { kind: 'ClusterProviderConfig', name: 'us-east-2' },
            }),
          ],
        },
      },
      inputs: 'Resolving',
    },
    {
      reason: 'the provider config is not listed yet',
      req: {
        ...ready,
        required: { ...ready.required, [REQUIRE_PROVIDER_CONFIG]: undefined },
      },
      inputs: 'Resolving',
    },
  ];
  it.each(holds)('$reason: Objects echoed, Ready latch kept', ({ req, inputs }) => {
    const res = compose(req);
    expect(res.resources).toEqual(held.resources);
    expect(res.status).toEqual(ready.composite['status']);
    expect(res.ready).toBe(true);
    expect(res.events).toEqual([]);
    expect(res.conditions[0]).toMatchObject({
      type: 'InputsObserved',
      status: 'False',
      reason: inputs,
    });
    expect(res.conditions[1]).toEqual({
      type: 'ArtifactReady',
      status: 'True',
      reason: 'Staged',
      message: (ready.composite['status'] as Json)['message'],
    });
  });

  it('holds the credential copy out: an echoed Secret copy could carry its value', () => {
    const hydrating = bound(f.replicaRequest(HF, US_EAST), { state: 'running' });
    const first = compose(f.replicaRequest(HF, US_EAST));
    const observed = {
      ...hydrating.observed,
      credentials: f.synced(get(first.resources, 'credentials')),
    };
    const res = compose({ ...hydrating, observed, required: {} });
    expect(Object.keys(res.resources).sort()).toEqual(['fetch-89d2e539', 'pvc']);
  });

  it('a FetchFailed latch survives a malformed InferenceCluster and is not retried', () => {
    const failed = bound(f.replicaRequest(HF, US_EAST), { state: 'failed', error: 'boom' });
    const latched = {
      ...failed,
      composite: { ...failed.composite, status: compose(failed).status },
    };
    const broken = compose({
      ...latched,
      required: { ...latched.required, [REQUIRE_CLUSTER]: [{ metadata: { name: 'us-east' } }] },
    });
    expect(broken.status).toEqual(latched.composite['status']);
    const after = compose(latched);
    expect(after.status).toEqual(latched.composite['status']);
    expect(Object.keys(after.resources).filter((k) => k.startsWith('reporter-'))).toEqual([]);
  });

  it('a replica that never reported and whose InferenceCluster is malformed fails with the reason', () => {
    const res = compose({
      ...f.replicaRequest(HF, US_EAST),
      required: {
        ...f.replicaRequest(HF, US_EAST).required,
        [REQUIRE_CLUSTER]: [{ metadata: { name: 'us-east' }, spec: {} }],
      },
    });
    expect(wire(res.status)).toEqual({
      phase: 'Failed',
      reason: 'InvalidInferenceCluster',
      message:
        'InferenceCluster us-east is invalid: spec.providerConfigRef: Invalid input: expected object, received undefined',
      namespace: 'team-a',
      claimName: 'modelcache-llama',
      identity: (f.replicaRequest(HF, US_EAST).composite['spec'] as Json)['identity'],
    });
    expect(res.resources).toEqual({});
    expect(res.ready).toBe(false);
  });
});

describe('composeModelCacheReplica: requirements follow from its own spec', () => {
  it('asks for its parent, its InferenceCluster and its provider config by name, the same on every call', () => {
    const req = f.replicaRequest(HF, US_EAST);
    const first = compose({ ...req, required: {} });
    const second = compose(req);
    expect(first.requirements).toEqual({
      [REQUIRE_PARENT_CACHE]: {
        apiVersion: API_VERSION,
        kind: 'ModelCache',
        matchName: 'llama',
        namespace: 'team-a',
      },
      [REQUIRE_CLUSTER]: {
        apiVersion: API_VERSION,
        kind: 'InferenceCluster',
        matchName: 'us-east',
      },
      [REQUIRE_PROVIDER_CONFIG]: {
        apiVersion: 'kubernetes.m.crossplane.io/v1alpha1',
        kind: 'ClusterProviderConfig',
        matchName: 'us-east',
      },
    });
    expect(second.requirements).toEqual(first.requirements);
  });
});

describe('composeModelCacheReplica: bad input is fatal and names the field', () => {
  const bad: { reason: string; spec: Json; fatal: string }[] = [
    {
      reason: 'no cluster',
      spec: { cacheRef: { name: 'llama' }, identity: 'a'.repeat(64) },
      fatal:
        'invalid ModelCacheReplica: spec.cluster: Invalid input: expected string, received undefined',
    },
    {
      reason: 'an identity that is not a sha256',
      spec: { cacheRef: { name: 'llama' }, cluster: 'us-east', identity: 'xyz' },
      fatal: 'invalid ModelCacheReplica: spec.identity: must be 64 lowercase hex digits',
    },
  ];
  it.each(bad)('$reason', ({ spec, fatal }) => {
    const req = f.replicaRequest(HF, US_EAST);
    expect(composeModelCacheReplica({ ...req, composite: { ...req.composite, spec } })).toEqual({
      fatal,
    });
  });
});
