import { describe, expect, it } from 'vitest';
import type { CoreRequest } from '../core.js';
import type { Json } from '../k8s/object.js';
import * as f from '../../test/support/fixtures.js';
import { golden, wire } from '../../test/support/golden.js';
import { composeModelDeployment, spread } from './compose.js';

const NFS = { storageClassName: 'nfs-rwx', classExists: true };
const clusters = (...names: string[]): Json[] => names.map((n) => f.inferenceClusterXR(n, NFS));
const ENGINE = {
  image: 'vllm/vllm-openai:v0.6.3',
  args: ['--model', '$(MODELCACHE_WEIGHTS_PATH)'],
};
const GANG = {
  caches: [{ name: 'llama', kind: 'Weights' }],
  replicas: 1,
  engine: ENGINE,
  topology: { strategy: 'TensorPipeline', tensor: 8, pipeline: 2 },
};
const weights = (phases: Record<string, f.CachePhase | [f.CachePhase, string]>): Json =>
  f.cacheWithStatus('llama', 'Weights', '/mnt/model', phases);

const cases: { name: string; reason: string; req: CoreRequest }[] = [
  {
    name: 'standalone-ready',
    reason:
      'one Ready cache on one cluster: a Deployment mounting it read-only, env with its path, a Usage',
    req: f.deploymentRequest(
      f.modelDeployment({ caches: [{ name: 'llama' }], replicas: 2, engine: ENGINE }),
      clusters('us-east'),
      { llama: weights({ 'us-east': 'Ready' }) },
    ),
  },
  {
    name: 'gang-one-of-three-ready',
    reason:
      'a gang is placed only where the cache is Ready; Hydrating and NoRWXStorageClass clusters get nothing and say why',
    req: f.deploymentRequest(f.modelDeployment(GANG), clusters('a', 'b', 'c'), {
      llama: weights({ a: 'Ready', b: 'Hydrating', c: ['Failed', 'NoRWXStorageClass'] }),
    }),
  },
  {
    name: 'weights-and-tokenizer',
    reason: 'two caches mount at their own paths in every container, each exposed by an env var',
    req: f.deploymentRequest(
      f.modelDeployment({
        caches: [
          { name: 'llama', kind: 'Weights' },
          { name: 'tok', kind: 'Tokenizer' },
        ],
        engine: ENGINE,
      }),
      clusters('us-east'),
      {
        llama: weights({ 'us-east': 'Ready' }),
        tok: f.cacheWithStatus('tok', 'Tokenizer', '/mnt/tokenizer', { 'us-east': 'Ready' }),
      },
    ),
  },
  {
    name: 'cache-not-found',
    reason: 'a missing cache places nothing and names the cache',
    req: f.deploymentRequest(
      f.modelDeployment({ caches: [{ name: 'nope' }], engine: ENGINE }),
      clusters('a'),
      { nope: undefined },
    ),
  },
  {
    name: 'mount-path-conflict',
    reason: 'two caches at the same path are refused with MountPathConflict',
    req: f.deploymentRequest(
      f.modelDeployment({ caches: [{ name: 'llama' }, { name: 'other' }], engine: ENGINE }),
      clusters('a'),
      {
        llama: weights({ a: 'Ready' }),
        other: f.cacheWithStatus('other', 'Bytes', '/mnt/model', { a: 'Ready' }),
      },
    ),
  },
  {
    name: 'requirements-unresolved',
    reason: 'the first call asks for the clusters and each cache by name',
    req: { composite: f.modelDeployment(GANG), observed: {}, required: {}, input: undefined },
  },
];

describe('composeModelDeployment: whole responses', () => {
  it.each(cases)('$name: $reason', ({ name, req }) => {
    const actual = wire(composeModelDeployment(req));
    expect(actual).toEqual(golden(`modeldeployment/${name}`, actual));
  });
});

describe('spread', () => {
  const table: {
    reason: string;
    replicas: number;
    clusters: string[];
    expected: [string, number][];
  }[] = [
    {
      reason: 'even',
      replicas: 4,
      clusters: ['a', 'b'],
      expected: [
        ['a', 2],
        ['b', 2],
      ],
    },
    {
      reason: 'remainder to the first in name order',
      replicas: 5,
      clusters: ['a', 'b', 'c'],
      expected: [
        ['a', 2],
        ['b', 2],
        ['c', 1],
      ],
    },
    {
      reason: 'fewer replicas than clusters',
      replicas: 1,
      clusters: ['a', 'b'],
      expected: [
        ['a', 1],
        ['b', 0],
      ],
    },
    { reason: 'no clusters', replicas: 3, clusters: [], expected: [] },
  ];
  it.each(table)('$reason', ({ replicas, clusters: cs, expected }) => {
    expect([...spread(replicas, cs).entries()]).toEqual(expected);
  });
});

