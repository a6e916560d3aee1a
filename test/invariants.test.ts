// The invariants of the product, as update sequences (each step a reconcile, as LeaderWorkerSet's
// integration tests step through updates): for every transient input, at every stage of a
// cluster's life, what is kept exactly as observed, and that nothing changes once it passes.
import { RunFunctionRequest } from '@crossplane-org/function-sdk-typescript';
import { describe, expect, it } from 'vitest';
import { modelCacheSpec } from '../function/api/modelcache.js';
import { isFatal, type CoreRequest } from '../function/core.js';
import { toResponse } from '../function/dispatch.js';
import { holdObserved, providerObject, type Json } from '../function/k8s/object.js';
import { cacheModel } from '../function/modelcache/cache-model.js';
import { composeModelCache } from '../function/modelcache/compose.js';
import { composeModelCacheReplica } from '../function/modelcachereplica/compose.js';
import { composeModelDeployment } from '../function/modeldeployment/compose.js';
import { composeMountStep } from '../function/mountstep/compose.js';
import * as f from './support/fixtures.js';
import { World, rolesOf, type Round } from './support/world.js';

const NFS = { storageClassName: 'nfs-rwx', classExists: true };

/** A cache on cluster a at one stage of its life, two rounds in (so every latch is written). */
function at(stage: 'hydrating' | 'ready' | 'fetch-failed'): World {
  const w = new World(f.HF_WEIGHTS, [f.inferenceClusterXR('a', NFS)]);
  w.reconcile();
  w.set('a', { claim: 'Bound', claimUID: 'uid-1', job: { state: 'running', done: 1, total: 10 } });
  w.reconcile();
  if (stage === 'ready') w.set('a', { job: { state: 'complete', revision: 'abc' } });
  if (stage === 'fetch-failed') w.set('a', { job: { state: 'failed', error: 'boom' } });
  w.reconcile();
  w.reconcile();
  // Ready: the call that removes the Job, then the one that finds nothing to change (steady:
  // from then on the replica reads no input and holds its Objects as observed).
  if (stage === 'ready') w.reconcile();
  return w;
}

/** What a round leaves on cluster a: its entry, its replica's phase, its Objects and their specs. */
function snapshot(w: World, round: Round): Json {
  const replica = round.replicas['a'];
  return {
    entry: ((round.cache.status['clusters'] as Json[] | undefined) ?? [])[0],
    ready: round.cache.ready,
    replicaStatus: replica?.status,
    roles: rolesOf(replica),
    pvc: replica?.resources['pvc']?.['spec'],
    asked: w.replicas.get('a')?.asked,
  };
}

/**
 * held: the replica cannot recompute and echoes its Objects exactly as observed (provider
 * defaults included); recomputed: the replica sees nothing missing and composes as before.
 */
const TRANSIENT: {
  reason: string;
  kept: 'held' | 'recomputed';
  on: (w: World) => void;
  off: (w: World) => void;
}[] = [
  {
    reason: "the cache's requirements are not resolved yet",
    kept: 'recomputed',
    on: (w) => (w.resolved = false),
    off: (w) => (w.resolved = true),
  },
  {
    reason: "the replica's requirements are not resolved yet",
    kept: 'held',
    on: (w) => (w.replicasResolved = false),
    off: (w) => (w.replicasResolved = true),
  },
  {
    reason: 'the InferenceCluster is malformed (as the cache and the replica read it)',
    kept: 'held',
    on: (w) => {
      w.clusters = [{ ...f.inferenceClusterXR('a', NFS), spec: {} }];
      w.clusterOverride.set('a', w.clusters);
    },
    off: (w) => {
      w.clusters = [f.inferenceClusterXR('a', NFS)];
      w.clusterOverride.delete('a');
    },
  },
  {
    reason: "the InferenceCluster is missing from the replica's requirement only",
    kept: 'held',
    on: (w) => w.clusterOverride.set('a', []),
    off: (w) => w.clusterOverride.delete('a'),
  },
  {
    reason: 'the provider config is not listed yet for the replica',
    kept: 'held',
    on: (w) =>
      w.clusterOverride.set('a', [
        f.inferenceClusterXR('a', {
          ...NFS,
          providerConfig: { kind: 'ClusterProviderConfig', name: 'a-renamed' },
        }),
      ]),
    off: (w) => w.clusterOverride.delete('a'),
  },
  {
    reason: "the cache's status is briefly empty",
    kept: 'recomputed',
    on: (w) => (w.status = undefined),
    off: () => undefined,
  },
];

