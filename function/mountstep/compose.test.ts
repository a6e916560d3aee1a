import { describe, expect, it } from 'vitest';
import type { CoreRequest, CoreResponse } from '../core.js';
import { isFatal } from '../core.js';
import type { Json } from '../k8s/object.js';
import { providerObject } from '../k8s/object.js';
import * as f from '../../test/support/fixtures.js';
import { golden, wire } from '../../test/support/golden.js';
import { composeMountStep } from './compose.js';

const INPUT = {
  apiVersion: 'modelcache.fn.modelplane.ai/v1alpha1',
  kind: 'MountCaches',
  cachesFrom: 'spec.models',
};
const NFS = { storageClassName: 'nfs-rwx', classExists: true };

/** A pod spec as an author's own step writes it: volumes, mounts and env already present. */
const POD: Json = {
  containers: [
    {
      name: 'server',
      image: 'ghcr.io/example/server:1',
      env: [{ name: 'LOG_LEVEL', value: 'info' }],
      volumeMounts: [{ name: 'config', mountPath: '/etc/server' }],
    },
  ],
  initContainers: [{ name: 'warmup', image: 'ghcr.io/example/warmup:1' }],
  volumes: [{ name: 'config', configMap: { name: 'server-config' } }],
};
const meta = { name: 'server', namespace: f.NS };
const deployment: Json = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: meta,
  spec: { replicas: 1, template: { spec: POD } },
};
const statefulSet: Json = {
  apiVersion: 'apps/v1',
  kind: 'StatefulSet',
  metadata: meta,
  spec: { serviceName: 'server', template: { spec: POD } },
};
const lws: Json = {
  apiVersion: 'leaderworkerset.x-k8s.io/v1',
  kind: 'LeaderWorkerSet',
  metadata: meta,
  spec: {
    replicas: 1,
    leaderWorkerTemplate: { size: 4, leaderTemplate: { spec: POD }, workerTemplate: { spec: POD } },
  },
};
const inObject = (cluster: string, manifest: Json): Json =>
  providerObject({ providerConfigRef: { kind: 'ClusterProviderConfig', name: cluster }, manifest });

/** A third-party XR that references caches in spec.models. */
const xr = f.modelCache({}, { name: 'my-app' });
xr['kind'] = 'InferenceApp';
xr['apiVersion'] = 'example.org/v1';
xr['spec'] = { models: [{ name: 'llama' }, 'tok'] };

function request(
  desired: Record<string, Json>,
  phases: Record<string, f.CachePhase>,
  observed: Record<string, Json> = {},
): CoreRequest {
  return {
    composite: xr,
    observed,
    required: {
      'inference-clusters': ['a', 'b'].map((n) => f.inferenceClusterXR(n, NFS)),
      'cache-llama': [f.cacheWithStatus('llama', 'Weights', '/mnt/model', phases)],
      'cache-tok': [f.cacheWithStatus('tok', 'Tokenizer', '/mnt/tokenizer', phases)],
    },
    input: INPUT,
    desired,
  };
}

function run(req: CoreRequest): CoreResponse {
  const res = composeMountStep(req);
  if (isFatal(res)) throw new Error(res.fatal);
  return res;
}

const cases: { name: string; reason: string; req: CoreRequest }[] = [
  {
    name: 'deployment-statefulset-lws-in-objects',
    reason:
      'a Deployment, a StatefulSet and an LWS inside Objects on a Ready cluster all get read-only mounts and env; existing volumes, mounts and env are kept',
    req: request(
      {
        dep: inObject('a', deployment),
        sts: inObject('a', statefulSet),
        gang: inObject('a', lws),
        svc: { apiVersion: 'v1', kind: 'Service', metadata: meta },
      },
      { a: 'Ready', b: 'Ready' },
    ),
  },
  {
    name: 'hold-back-on-hydrating-cluster',
    reason:
      'a workload not created yet is held back where a cache is Hydrating; one already running there is kept exactly as observed',
    req: request(
      {
        'new-on-b': inObject('b', deployment),
        'running-on-b': inObject('b', statefulSet),
        'on-a': inObject('a', deployment),
      },
      { a: 'Ready', b: 'Hydrating' },
      { 'running-on-b': f.observedObject(inObject('b', statefulSet), undefined) },
    ),
  },
  {
    name: 'raw-workload-without-cluster',
    reason:
      'a raw Deployment is left untouched, and said so, when the input names no rawWorkloadCluster',
    req: request({ raw: deployment }, { a: 'Ready', b: 'Ready' }),
  },
];

describe('composeMountStep: whole responses', () => {
  it.each(cases)('$name: $reason', ({ name, req }) => {
    const actual = wire(composeMountStep(req));
    expect(actual).toEqual(golden(`mountstep/${name}`, actual));
  });
});

describe('composeMountStep: properties', () => {
  it('is idempotent: applying the step to its own output changes nothing (arrays are not duplicated)', () => {
    const once = run(
      request(
        { dep: inObject('a', deployment), gang: inObject('a', lws) },
        { a: 'Ready', b: 'Ready' },
      ),
    );
    const twice = run(request(once.resources, { a: 'Ready', b: 'Ready' }));
    expect(twice.resources).toEqual(once.resources);
  });

  it('mounts raw workloads on the cluster the input names', () => {
    const res = run({
      ...request({ raw: deployment }, { a: 'Ready', b: 'Ready' }),
      input: { ...INPUT, rawWorkloadCluster: 'a' },
    });
    const spec = (res.resources['raw'] as { spec: { template: { spec: { volumes: Json[] } } } })
      .spec.template.spec;
    expect(spec.volumes).toEqual([
      { name: 'config', configMap: { name: 'server-config' } },
      {
        name: 'modelcache-llama',
        persistentVolumeClaim: { claimName: 'modelcache-llama', readOnly: true },
      },
      {
        name: 'modelcache-tok',
        persistentVolumeClaim: { claimName: 'modelcache-tok', readOnly: true },
      },
    ]);
  });

  it('does not modify the desired state it was given', () => {
    const desired = { dep: inObject('a', deployment) };
    const before = JSON.stringify(desired);
    run(request(desired, { a: 'Ready', b: 'Ready' }));
    expect(JSON.stringify(desired)).toEqual(before);
  });

  it('names the field when the references are malformed', () => {
    const bad = { ...xr, spec: { models: [{ nom: 'x' }] } };
    expect(composeMountStep({ ...request({}, {}), composite: bad })).toEqual({
      fatal: 'invalid XR: spec.models[0]: must be a ModelCache name or {name: <ModelCache name>}',
    });
  });
});

describe('composeMountStep: namespaces', () => {
  it('holds back a workload placed in another namespace than the cache claims, and says why', () => {
    const elsewhere = inObject('a', {
      ...deployment,
      metadata: { name: 'server', namespace: 'other' },
    });
    const res = run(request({ dep: elsewhere }, { a: 'Ready', b: 'Ready' }));
    expect(res.withheld).toEqual(['dep']);
    expect(res.conditions).toEqual([
      {
        type: 'CachesReady',
        status: 'False',
        reason: 'WorkloadNamespaceMismatch',
        message: `holding back dep on cluster a: it is in namespace other but the cache claims are in ${f.NS}`,
      },
    ]);
  });
});
