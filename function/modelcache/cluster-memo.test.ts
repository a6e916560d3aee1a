import {
  RunFunctionRequest,
  RunFunctionResponse,
  type Resource,
} from '@crossplane-org/function-sdk-typescript';
import { describe, expect, it } from 'vitest';

import { viaOwnCodec, viaSdkCodec } from '../../test/support/codecs.js';
import * as f from '../../test/support/fixtures.js';
import { toRunFunctionRequest } from '../../test/support/requests.js';
import { World } from '../../test/support/world.js';
import { LAZY_LARGE, decodeStructLazily, encodeStruct, isUndecoded } from '../codec/struct.js';
import type { Json } from '../k8s/object.js';
import { ClusterMemo, type MemoResult } from './cluster-memo.js';
import { clusterMemo } from './compose.js';
import type { ClusterContext, ClusterResult } from './model.js';

const GiB = 2 ** 30;

/** `json` as the fast codec hands an observed resource over: undecoded bytes, fresh per call. */
function observedFrom(json: Json): Json {
  const bytes = Buffer.from(encodeStruct(json));
  return decodeStructLazily(bytes, 0, bytes.length, LAZY_LARGE);
}

function context(
  over: Partial<ClusterContext> & { observed: Record<string, Json> },
): ClusterContext {
  return {
    cache: {} as ClusterContext['cache'],
    cluster: {
      name: 'us-east',
      providerConfigRef: { kind: 'ClusterProviderConfig', name: 'us-east' },
      storageClassName: 'nfs',
      classExists: true,
    },
    latched: undefined,
    blocker: undefined,
    input: { ttlSeconds: 60 } as ClusterContext['input'],
    ...over,
  };
}

/** What the backend answers (for expectations). */
function pure(ctx: ClusterContext): ClusterResult {
  return {
    resources: { pvc: { seen: Object.keys(ctx.observed).sort() } },
    status: {
      name: ctx.cluster.name,
      phase: 'Pending',
      reason: 'PVCPending',
      message: '',
      namespace: 'team-a',
      claimName: 'c',
      identity: 'i',
    },
    volume: {},
  };
}

let computed = 0;
/** The backend the memo calls: counts how often it is computed. */
function backend(ctx: ClusterContext): ClusterResult {
  computed++;
  return pure(ctx);
}

const ready = { status: { conditions: [{ type: 'Ready', status: 'True' }] } };

describe('ClusterMemo: when a cluster is recomputed', () => {
  const pvc = { kind: 'Object', spec: { x: 1 } };
  // Contexts are made anew per call: the codec hands over fresh, undecoded objects each time.
  const base = (): ClusterContext => context({ observed: { pvc: observedFrom(pvc) } });
  const cases: {
    reason: string;
    /** The call after the result was kept (two calls with base's inputs before it). */
    third: () => ClusterContext;
    thirdCall?: string;
    /** Computed on the third call, or answered from the kept result. */
    computed: boolean;
  }[] = [
    {
      reason: 'same bytes, same context: the kept result is handed back',
      third: base,
      computed: false,
    },
    {
      reason: 'one observed byte differs',
      third: () => context({ observed: { pvc: observedFrom({ ...pvc, spec: { x: 2 } }) } }),
      computed: true,
    },
    {
      reason: 'a role appeared',
      third: () => context({ observed: { pvc: observedFrom(pvc), job: observedFrom(pvc) } }),
      computed: true,
    },
    {
      reason: 'the latched status changed',
      third: () =>
        context({
          observed: { pvc: observedFrom(pvc) },
          latched: pure(context({ observed: {} })).status,
        }),
      computed: true,
    },
    {
      reason: 'a blocker appeared',
      third: () =>
        context({
          observed: { pvc: observedFrom(pvc) },
          blocker: { reason: 'ProviderConfigNotFound', message: 'gone' },
        }),
      computed: true,
    },
    {
      reason: 'the InferenceCluster view changed',
      third: () =>
        context({
          observed: { pvc: observedFrom(pvc) },
          cluster: { ...context({ observed: {} }).cluster, storageClassName: 'other' },
        }),
      computed: true,
    },
    {
      reason: 'the call key (spec, metadata, input) changed',
      third: base,
      thirdCall: 'spec-2',
      computed: true,
    },
    {
      reason: 'bytes are unknown (not decoded by the fast codec): always computed',
      third: () => context({ observed: { pvc: structuredClone(pvc) } }),
      computed: true,
    },
  ];

  it.each(cases)('$reason', ({ third, thirdCall, computed: computedThird }) => {
    const memo = new ClusterMemo();
    const call = (ctx: ClusterContext, key = 'spec-1'): MemoResult => {
      const c = memo.begin('team-a/llama', key);
      const r = c.cluster(ctx, backend);
      c.end();
      return r;
    };
    computed = 0;
    const first = base();
    expect(call(first).result).toEqual(pure(first));
    expect(computed).toBe(1);
    // Seen unchanged a second time: computed once more, and now kept.
    const second = base();
    expect(call(second).result).toEqual(pure(second));
    expect(computed).toBe(2);
    const ctx = third();
    expect(call(ctx, thirdCall).result).toEqual(pure(ctx));
    expect(computed).toBe(computedThird ? 3 : 2);
  });

  it('keeps nothing but the inputs of a cluster that changes on every call', () => {
    const memo = new ClusterMemo();
    computed = 0;
    for (let i = 0; i < 4; i++) {
      const c = memo.begin('team-a/llama', 'k');
      const { result, observedReady } = c.cluster(
        context({ observed: { pvc: observedFrom({ step: i }) } }),
        backend,
      );
      c.end();
      // The computed objects themselves: nothing encoded, readiness left to the caller.
      expect(isUndecoded(result.resources['pvc'])).toBe(false);
      expect(observedReady).toBeUndefined();
    }
    expect(computed).toBe(4);
    expect(memo.stats).toEqual({ hits: 0, misses: 4, unkeyed: 0 });
  });

  it('hands back resources as the bytes it encoded, a frozen status, and observed readiness', () => {
    const memo = new ClusterMemo();
    const ctx = (): ClusterContext =>
      context({ observed: { pvc: observedFrom(ready), job: observedFrom({}) } });
    let answer: MemoResult | undefined;
    for (let i = 0; i < 2; i++) {
      const call = memo.begin('team-a/llama', 'k');
      answer = call.cluster(ctx(), backend);
      call.end();
    }
    const { result, observedReady } = answer ?? { result: pure(ctx()) };
    // Written back as the bytes encodeStruct gave, without decoding them.
    const pvc = result.resources['pvc'] ?? {};
    expect(isUndecoded(pvc)).toBe(true);
    expect(encodeStruct(pvc)).toEqual(encodeStruct(pure(ctx()).resources['pvc'] ?? {}));
    expect(result).toEqual(pure(ctx()));
    expect(Object.isFrozen(result.status)).toBe(true);
    expect(observedReady).toEqual({ job: false, pvc: true });
  });

  it('keeps only the last call of each cache, and drops the least recently called over budget', () => {
    const observed = (): Record<string, Json> => ({ pvc: observedFrom({ pad: 'x'.repeat(1000) }) });
    // One cluster holds about 3.1 KB (1 KB of input, its result, 2 KB overhead): room for two.
    const memo = new ClusterMemo(7000);
    for (const name of ['a', 'b', 'c']) {
      // Twice: a result is kept from the second unchanged call on.
      for (let i = 0; i < 2; i++) {
        const call = memo.begin(name, 'k');
        call.cluster(context({ observed: observed() }), backend);
        call.end();
      }
    }
    expect(memo.heldBytes).toBeLessThanOrEqual(7000);
    computed = 0;
    for (const name of ['c', 'b', 'a']) {
      const call = memo.begin(name, 'k');
      call.cluster(context({ observed: observed() }), backend);
      call.end();
    }
    // c and b were held (hits); a had been dropped as least recently called, then evicted c.
    expect(computed).toBe(1);
    expect(memo.stats).toEqual({ hits: 2, misses: 7, unkeyed: 0 });
  });
});

