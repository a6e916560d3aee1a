import { describe, expect, it } from 'vitest';
import { isFatal, type CoreRequest, type CoreResponse } from '../function/core.js';
import type { Json } from '../function/k8s/object.js';
import { composeModelDeployment } from '../function/modeldeployment/compose.js';
import * as f from './support/fixtures.js';

const NFS = { storageClassName: 'nfs-rwx', classExists: true };
const GANG = {
  caches: [{ name: 'llama', kind: 'Weights' }],
  replicas: 3,
  engine: { image: 'vllm/vllm-openai:v0.6.3' },
  topology: { strategy: 'TensorPipeline', tensor: 8, pipeline: 2 },
};

type Phases = Record<string, f.CachePhase | [f.CachePhase, string]>;

/** Workloads as provider-kubernetes reports them once created: synced and Ready. */
function observe(res: CoreResponse): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [key, desired] of Object.entries(res.resources)) {
    out[key] = f.observedObject(desired, undefined, [
      { type: 'Synced', status: 'True', reason: 'ReconcileSuccess' },
      { type: 'Ready', status: 'True', reason: 'Available' },
    ]);
  }
  return out;
}

describe('ModelDeployment lifecycle: a gang follows its cache cluster by cluster', () => {
  it('waits while the cache hydrates, places as each cluster turns Ready, never where there is no RWX class, and holds through brief gaps', () => {
    const xr = f.modelDeployment(GANG);
    const ics = ['a', 'b', 'c'].map((n) => f.inferenceClusterXR(n, NFS));
    let status: Json | undefined;
    let observed: Record<string, Json> = {};
    const rows: string[] = [];
    const step = (
      label: string,
      mutate: (req: CoreRequest) => void,
      phases: Phases,
    ): CoreResponse => {
      const req = f.deploymentRequest(
        { ...xr, ...(status ? { status } : {}) },
        ics,
        { llama: f.cacheWithStatus('llama', 'Weights', '/mnt/model', phases) },
        observed,
      );
      mutate(req);
      const res = composeModelDeployment(req);
      if (isFatal(res)) throw new Error(res.fatal);
      status = { ...res.status, conditions: res.conditions };
      observed = observe(res);
      const clusters = res.status['clusters'] as {
        name: string;
        replicas: number;
        reason: string;
      }[];
      const sched = res.conditions.find((c) => c.type === 'Scheduled');
      rows.push(
        `${label}: ${clusters.map((c) => `${c.name}=${c.reason}(${c.replicas})`).join(' ')} | workloads ${
          Object.keys(res.resources)
            .filter((k) => k.endsWith('/workload'))
            .join(',') || '-'
        } | Scheduled=${sched?.status ?? '?'} ready=${res.ready}`,
      );
      return res;
    };
    const noRwx: [f.CachePhase, string] = ['Failed', 'NoRWXStorageClass'];
    const none = (): void => undefined;

    step('1 staging', none, { a: 'Pending', b: 'Pending', c: noRwx });
    step('2 hydrating', none, { a: 'Hydrating', b: 'Hydrating', c: noRwx });
    step('3 a ready', none, { a: 'Ready', b: 'Hydrating', c: noRwx });
    const placedOnA = step('4 b ready', none, { a: 'Ready', b: 'Ready', c: noRwx });
    const gone = step(
      '5 cache briefly not fetched',
      (req) => {
        delete req.required['cache-llama'];
      },
      { a: 'Ready', b: 'Ready', c: noRwx },
    );
    const noStatus = step(
      '6 cache status briefly empty',
      (req) => {
        const cache = req.required['cache-llama']?.[0];
        if (cache) delete cache['status'];
      },
      { a: 'Ready', b: 'Ready', c: noRwx },
    );
    const back = step('7 back', none, { a: 'Ready', b: 'Ready', c: noRwx });
    console.log(rows.join('\n'));

    expect(rows).toEqual([
      '1 staging: a=WaitingForCache(0) b=WaitingForCache(0) c=NoRWXStorageClass(0) | workloads - | Scheduled=False ready=false',
      '2 hydrating: a=WaitingForCache(0) b=WaitingForCache(0) c=NoRWXStorageClass(0) | workloads - | Scheduled=False ready=false',
      '3 a ready: a=Placed(3) b=WaitingForCache(0) c=NoRWXStorageClass(0) | workloads a/workload | Scheduled=True ready=false',
      '4 b ready: a=Placed(2) b=Placed(1) c=NoRWXStorageClass(0) | workloads a/workload,b/workload | Scheduled=True ready=false',
      '5 cache briefly not fetched: a=Placed(2) b=Placed(1) c=NoRWXStorageClass(0) | workloads a/workload,b/workload | Scheduled=True ready=true',
      '6 cache status briefly empty: a=Held(2) b=Held(1) c=WaitingForCache(0) | workloads a/workload,b/workload | Scheduled=True ready=true',
      '7 back: a=Placed(2) b=Placed(1) c=NoRWXStorageClass(0) | workloads a/workload,b/workload | Scheduled=True ready=true',
    ]);
    // Held workloads are exactly what was running: nothing torn down or changed by the gaps.
    const specOf = (res: CoreResponse, key: string): unknown =>
      (res.resources[key]?.['spec'] as Json | undefined)?.['forProvider'];
    expect(specOf(noStatus, 'a/workload')).toEqual(specOf(placedOnA, 'a/workload'));
    expect(specOf(back, 'b/workload')).toEqual(specOf(placedOnA, 'b/workload'));
    expect(Object.keys(gone.resources).sort()).toEqual(['a/workload', 'b/workload', 'usage/llama']);
  });
});
