import { RunFunctionRequest } from '@crossplane-org/function-sdk-typescript';
import { describe, expect, it } from 'vitest';
import {
  REQUIRE_CLUSTER_PROVIDER_CONFIGS,
  REQUIRE_PROVIDER_CONFIGS,
} from '../function/constants.js';
import { isFatal, type CoreRequest, type CoreResponse } from '../function/core.js';
import type { Json } from '../function/k8s/object.js';
import { cacheModel, composeModelCache } from '../function/modelcache/compose.js';
import { modelCacheSpec } from '../function/api/modelcache.js';
import { toResponse } from '../function/dispatch.js';
import * as f from './support/fixtures.js';
import { World } from './support/world.js';

const NFS = { storageClassName: 'nfs-rwx', classExists: true };

function compose(req: CoreRequest): CoreResponse {
  const res = composeModelCache(req);
  if (isFatal(res)) throw new Error(res.fatal);
  return res;
}

/** A cache on cluster a whose claim is Bound and whose download is under way. */
function hydrating(): World {
  const w = new World(f.HF_WEIGHTS, [f.inferenceClusterXR('a', NFS)]);
  w.reconcile();
  w.set('a', { claim: 'Bound', job: { state: 'running', done: 1, total: 10 } });
  w.reconcile();
  return w;
}

const pvcSpec = (res: CoreResponse): unknown => res.resources['a/pvc']?.['spec'];

describe('no PVC leaves desired state because an input is briefly missing', () => {
  // held: echoed exactly as observed (provider defaults included); recomputed: as composed before.
  const cases: {
    reason: string;
    kept: 'held' | 'recomputed';
    mutate: (req: CoreRequest) => void;
  }[] = [
    {
      reason: 'required resources not resolved yet',
      kept: 'held',
      mutate: (req) => (req.required = {}),
    },
    {
      reason: 'the provider config is not listed (deleted, or not reported yet)',
      kept: 'held',
      mutate: (req) => (req.required[REQUIRE_CLUSTER_PROVIDER_CONFIGS] = []),
    },
    {
      reason: 'the InferenceCluster lost its storage class',
      kept: 'recomputed',
      mutate: (req) => (req.required['inference-clusters'] = [f.inferenceClusterXR('a')]),
    },
    {
      reason: 'the InferenceCluster reports its class absent',
      kept: 'recomputed',
      mutate: (req) =>
        (req.required['inference-clusters'] = [
          f.inferenceClusterXR('a', { storageClassName: 'nfs-rwx', classExists: false }),
        ]),
    },
    {
      reason: 'the InferenceCluster is briefly malformed',
      kept: 'held',
      mutate: (req) =>
        (req.required['inference-clusters'] = [{ metadata: { name: 'a' }, spec: {} }]),
    },
    {
      reason: 'the credential Secret was removed from the control plane',
      kept: 'recomputed',
      mutate: (req) => {
        const creds = req.observed['a/credentials'];
        if (!creds) throw new Error('no credentials Object');
        req.observed['a/credentials'] = f.syncFailed(
          creds,
          'cannot get referenced resource: secrets "hf-token" not found',
        );
      },
    },
  ];
  it.each(cases)('$reason: the claim is $kept', ({ kept, mutate }) => {
    const w = hydrating();
    const before = compose(w.request());
    const req = w.request();
    const observedSpec = req.observed['a/pvc']?.['spec'];
    mutate(req);
    const after = compose(req);
    expect(pvcSpec(after)).toBeDefined();
    expect(pvcSpec(after)).toEqual(kept === 'held' ? observedSpec : pvcSpec(before));
  });

  it('removes the claim only when the cluster is definitively deselected', () => {
    const w = hydrating();
    const req = w.request();
    req.required['inference-clusters'] = [];
    const after = compose(req);
    expect(after.resources).toEqual({});
    expect(after.events).toEqual([
      {
        severity: 'Normal',
        reason: 'ClusterDeselected',
        message: 'cluster a: no longer matched; its cache volume and Objects are removed',
      },
    ]);
  });

  it('reports a removed Secret as WaitingForCredentials once the claim is bound', () => {
    const w = new World(f.HF_WEIGHTS, [f.inferenceClusterXR('a', NFS)]);
    w.reconcile();
    w.set('a', { claim: 'Bound' });
    const req = w.request();
    const creds = req.observed['a/credentials'];
    if (!creds) throw new Error('no credentials Object');
    req.observed['a/credentials'] = f.syncFailed(creds, 'secrets "hf-token" not found');
    const clusters = compose(req).status['clusters'] as Json[];
    expect(clusters.map((c) => [c['phase'], c['reason'], c['message']])).toEqual([
      [
        'Pending',
        'WaitingForCredentials',
        'Secret team-a/hf-token cannot be copied to cluster a yet; check that it exists',
      ],
    ]);
  });
});