describe('ModelCache through the codec with the memo', () => {
  it('answers byte for byte as without it, at every step of a lifecycle, called three times per step', () => {
    const w = new World(
      f.HF_WEIGHTS,
      ['a', 'b', 'c'].map((n) =>
        f.inferenceClusterXR(n, { storageClassName: 'nfs-rwx', classExists: true }),
      ),
    );
    clusterMemo.clear();
    let hits = 0;
    let misses = 0;
    const counted = (bytes: Buffer): Buffer => {
      const before = { ...clusterMemo.stats };
      const out = viaOwnCodec(bytes);
      hits += clusterMemo.stats.hits - before.hits;
      misses += clusterMemo.stats.misses - before.misses;
      return out;
    };
    const steps: (() => void)[] = [
      () => undefined,
      () => {
        w.set('a', { claim: 'Bound', job: { state: 'created' } });
        w.set('b', { claim: 'Pending' });
      },
      () => {
        w.set('a', { job: { state: 'running', done: 1 * GiB, total: 4 * GiB } });
        w.set('b', { claim: 'Bound', job: { state: 'running' } });
        w.set('c', { claim: 'Bound', job: { state: 'running', done: 0, total: 4 * GiB } });
      },
      () => {
        w.set('a', { job: { state: 'complete', revision: '0e9e39f2' } });
        w.set('c', { job: { state: 'failed', error: 'model.safetensors: connection reset' } });
      },
      () => {
        w.set('b', { job: { state: 'complete', revision: '0e9e39f2' } });
      },
      () => {
        w.annotations = { 'modelplane.ai/refetch': '2026-11-27' };
      },
      () => {
        for (const n of ['a', 'b', 'c']) w.set(n, { job: { state: 'complete', revision: 'ab' } });
      },
    ];
    for (const change of steps) {
      change();
      const bytes = Buffer.from(
        RunFunctionRequest.encode(toRunFunctionRequest(w.request())).finish(),
      );
      const reference = viaSdkCodec(bytes);
      expect(counted(bytes)).toEqual(reference);
      expect(counted(bytes)).toEqual(reference);
      const before = hits;
      expect(counted(bytes)).toEqual(reference);
      // By the third identical call every cluster's result is kept and handed back.
      expect(hits - before).toBe(3);
      // Advance the world with the response the Function gave.
      const rsp = RunFunctionResponse.decode(reference);
      const status = rsp.desired?.composite?.resource?.['status'] as Json;
      w.status = status;
      w.desired = Object.fromEntries(
        Object.entries(rsp.desired?.resources ?? {}).map(([k, r]: [string, Resource]) => [
          k,
          r.resource as Json,
        ]),
      );
    }
    expect(misses).toBeGreaterThan(0);
    expect(hits + misses).toBe(steps.length * 3 * 3);
  });
});