describe.each(['hydrating', 'ready', 'fetch-failed'] as const)('a cluster that is %s', (stage) => {
  it.each(TRANSIENT)(
    '$reason: claim $kept, Objects and latch kept; nothing changes once it passes',
    ({ kept, on, off }) => {
      const w = at(stage);
      const before = snapshot(w, w.reconcile());
      const observedPvc = w.replicaRequest('a').observed['pvc']?.['spec'];
      on(w);
      const during = w.reconcile();
      // The claim is never dropped and the replica is never removed or rewritten.
      expect(w.replicas.get('a')?.asked).toEqual(before['asked']);
      expect(during.replicas['a']?.resources['pvc']?.['spec']).toEqual(
        kept === 'held' ? observedPvc : before['pvc'],
      );
      // The latch holds: the replica reports what it reported before.
      expect(during.replicas['a']?.status).toEqual(before['replicaStatus']);
      // Nothing is created again for a latched cluster (no Secret, RBAC or Job).
      if (stage !== 'hydrating') {
        expect(
          rolesOf(during.replicas['a']).filter(
            (r) => r !== 'namespace' && r !== 'pvc' && r !== 'fetch',
          ),
        ).toEqual([]);
      }
      off(w);
      w.reconcile();
      expect(snapshot(w, w.reconcile())).toEqual(before);
    },
  );
});

describe('only a definitive change removes or re-stages', () => {
  it('a cluster that leaves the selection loses its replica (and with it the claim), with an event', () => {
    const w = at('ready');
    w.clusters = [];
    const round = w.reconcile();
    expect(w.replicas.size).toBe(0);
    expect(round.cache.resources).toEqual({});
    expect(w.remote.get('a')).toEqual({ claim: undefined, claimUID: undefined, job: undefined });
  });

  it('a provider config that is listed as absent fails fast, holding the claim and the Job', () => {
    const w = at('hydrating');
    w.missingProviderConfigs.add('a');
    const round = w.reconcile();
    expect(round.replicas['a']?.status).toMatchObject({
      phase: 'Failed',
      reason: 'ProviderConfigNotFound',
    });
    expect(rolesOf(round.replicas['a'])).toEqual(['fetch', 'namespace', 'pvc']);
  });

  it('a removed Secret is WaitingForCredentials once the claim is bound, the claim kept', () => {
    const w = new World(f.HF_WEIGHTS, [f.inferenceClusterXR('a', NFS)]);
    w.reconcile();
    w.set('a', { claim: 'Bound' });
    w.secretGone.add('a');
    w.reconcile();
    const round = w.reconcile();
    expect(round.replicas['a']?.status).toMatchObject({
      phase: 'Pending',
      reason: 'WaitingForCredentials',
      message: 'Secret team-a/hf-token cannot be copied to cluster a yet; check that it exists',
    });
    expect(round.replicas['a']?.resources['pvc']).toBeDefined();
  });
});

describe('latching on the replica', () => {
  it('keeps a failed Job observe-only and never recreates it once it is gone', () => {
    const w = at('fetch-failed');
    const latched = w.reconcile().replicas['a'];
    const jobKey = Object.keys(latched?.resources ?? {}).find((k) => k.startsWith('fetch-'));
    expect((latched?.resources[jobKey ?? ''] as { spec: Json }).spec['managementPolicies']).toEqual(
      ['Observe', 'Delete'],
    );
    w.set('a', { job: undefined });
    const after = w.reconcile();
    expect(rolesOf(after.replicas['a'])).toEqual(['namespace', 'pvc']);
    expect(after.cache.status['clusters']).toEqual([
      { name: 'a', phase: 'Failed', reason: 'FetchFailed' },
    ]);
  });

  it('a refetch token re-stages: the cache reports Pending until the replica reports the new identity', () => {
    const w = at('ready');
    w.annotations = { 'modelplane.ai/refetch': '1' };
    const cacheOnly = w.reconcileCache();
    expect(cacheOnly.status['clusters']).toEqual([
      { name: 'a', phase: 'Pending', reason: 'ReplicaPending' },
    ]);
    const round = w.reconcile();
    expect(round.cache.status['clusters']).toEqual([
      { name: 'a', phase: 'Pending', reason: 'JobPending' },
    ]);
    expect(round.cache.ready).toBe(false);
  });
});

