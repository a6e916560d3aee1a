import { describe, expect, it } from 'vitest';
import {
  API_VERSION,
  EXIT_PERMANENT,
  FETCH_CONTAINER,
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

function get(resources: Record<string, Json>, key: string): Json {
  const r = resources[key];
  if (r === undefined) throw new Error(`no desired resource ${key}`);
  return r;
}

/**
 * The request once the replica's namespace exists on the cluster (the replica applies nothing
 * else before): what it composes from then on.
 */
function namespaced(req: CoreRequest): CoreRequest {
  const first = compose({ ...req, observed: {} });
  // ExistingPVC composes no namespace: it mounts a claim in one that exists.
  if (first.resources['namespace'] === undefined) return req;
  return {
    ...req,
    observed: { namespace: f.synced(get(first.resources, 'namespace')), ...req.observed },
  };
}

/** Compose with the namespace observed, then observe the given resources and compose again. */
function withObserved(
  req: CoreRequest,
  pick: (desired: Record<string, Json>) => Record<string, Json>,
  status?: (first: CoreResponse) => Json,
): CoreRequest {
  const ready = namespaced(req);
  const first = compose(ready);
  return {
    ...ready,
    composite: { ...req.composite, ...(status ? { status: status(first) } : {}) },
    observed: { ...ready.observed, ...pick(first.resources) },
  };
}

function jobKey(resources: Record<string, Json>): string {
  const k = Object.keys(resources).find((r) => r.startsWith('fetch-'));
  if (k === undefined) throw new Error('no desired prefetch Job');
  return k;
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
      'issue13 #17: a new replica composes only the namespace first: every other Object lives in it',
    req: f.replicaRequest(HF, US_EAST),
  },
  {
    name: 'hf-weights-namespace-ready',
    reason:
      'once the namespace exists, the replica composes the RWX claim, credential copy, reporter RBAC and prefetch Job; Pending until the claim binds',
    req: namespaced(f.replicaRequest(HF, US_EAST)),
  },
  {
    name: 's3-private-endpoint',
    reason:
      'an S3-compatible source copies the whole credential Secret and passes region and endpoint in the plan',
    req: namespaced(
      f.replicaRequest(
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
    ),
  },
  {
    name: 'http-bytes-bearer',
    reason: 'an HTTP source stages one file under its URL name with a checksum and a bearer token',
    req: namespaced(
      f.replicaRequest(
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
    ),
  },
  {
    name: 'oci-image-dockerconfig',
    reason:
      'an OCI source copies the .dockerconfigjson key of its registry Secret into the Job env and passes ref, layout and directory in the plan',
    req: namespaced(
      f.replicaRequest(
        f.modelCache({
          artifact: {
            kind: 'Weights',
            source: {
              oci: {
                ref: 'registry.internal:5000/models/granite:v1',
                secretRef: { name: 'regcred' },
                layout: 'image',
                include: ['*.safetensors', '*.json'],
              },
            },
          },
          storage: { pvc: { sizeGiB: 20 } },
        }),
        US_EAST,
      ),
    ),
  },
  {
    name: 'inline-tokenizer',
    reason:
      'inline files travel in a ConfigMap with positional keys mapped back to their paths; the claim is sized 1 GiB',
    req: namespaced(
      f.replicaRequest(
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
    ),
  },
  {
    name: 'configmap-bytes',
    reason:
      'a ConfigMap source is copied to the cluster by provider-kubernetes, never read by the Function',
    req: namespaced(
      f.replicaRequest(
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
    const first = compose(namespaced(f.replicaRequest(HF, US_EAST)));
    const observed = {
      ...hydrating.observed,
      credentials: f.synced(get(first.resources, 'credentials')),
    };
    const res = compose({ ...hydrating, observed, required: {} });
    expect(Object.keys(res.resources).sort()).toEqual(['fetch-89d2e539', 'namespace', 'pvc']);
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

describe('issue 13: the prefetch Job on the cluster', () => {
  const job = (res: CoreResponse): Json => {
    const spec = get(res.resources, jobKey(res.resources))['spec'] as Json;
    return (spec['forProvider'] as Json)['manifest'] as Json;
  };

  it('issue13 #14: the Job is deleted in the foreground (its pods go first) and each pod has its own deadline', () => {
    const manifest = job(compose(namespaced(f.replicaRequest(HF, US_EAST))));
    expect((manifest['metadata'] as Json)['finalizers']).toEqual(['foregroundDeletion']);
    const spec = manifest['spec'] as { template: { spec: Json } } & Json;
    expect(spec.template.spec['activeDeadlineSeconds']).toBe(21_600);
  });

  it('issue13 #15: no Job-level deadline, so the wait for a late claim is not counted against the fetch', () => {
    const manifest = job(compose(namespaced(f.replicaRequest(HF, US_EAST))));
    expect(Object.keys(manifest['spec'] as Json).sort()).toEqual([
      'backoffLimit',
      'podFailurePolicy',
      'podReplacementPolicy',
      'template',
    ]);
  });

  it('a permanent fetch error fails the Job on its first pod; an evicted pod does not use up a retry', () => {
    const manifest = job(compose(namespaced(f.replicaRequest(HF, US_EAST))));
    const spec = manifest['spec'] as Json;
    const containers = ((spec['template'] as Json)['spec'] as Json)['containers'] as Json[];
    expect(containers.map((c) => c['name'])).toEqual([FETCH_CONTAINER]);
    expect(spec['podFailurePolicy']).toEqual({
      rules: [
        {
          action: 'FailJob',
          onExitCodes: { containerName: FETCH_CONTAINER, operator: 'In', values: [EXIT_PERMANENT] },
        },
        { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
      ],
    });
    // Kubernetes accepts a podFailurePolicy only with restartPolicy Never.
    expect(((spec['template'] as Json)['spec'] as Json)['restartPolicy']).toBe('Never');
  });

  it('issue13 #16: a retry pod starts only once the one before it has Failed, so its lock is provably free', () => {
    const manifest = job(compose(namespaced(f.replicaRequest(HF, US_EAST))));
    expect((manifest['spec'] as Json)['podReplacementPolicy']).toBe('Failed');
  });

  it('issue13 #17: the namespace first, then everything else once it is observed', () => {
    const first = compose(f.replicaRequest(HF, US_EAST));
    expect(Object.keys(first.resources)).toEqual(['namespace']);
    const pending = compose({
      ...f.replicaRequest(HF, US_EAST),
      observed: { namespace: f.observedObject(get(first.resources, 'namespace'), undefined) },
    });
    expect(Object.keys(pending.resources)).toEqual(['namespace']);
    // An unreachable cluster: the namespace's Object cannot sync, and the message says why.
    const unreachable = compose({
      ...f.replicaRequest(HF, US_EAST),
      observed: {
        namespace: f.syncFailed(
          get(first.resources, 'namespace'),
          'connect failed: dial tcp 10.0.0.1:6443: connect: connection refused',
        ),
      },
    });
    expect([unreachable.status['reason'], unreachable.status['message']]).toEqual([
      'NamespacePending',
      'namespace team-a cannot be created on cluster us-east yet: connect failed: dial tcp 10.0.0.1:6443: connect: connection refused',
    ]);
    const second = compose(namespaced(f.replicaRequest(HF, US_EAST)));
    expect(rolesOf(second)).toEqual([
      'credentials',
      'fetch',
      'namespace',
      'pvc',
      'reporter-role',
      'reporter-rolebinding',
      'reporter-serviceaccount',
    ]);
  });

  /** The Job's Object as provider-kubernetes reports it when it cannot apply it. */
  function unsynced(message: string, calls: number): CoreRequest {
    const req = namespaced(f.replicaRequest(HF, US_EAST));
    const first = compose(req);
    const observed = {
      ...req.observed,
      pvc: f.pvcObserved(get(first.resources, 'pvc'), 'Bound'),
      [jobKey(first.resources)]: f.syncFailed(
        get(first.resources, jobKey(first.resources)),
        message,
      ),
    };
    const status = { ...first.status, ...(calls > 0 ? { jobUnsyncedCalls: calls } : {}) };
    return { ...req, observed, composite: { ...req.composite, status } };
  }
  const INVALID =
    'cannot create object: Job.batch "modelcache-llama-fetch-89d2e539" is invalid: spec.template.spec.volumes[2].configMap.items[0].path: Invalid value: "..data": must not start with \'..\'';

  it('issue13 #13: a Job the cluster refuses as invalid is Failed at once, quoting the provider, and latched', () => {
    const res = compose(unsynced(INVALID, 0));
    expect(wire(res.status)).toEqual({
      phase: 'Failed',
      reason: 'JobNotCreated',
      message: `prefetch Job team-a/modelcache-llama-fetch-89d2e539 could not be created on cluster us-east: ${INVALID}; set annotation modelplane.ai/refetch to a new value to retry`,
      namespace: 'team-a',
      claimName: 'modelcache-llama',
      identity: (f.replicaRequest(HF, US_EAST).composite['spec'] as Json)['identity'],
    });
    expect(rolesOf(res)).toEqual(['namespace', 'pvc']);
    const next = compose({
      ...unsynced(INVALID, 0),
      composite: { ...unsynced(INVALID, 0).composite, status: res.status },
    });
    expect(next.status).toEqual(res.status);
    expect(rolesOf(next)).toEqual(['namespace', 'pvc']);
  });

  it('issue13 #13: any other sync error waits a bounded number of reconciles, counting them', () => {
    const error =
      'cannot create object: Post "https://10.0.0.1:6443": dial tcp: connection refused';
    const waiting = compose(unsynced(error, 3));
    expect([
      waiting.status['phase'],
      waiting.status['reason'],
      waiting.status['jobUnsyncedCalls'],
    ]).toEqual(['Pending', 'JobPending', 4]);
    expect(waiting.status['message']).toEqual(
      `prefetch Job team-a/modelcache-llama-fetch-89d2e539 is not created on cluster us-east yet (4/10): ${error}`,
    );
    const givenUp = compose(unsynced(error, 9));
    expect([givenUp.status['phase'], givenUp.status['reason']]).toEqual([
      'Failed',
      'JobNotCreated',
    ]);
    // A Job that syncs again resets the count.
    const req = unsynced(error, 5);
    const k = jobKey(req.observed);
    const synced = compose({
      ...req,
      observed: { ...req.observed, [k]: f.observedObject(get(req.observed, k), undefined) },
    });
    expect(synced.status['jobUnsyncedCalls']).toBeUndefined();
  });
});

function rolesOf(res: CoreResponse): string[] {
  return Object.keys(res.resources)
    .map((k) => k.replace(/^fetch-[0-9a-f]{8}$/, 'fetch'))
    .sort();
}

describe('issue 12: a steady replica reads no input (its parent’s status grows with the fleet)', () => {
  const ready = readyReplica();
  // The Job cleaned up: only the namespace and the claim remain, as composed.
  const cleanedObserved = (req: CoreRequest): Record<string, Json> => {
    const d = compose(req).resources;
    return {
      namespace: f.synced(get(d, 'namespace')),
      pvc: f.pvcObserved(get(d, 'pvc'), 'Bound', 'uid-1'),
    };
  };
  const cleaned: CoreRequest = { ...ready, observed: cleanedObserved(ready) };
  const settled = compose(cleaned);
  const steadyReq: CoreRequest = {
    ...cleaned,
    composite: { ...cleaned.composite, status: settled.status },
    required: {},
  };
  // What a reconcile that reads every input composes there.
  const full = settled;

  it('Ready with the Job still observed: not steady yet (the Job is still to be removed)', () => {
    expect(ready.composite['status']).not.toHaveProperty('steady');
  });

  it('the reconcile that changes nothing records what it saw, and says it is steady', () => {
    expect(Object.keys(settled.resources).sort()).toEqual(['namespace', 'pvc']);
    expect(settled.conditions[0]).toMatchObject({ type: 'InputsObserved', reason: 'Steady' });
    expect(settled.status['steady']).toMatch(/^[0-9a-f]{32}$/);
    expect({ ...settled.status, steady: undefined }).toEqual({
      ...(ready.composite['status'] as Json),
      steady: undefined,
    });
  });

  it('the next reconcile asks for nothing and holds everything: status, Objects, Ready', () => {
    const res = compose(steadyReq);
    const spec = steadyReq.composite['spec'] as Json;
    const held = compose({
      ...steadyReq,
      composite: { ...steadyReq.composite, spec: { ...spec, cacheDigest: undefined } },
    });
    expect(res).toEqual({
      requirements: {},
      ttlSeconds: full.ttlSeconds,
      resources: held.resources,
      status: settled.status,
      ready: true,
      conditions: [
        {
          type: 'InputsObserved',
          status: 'True',
          reason: 'Steady',
          message: `Ready and unchanged since ModelCache team-a/${String((spec['cacheRef'] as Json)['name'])} was last read: no input is read until the cache, the claim or an Object changes`,
        },
        settled.conditions[1],
      ],
      events: [],
    });
    // What it holds is what a full reconcile composes.
    expect(Object.keys(res.resources).sort()).toEqual(Object.keys(full.resources).sort());
  });

  const spec = steadyReq.composite['spec'] as Json;
  const observed = steadyReq.observed;
  const changes: { reason: string; req: CoreRequest }[] = [
    {
      reason: 'the parent’s spec changed (a new cacheDigest)',
      req: {
        ...steadyReq,
        composite: { ...steadyReq.composite, spec: { ...spec, cacheDigest: '0123456789abcdef' } },
      },
    },
    {
      reason: 'a refetch (a new identity)',
      req: {
        ...steadyReq,
        composite: { ...steadyReq.composite, spec: { ...spec, identity: 'f'.repeat(64) } },
      },
    },
    {
      reason: 'the claim was re-created (another UID: an empty volume)',
      req: {
        ...steadyReq,
        observed: { ...observed, pvc: f.pvcObserved(get(full.resources, 'pvc'), 'Bound', 'uid-2') },
      },
    },
    {
      reason: 'the claim is Lost',
      req: {
        ...steadyReq,
        observed: { ...observed, pvc: f.pvcObserved(get(full.resources, 'pvc'), 'Lost', 'uid-1') },
      },
    },
    {
      reason: 'the claim’s Object is gone',
      req: { ...steadyReq, observed: { namespace: get(observed, 'namespace') } },
    },
    {
      reason: 'an Object it did not compose is observed',
      req: { ...steadyReq, observed: { ...observed, extra: get(observed, 'namespace') } },
    },
  ];
  it.each(changes)('$reason: it reads every input again', ({ req }) => {
    const res = compose(req);
    expect(res.requirements).toEqual(full.requirements);
    expect(Object.keys(res.requirements).sort()).toEqual(
      [REQUIRE_CLUSTER, REQUIRE_PARENT_CACHE, REQUIRE_PROVIDER_CONFIG].sort(),
    );
    expect(res.conditions[0]).toMatchObject({ type: 'InputsObserved', status: 'False' });
  });
});