describe('latching', () => {
  it('keeps a failed Job observe-only and never recreates it once it is gone', () => {
    const w = hydrating();
    w.set('a', { job: { state: 'failed', error: 'boom' } });
    w.reconcile();
    const latched = w.reconcile();
    const jobKey = Object.keys(latched.resources).find((k) => k.startsWith('a/fetch-'));
    expect(jobKey).toBeDefined();
    expect((latched.resources[jobKey ?? ''] as { spec: Json }).spec['managementPolicies']).toEqual([
      'Observe',
      'Delete',
    ]);
    w.set('a', { job: undefined });
    const after = w.reconcile();
    expect(Object.keys(after.resources).sort()).toEqual(['a/namespace', 'a/pvc']);
    expect((after.status['clusters'] as Json[])[0]?.['reason']).toEqual('FetchFailed');
  });

  it('does not un-ready a staged cluster when the status is read back for another identity', () => {
    const w = hydrating();
    w.set('a', { job: { state: 'complete', revision: 'abc' } });
    w.reconcile();
    w.reconcile();
    w.annotations = { 'modelplane.ai/refetch': '1' };
    const res = w.reconcile();
    expect((res.status['clusters'] as Json[]).map((c) => c['phase'])).toEqual(['Pending']);
    expect(res.ready).toBe(false);
  });
});

describe('Ready belongs to the claim it was staged into', () => {
  /** A cache staged on cluster a into the claim with UID uid-1. */
  function staged(): World {
    const w = hydrating();
    w.set('a', { claimUID: 'uid-1', job: { state: 'complete', revision: 'abc' } });
    w.reconcile();
    w.reconcile();
    return w;
  }
  const phaseOf = (res: CoreResponse): unknown[] =>
    (res.status['clusters'] as Json[]).map((c) => [c['phase'], c['reason'], c['claimUID']]);

  it('stays Ready for the same claim, and records its UID', () => {
    const w = staged();
    w.set('a', { job: undefined });
    expect(phaseOf(w.reconcile())).toEqual([['Ready', 'Staged', 'uid-1']]);
  });
  it('stages again when the claim was re-created (a new, empty volume)', () => {
    const w = staged();
    w.set('a', { claimUID: 'uid-2', job: undefined });
    const res = w.reconcile();
    expect(phaseOf(res)).toEqual([['Pending', 'JobPending', undefined]]);
    expect(Object.keys(res.resources).some((k) => k.startsWith('a/fetch-'))).toBe(true);
  });
  it('stages again when the claim Object is gone', () => {
    const w = staged();
    const req = w.request();
    delete req.observed['a/pvc'];
    expect(phaseOf(compose(req))).toEqual([['Pending', 'PVCPending', undefined]]);
  });
  it('reports a Lost claim as Failed/ClaimLost and runs no Job', () => {
    const w = staged();
    w.set('a', { claim: 'Lost', job: undefined });
    const res = w.reconcile();
    expect(phaseOf(res)).toEqual([['Failed', 'ClaimLost', undefined]]);
    expect(Object.keys(res.resources).sort()).toEqual(['a/namespace', 'a/pvc']);
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
    const req = w.request();
    const once = JSON.stringify(compose(req));
    const twice = JSON.stringify(compose(w.request()));
    const shuffled: CoreRequest = {
      ...req,
      observed: Object.fromEntries(Object.entries(req.observed).reverse()),
      required: {
        ...req.required,
        'inference-clusters': [...(req.required['inference-clusters'] ?? [])].reverse(),
      },
    };
    expect(twice).toEqual(once);
    expect(JSON.stringify(compose(shuffled))).toEqual(once);
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
    const req = w.request();
    const creds = req.observed['a/credentials'];
    if (!creds) throw new Error('no credentials Object');
    const spec = creds['spec'] as Json;
    const manifest = (spec['forProvider'] as Json)['manifest'] as Json;
    const withData = { ...manifest, data: { HF_TOKEN: b64 }, stringData: { HF_TOKEN: SENTINEL } };
    req.observed['a/credentials'] = {
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
      mutate: (req) => (
        (req.required[REQUIRE_PROVIDER_CONFIGS] = []),
        (req.required[REQUIRE_CLUSTER_PROVIDER_CONFIGS] = [])
      ),
    },
  ];
  it.each(variants)('$reason', ({ mutate }) => {
    const req = leakyObserved(hydrating());
    mutate(req);
    const core = compose(req);
    const wire = JSON.stringify(
      toResponse(RunFunctionRequest.fromPartial({ meta: { tag: 't' } }), req.composite, core),
    );
    expect(wire.includes(SENTINEL)).toBe(false);
    expect(wire.includes(b64)).toBe(false);
    expect(wire.includes('"a/pvc"')).toBe(true);
  });
});