describe('Ready belongs to the claim it was staged into', () => {
  const phaseOf = (round: Round): unknown[] => {
    const s = round.replicas['a']?.status as Json;
    return [s['phase'], s['reason'], s['claimUID']];
  };
  it('stays Ready for the same claim, and records its UID', () => {
    const w = at('ready');
    w.set('a', { job: undefined });
    expect(phaseOf(w.reconcile())).toEqual(['Ready', 'Staged', 'uid-1']);
  });
  it("records the claim's UID once it is seen, when the Job completed before the claim's Object showed it", () => {
    // The real stack (e2e hf): provider-kubernetes had not yet read the created claim back when
    // the fast Job completed, so Ready was latched without a UID and kept so while steady.
    const w = new World(f.HF_WEIGHTS, [f.inferenceClusterXR('a', NFS)]);
    w.reconcile();
    w.set('a', { claim: 'Bound', job: { state: 'complete', revision: 'abc' } });
    w.reconcile();
    w.reconcile();
    w.set('a', { job: undefined });
    expect(phaseOf(w.reconcile())).toEqual(['Ready', 'Staged', undefined]);
    w.set('a', { claimUID: 'uid-1' });
    expect(phaseOf(w.reconcile())).toEqual(['Ready', 'Staged', 'uid-1']);
    // From then on the UID protects the latch as for any claim staged into.
    w.set('a', { claimUID: 'uid-2' });
    const round = w.reconcile();
    expect(phaseOf(round)).toEqual(['Pending', 'JobPending', undefined]);
    expect(rolesOf(round.replicas['a'])).toContain('fetch');
  });
  it('stages again when the claim was re-created (a new, empty volume)', () => {
    const w = at('ready');
    w.set('a', { claimUID: 'uid-2', job: undefined });
    const round = w.reconcile();
    expect(phaseOf(round)).toEqual(['Pending', 'JobPending', undefined]);
    expect(rolesOf(round.replicas['a'])).toContain('fetch');
  });
  it('stages again when the claim Object is gone', () => {
    const w = at('ready');
    const req = w.replicaRequest('a');
    delete req.observed['pvc'];
    const res = composeModelCacheReplica(req);
    if (isFatal(res)) throw new Error(res.fatal);
    expect([res.status['phase'], res.status['reason']]).toEqual(['Pending', 'PVCPending']);
  });
  it('reports a Lost claim as Failed/ClaimLost and runs no Job', () => {
    const w = at('ready');
    w.set('a', { claim: 'Lost', job: undefined });
    const round = w.reconcile();
    expect(phaseOf(round)).toEqual(['Failed', 'ClaimLost', undefined]);
    expect(rolesOf(round.replicas['a'])).toEqual(['namespace', 'pvc']);
  });
});

describe('determinism', () => {
  it('gives byte-identical output for the same request, whatever the input order', () => {
    const w = new World(
      f.HF_WEIGHTS,
      ['c', 'a', 'b'].map((n) => f.inferenceClusterXR(n, NFS)),
    );
    w.reconcile();
    w.set('a', { claim: 'Bound', job: { state: 'running', done: 1, total: 2 } });
    w.set('b', { claim: 'Pending' });
    w.reconcile();
    const compose = (req: CoreRequest): string => JSON.stringify(composeModelCache(req));
    const req = w.cacheRequest();
    const once = compose(req);
    const shuffled: CoreRequest = {
      ...req,
      observed: Object.fromEntries(Object.entries(req.observed).reverse()),
      required: {
        ...req.required,
        'inference-clusters': [...(req.required['inference-clusters'] ?? [])].reverse(),
      },
    };
    expect(compose(w.cacheRequest())).toEqual(once);
    expect(compose(shuffled)).toEqual(once);
    const replica = w.replicaRequest('a');
    const reversed = {
      ...replica,
      observed: Object.fromEntries(Object.entries(replica.observed).reverse()),
    };
    expect(JSON.stringify(composeModelCacheReplica(reversed))).toEqual(
      JSON.stringify(composeModelCacheReplica(replica)),
    );
  });
});

describe('remote names', () => {
  const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  const names = [
    'llama',
    'a',
    'a.b',
    'a-b',
    'x'.repeat(63),
    'x'.repeat(253),
    `${'seg.'.repeat(60)}end`,
    '0-9',
    'model.v1.2-instruct',
  ];
  const spec = modelCacheSpec.parse(f.HF_WEIGHTS);
  it.each(names)('%s maps to DNS-1123 labels of at most 63 characters', (name) => {
    for (const refetch of [undefined, 'r'.repeat(200)]) {
      const m = cacheModel(name, 'team-a', spec, refetch);
      for (const n of Object.values(m.names)) {
        expect(n.length).toBeLessThanOrEqual(63);
        expect(n).toMatch(LABEL);
      }
    }
  });
  it('never maps two cache names to the same claim', () => {
    const claims = names.map((n) => cacheModel(n, 'ns', spec, undefined).names.claim);
    expect(new Set(claims).size).toEqual(names.length);
  });
});

