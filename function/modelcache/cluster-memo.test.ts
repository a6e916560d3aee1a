import {
  RunFunctionRequest,
  RunFunctionResponse,
  type Resource,
} from '@crossplane-org/function-sdk-typescript';
import pino from 'pino';
import { describe, expect, it } from 'vitest';

import * as f from '../../test/support/fixtures.js';
import { toRunFunctionRequest } from '../../test/support/requests.js';
import { World } from '../../test/support/world.js';
import { decodeRunFunctionRequest } from '../codec/request.js';
import { LAZY_LARGE, decodeStructLazily, encodeStruct, isUndecoded } from '../codec/struct.js';
import { encodeRunFunctionResponse } from '../codec/response.js';
import { runFunction } from '../dispatch.js';
import type { Json } from '../k8s/object.js';
import { ClusterMemo } from './cluster-memo.js';
import { clusterMemo } from './compose.js';
import type { ClusterContext, ClusterResult } from './model.js';

const silent = pino({ level: 'silent' });
const GiB = 2 ** 30;

/** The response bytes for a request, decoded by the fast codec (which records wire bytes). */
function viaFastCodec(bytes: Buffer): Buffer {
  return encodeRunFunctionResponse(runFunction(decodeRunFunctionRequest(bytes), silent));
}

/** The same through the SDK's decoder: no wire bytes are recorded, so nothing is memoized. */
function viaSdkCodec(bytes: Buffer): Buffer {
  return Buffer.from(
    RunFunctionResponse.encode(runFunction(RunFunctionRequest.decode(bytes), silent)).finish(),
  );
}

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

let computed = 0;
function backend(ctx: ClusterContext): ClusterResult {
  computed++;
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

const ready = { status: { conditions: [{ type: 'Ready', status: 'True' }] } };

describe('ClusterMemo: when a cluster is recomputed', () => {
  const pvc = { kind: 'Object', spec: { x: 1 } };
  const cases: {
    reason: string;
    first: ClusterContext;
    second: ClusterContext;
    secondCall?: string;
    computedTwice: boolean;
  }[] = [
    {
      reason: 'same bytes, same context: the frozen result of the last call is reused',
      first: context({ observed: { pvc: observedFrom(pvc) } }),
      second: context({ observed: { pvc: observedFrom(pvc) } }),
      computedTwice: false,
    },
    {
      reason: 'one observed byte differs',
      first: context({ observed: { pvc: observedFrom(pvc) } }),
      second: context({ observed: { pvc: observedFrom({ ...pvc, spec: { x: 2 } }) } }),
      computedTwice: true,
    },
    {
      reason: 'a role appeared',
      first: context({ observed: { pvc: observedFrom(pvc) } }),
      second: context({ observed: { pvc: observedFrom(pvc), job: observedFrom(pvc) } }),
      computedTwice: true,
    },
    {
      reason: 'the latched status changed',
      first: context({ observed: { pvc: observedFrom(pvc) } }),
      second: context({
        observed: { pvc: observedFrom(pvc) },
        latched: backend(context({ observed: {} })).status,
      }),
      computedTwice: true,
    },
    {
      reason: 'a blocker appeared',
      first: context({ observed: { pvc: observedFrom(pvc) } }),
      second: context({
        observed: { pvc: observedFrom(pvc) },
        blocker: { reason: 'ProviderConfigNotFound', message: 'gone' },
      }),
      computedTwice: true,
    },
    {
      reason: 'the InferenceCluster view changed',
      first: context({ observed: { pvc: observedFrom(pvc) } }),
      second: context({
        observed: { pvc: observedFrom(pvc) },
        cluster: { ...context({ observed: {} }).cluster, storageClassName: 'other' },
      }),
      computedTwice: true,
    },
    {
      reason: 'the call key (spec, metadata, input) changed',
      first: context({ observed: { pvc: observedFrom(pvc) } }),
      second: context({ observed: { pvc: observedFrom(pvc) } }),
      secondCall: 'spec-2',
      computedTwice: true,
    },
    {
      reason: 'bytes are unknown (not decoded by the fast codec): always computed',
      first: context({ observed: { pvc: structuredClone(pvc) } }),
      second: context({ observed: { pvc: structuredClone(pvc) } }),
      computedTwice: true,
    },
  ];

  it.each(cases)('$reason', ({ first, second, secondCall, computedTwice }) => {
    const memo = new ClusterMemo();
    computed = 0;
    const a = memo.begin('team-a/llama', 'spec-1');
    const r1 = a.cluster(first, backend);
    a.end();
    const b = memo.begin('team-a/llama', secondCall ?? 'spec-1');
    const r2 = b.cluster(second, backend);
    b.end();
    expect(computed).toBe(computedTwice ? 2 : 1);
    expect(r2.result).toEqual(backend(second));
    expect(r1.result).toEqual(backend(first));
  });

  it('hands back resources as the bytes it encoded, a frozen status, and observed readiness', () => {
    const memo = new ClusterMemo();
    const ctx = context({ observed: { pvc: observedFrom(ready), job: observedFrom({}) } });
    const call = memo.begin('team-a/llama', 'k');
    const { result, observedReady } = call.cluster(ctx, backend);
    call.end();
    // Written back as the bytes encodeStruct gave, without decoding them.
    const pvc = result.resources['pvc'] ?? {};
    expect(isUndecoded(pvc)).toBe(true);
    expect(encodeStruct(pvc)).toEqual(encodeStruct(backend(ctx).resources['pvc'] ?? {}));
    expect(result).toEqual(backend(ctx));
    expect(Object.isFrozen(result.status)).toBe(true);
    expect(observedReady).toEqual({ job: false, pvc: true });
  });

  it('keeps only the last call of each cache, and drops the least recently called over budget', () => {
    const observed = (): Record<string, Json> => ({ pvc: observedFrom({ pad: 'x'.repeat(1000) }) });
    // One cluster holds about 3.1 KB (1 KB of input, its result, 2 KB overhead): room for two.
    const memo = new ClusterMemo(7000);
    for (const name of ['a', 'b', 'c']) {
      const call = memo.begin(name, 'k');
      call.cluster(context({ observed: observed() }), backend);
      call.end();
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
    expect(memo.stats).toEqual({ hits: 2, misses: 4, unkeyed: 0 });
  });
});

describe('ModelCache through the codec with the memo', () => {
  it('answers byte for byte as without it, at every step of a lifecycle, called twice per step', () => {
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
      const out = viaFastCodec(bytes);
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
    // Every second call of a step is all hits; first calls hit where a cluster did not change.
    expect(hits).toBeGreaterThanOrEqual(steps.length * 3);
    expect(misses).toBeGreaterThan(0);
    expect(hits + misses).toBe(steps.length * 2 * 3);
  });
});
