// The compose benchmark's scenario: one ModelCache matching N clusters, mid-hydration, with
// every composed Object observed as provider-kubernetes reports it (remote object included).
import type { CoreRequest } from '../../function/core.js';
import { isFatal } from '../../function/core.js';
import type { Json } from '../../function/k8s/object.js';
import { composeModelCache } from '../../function/modelcache/compose.js';
import * as f from '../support/fixtures.js';

/** Bytes the fetch Job has reported on the cluster at this index (clusters are named in order). */
export type Progress = (clusterIndex: number) => number;

const GiB = 2 ** 30;

export function midHydration(clusters: number, done: Progress = () => 5 * GiB): CoreRequest {
  const ics = Array.from({ length: clusters }, (_, i) =>
    f.inferenceClusterXR(`cluster-${String(i).padStart(4, '0')}`, {
      storageClassName: 'nfs-rwx',
      classExists: true,
    }),
  );
  const first = composeModelCache(f.request(f.modelCache(f.HF_WEIGHTS), ics));
  if (isFatal(first)) throw new Error(first.fatal);
  const observed: Record<string, Json> = {};
  for (const [key, desired] of Object.entries(first.resources)) {
    if (key.endsWith('/pvc')) observed[key] = f.pvcObserved(desired, 'Bound');
    else if (key.includes('/fetch-')) {
      observed[key] = f.jobObserved(desired, {
        state: 'running',
        done: done(Number(/^cluster-(\d+)\//.exec(key)?.[1] ?? '0')),
        total: 16 * GiB,
      });
    } else observed[key] = f.synced(desired);
  }
  const xr = f.modelCache(f.HF_WEIGHTS, {
    status: { ...first.status, conditions: first.conditions },
  });
  return f.request(xr, ics, observed);
}