describe('secrets never pass through the Function', () => {
  const SENTINEL = 'hf_SENTINEL_do_not_leak_8c1f';
  const b64 = Buffer.from(SENTINEL).toString('base64');

  /** provider-kubernetes persists patched values in the Object spec and, unsanitised, in status. */
  function leakyObserved(w: World): CoreRequest {
    const req = w.replicaRequest('a');
    const creds = req.observed['credentials'];
    if (!creds) throw new Error('no credentials Object');
    const spec = creds['spec'] as Json;
    const manifest = (spec['forProvider'] as Json)['manifest'] as Json;
    const withData = { ...manifest, data: { HF_TOKEN: b64 }, stringData: { HF_TOKEN: SENTINEL } };
    req.observed['credentials'] = {
      ...creds,
      spec: { ...spec, forProvider: { manifest: withData } },
      status: { atProvider: { manifest: withData } },
    };
    return req;
  }

  const variants: { reason: string; mutate: (req: CoreRequest) => void }[] = [
    { reason: 'while hydrating', mutate: () => undefined },
    {
      reason: 'while requirements are unresolved (resources are held)',
      mutate: (req) => (req.required = {}),
    },
    {
      reason: 'while the provider config is missing',
      mutate: (req) => (req.required['provider-config'] = []),
    },
    {
      reason: 'while the InferenceCluster is malformed',
      mutate: (req) => (req.required['inference-cluster'] = [{ metadata: { name: 'a' } }]),
    },
  ];
  it.each(variants)('$reason', ({ mutate }) => {
    const req = leakyObserved(at('hydrating'));
    mutate(req);
    const core = composeModelCacheReplica(req);
    if (isFatal(core)) throw new Error(core.fatal);
    const wire = JSON.stringify(
      toResponse(RunFunctionRequest.fromPartial({ meta: { tag: 't' } }), req.composite, core),
    );
    expect(wire.includes(SENTINEL)).toBe(false);
    expect(wire.includes(b64)).toBe(false);
    expect(wire.includes('"pvc"')).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Consumers: a running workload is never torn down, rewritten or rolled out without its model
// volume because an input is briefly missing or malformed.

const ENGINE = { image: 'vllm/vllm-openai:v0.6.3' };
const DEPLOYMENT = f.modelDeployment({ caches: [{ name: 'llama' }], engine: ENGINE });
const CLUSTER_A = f.inferenceClusterXR('a', NFS);
const READY_CACHE = f.cacheWithStatus('llama', 'Weights', '/mnt/model', { a: 'Ready' });

/** What a consumer is given, and how each transient input changes it. */
interface ConsumerInputs {
  clusters: Json[] | undefined;
  cache: Json[] | undefined;
}
/**
 * recomposed: the ModelDeployment composes the workload itself, so a renamed provider config
 * is a definitive change it follows (same remote workload, its mounts intact); a mount step
 * only amends other steps' workloads and cannot tell where such a workload runs.
 */
const CONSUMER_TRANSIENT: {
  reason: string;
  recomposed?: true;
  mutate: (i: ConsumerInputs) => ConsumerInputs;
}[] = [
  { reason: 'the clusters are not resolved yet', mutate: (i) => ({ ...i, clusters: undefined }) },
  { reason: 'the cache is not fetched yet', mutate: (i) => ({ ...i, cache: undefined }) },
  {
    reason: 'issue13 #6/#7: the InferenceCluster fails to parse',
    mutate: (i) => ({ ...i, clusters: [{ ...CLUSTER_A, spec: {} }] }),
  },
  {
    reason:
      'issue13 #7: the InferenceCluster now reaches its cluster through a renamed provider config',
    recomposed: true,
    mutate: (i) => ({
      ...i,
      clusters: [
        f.inferenceClusterXR('a', {
          ...NFS,
          providerConfig: { kind: 'ClusterProviderConfig', name: 'a-renamed' },
        }),
      ],
    }),
  },
  {
    reason: "the cache's status is briefly empty",
    mutate: (i) => ({ ...i, cache: [{ ...READY_CACHE, status: {} }] }),
  },
  {
    reason: 'the cache re-stages on the cluster (refetch)',
    mutate: (i) => ({
      ...i,
      cache: [
        f.cacheWithStatus('llama', 'Weights', '/mnt/model', { a: ['Pending', 'ReplicaPending'] }),
      ],
    }),
  },
];

function required(i: ConsumerInputs): CoreRequest['required'] {
  return {
    ...(i.clusters !== undefined ? { 'inference-clusters': i.clusters } : {}),
    ...(i.cache !== undefined ? { 'cache-llama': i.cache } : {}),
  };
}
const STEADY: ConsumerInputs = { clusters: [CLUSTER_A], cache: [READY_CACHE] };

describe('ModelDeployment: a running workload is held exactly as observed', () => {
  const first = composeModelDeployment(
    f.deploymentRequest(DEPLOYMENT, [CLUSTER_A], { llama: READY_CACHE }),
  );
  if (isFatal(first)) throw new Error(first.fatal);
  const running = f.observedObject(first.resources['a/workload'] as Json, undefined);
  it.each(CONSUMER_TRANSIENT)('$reason', ({ mutate, recomposed }) => {
    const res = composeModelDeployment({
      composite: DEPLOYMENT,
      observed: { 'a/workload': running },
      required: required(mutate(STEADY)),
      input: undefined,
    });
    if (isFatal(res)) throw new Error(res.fatal);
    if (recomposed)
      expect((res.resources['a/workload'] as { spec: Json }).spec['providerConfigRef']).toEqual({
        kind: 'ClusterProviderConfig',
        name: 'a-renamed',
      });
    else expect(res.resources['a/workload']).toEqual(holdObserved(running));
    // And it still mounts the cache.
    expect(JSON.stringify(res.resources['a/workload'])).toContain('"claimName":"modelcache-llama"');
  });
});

describe('mount step: a running workload keeps its mounts, a new one waits', () => {
  const INPUT = {
    apiVersion: 'modelcache.fn.modelplane.ai/v1alpha1',
    kind: 'MountCaches',
    cachesFrom: 'spec.caches',
  };
  const author = providerObject({
    providerConfigRef: { kind: 'ClusterProviderConfig', name: 'a' },
    manifest: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'server', namespace: f.NS },
      spec: { template: { spec: { containers: [{ name: 'server', image: 'x' }] } } },
    },
  });
  const xr = { ...DEPLOYMENT, kind: 'InferenceApp', apiVersion: 'example.org/v1' };
  const mountReq = (i: ConsumerInputs, observed: Record<string, Json>): CoreRequest => ({
    composite: xr,
    observed,
    required: required(i),
    input: INPUT,
    desired: { server: author },
  });
  const first = composeMountStep(mountReq(STEADY, {}));
  if (isFatal(first)) throw new Error(first.fatal);
  const running = f.observedObject(first.resources['server'] as Json, undefined);
  it.each(CONSUMER_TRANSIENT)('$reason', ({ mutate }) => {
    const kept = composeMountStep(mountReq(mutate(STEADY), { server: running }));
    if (isFatal(kept)) throw new Error(kept.fatal);
    expect(kept.resources['server']).toEqual(holdObserved(running));
    expect(JSON.stringify(kept.resources['server'])).toContain('"claimName":"modelcache-llama"');
    const fresh = composeMountStep(mountReq(mutate(STEADY), {}));
    if (isFatal(fresh)) throw new Error(fresh.fatal);
    expect(fresh.resources['server']).toBeUndefined();
    expect(fresh.withheld).toEqual(['server']);
  });
});

describe('issue13 #8: one idea of the effective provider config', () => {
  it('the mount step maps a workload by the provider config the InferenceCluster reports (status), as the cores do', () => {
    const ic = {
      ...f.inferenceClusterXR('a', NFS),
      spec: { providerConfigRef: { kind: 'ClusterProviderConfig', name: 'asked-for' } },
    };
    const author = providerObject({
      providerConfigRef: { kind: 'ClusterProviderConfig', name: 'a' },
      manifest: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'server', namespace: f.NS },
        spec: { template: { spec: { containers: [{ name: 'server', image: 'x' }] } } },
      },
    });
    const res = composeMountStep({
      composite: { ...DEPLOYMENT, kind: 'InferenceApp', apiVersion: 'example.org/v1' },
      observed: {},
      required: { 'inference-clusters': [ic], 'cache-llama': [READY_CACHE] },
      input: {
        apiVersion: 'modelcache.fn.modelplane.ai/v1alpha1',
        kind: 'MountCaches',
        cachesFrom: 'spec.caches',
      },
      desired: { server: author },
    });
    if (isFatal(res)) throw new Error(res.fatal);
    expect(res.conditions.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['CachesReady', 'True', 'Ready'],
    ]);
    expect(JSON.stringify(res.resources['server'])).toContain('"claimName":"modelcache-llama"');
  });
});