describe('composeModelDeployment: bad input names the field', () => {
  it.each([
    {
      reason: 'a gang without a Weights cache',
      spec: { ...GANG, caches: [{ name: 'tok', kind: 'Tokenizer' }] },
      fatal:
        'invalid ModelDeployment: spec.caches: a gang (topology.pipeline > 1) needs at least one cache of kind Weights: every pod of a gang must load identical weights',
    },
    {
      reason: 'a Standalone deployment with pipeline > 1',
      spec: { ...GANG, topology: { strategy: 'Standalone', pipeline: 2 } },
      fatal:
        'invalid ModelDeployment: spec.topology.pipeline: must be 1 for Standalone; use strategy TensorPipeline for a multi-pod gang',
    },
    {
      reason: 'the same cache twice',
      spec: { ...GANG, caches: [{ name: 'llama', kind: 'Weights' }, { name: 'llama' }] },
      fatal: 'invalid ModelDeployment: spec.caches: each cache may be referenced once',
    },
  ])('$reason', ({ spec, fatal }) => {
    expect(composeModelDeployment(f.deploymentRequest(f.modelDeployment(spec), [], {}))).toEqual({
      fatal,
    });
  });
});

describe('composeModelDeployment: edge cases', () => {
  const one = clusters('a');
  it('keeps a running workload when its cache fails a refetch (the staged bytes are still there)', () => {
    const spec = { caches: [{ name: 'llama' }], engine: ENGINE };
    const first = composeModelDeployment(
      f.deploymentRequest(f.modelDeployment(spec), one, { llama: weights({ a: 'Ready' }) }),
    );
    if ('fatal' in first) throw new Error(first.fatal);
    const running = f.observedObject(first.resources['a/workload'] as Json, undefined);
    const res = composeModelDeployment(
      f.deploymentRequest(
        f.modelDeployment(spec),
        one,
        { llama: weights({ a: ['Failed', 'FetchFailed'] }) },
        { 'a/workload': running },
      ),
    );
    if ('fatal' in res) throw new Error(res.fatal);
    expect(Object.keys(res.resources).sort()).toEqual(['a/workload', 'usage/llama']);
    expect(res.status['clusters']).toEqual([
      {
        name: 'a',
        replicas: 1,
        reason: 'Held',
        message:
          'kept running while cache llama failed on cluster a (FetchFailed); see ModelCacheReplica team-a/llama-a',
      },
    ]);
  });

  it('treats replicas 0 as scheduled, not as a placement failure', () => {
    const res = composeModelDeployment(
      f.deploymentRequest(
        f.modelDeployment({ caches: [{ name: 'llama' }], replicas: 0, engine: ENGINE }),
        one,
        { llama: weights({ a: 'Ready' }) },
      ),
    );
    if ('fatal' in res) throw new Error(res.fatal);
    expect(res.conditions.find((c) => c.type === 'Scheduled')).toEqual({
      type: 'Scheduled',
      status: 'True',
      reason: 'Placed',
      message: 'spec.replicas is 0: nothing to place',
    });
    expect(res.status['clusters']).toEqual([
      { name: 'a', replicas: 0, reason: 'NoReplicasLeft', message: 'eligible; spec.replicas is 0' },
    ]);
  });

  it("keeps the user's HOME and gives colliding cache names distinct env vars", () => {
    const res = composeModelDeployment(
      f.deploymentRequest(
        f.modelDeployment({
          caches: [{ name: 'a-b' }, { name: 'a.b' }],
          engine: { ...ENGINE, env: [{ name: 'HOME', value: '/data' }] },
        }),
        one,
        {
          'a-b': f.cacheWithStatus('a-b', 'Weights', '/mnt/one', { a: 'Ready' }),
          'a.b': f.cacheWithStatus('a.b', 'Bytes', '/mnt/two', { a: 'Ready' }),
        },
      ),
    );
    if ('fatal' in res) throw new Error(res.fatal);
    const manifest = (
      (res.resources['a/workload'] as Json)['spec'] as { forProvider: { manifest: Json } }
    ).forProvider.manifest;
    const env = (manifest['spec'] as { template: { spec: { containers: { env: Json[] }[] } } })
      .template.spec.containers[0]?.env;
    expect(env).toEqual([
      { name: 'HOME', value: '/data' },
      { name: 'MODELCACHE_BYTES_PATH', value: '/mnt/two' },
      { name: 'MODELCACHE_WEIGHTS_PATH', value: '/mnt/one' },
      { name: 'MODELCACHE_PATH_A_B_D44362', value: '/mnt/one' },
      { name: 'MODELCACHE_PATH_A_B_2E7336', value: '/mnt/two' },
    ]);
  });
});
