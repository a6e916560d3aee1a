// A minimal stand-in for Crossplane + provider-kubernetes + workload clusters, enough to
// walk the ModelCache core through reconciles: status is replaced by each response (as
// server-side apply does), desired Objects become observed Objects, and the remote state
// of each cluster's claim and Job is set by the test.
import type { CoreRequest, CoreResponse } from '../../function/core.js';
import { isFatal } from '../../function/core.js';
import type { Json } from '../../function/k8s/object.js';
import { composeModelCache } from '../../function/modelcache/compose.js';
import * as f from './fixtures.js';

export type ClaimState = 'Pending' | 'Bound' | 'Lost';

export interface RemoteCluster {
  claim: ClaimState | undefined;
  /** The claim's UID on the workload cluster; a new one means it was re-created (empty). */
  claimUID?: string;
  /** undefined: no Job observed (not created yet, or removed). */
  job: f.JobObservation | undefined;
}

export class World {
  /** The XR's status as last written (our fields plus conditions). */
  status: Json | undefined;
  /** What the last response asked for: provider-kubernetes turns it into observed Objects. */
  desired: Record<string, Json> = {};
  annotations: Record<string, string> = {};
  remote = new Map<string, RemoteCluster>();
  resolved = true;

  constructor(
    public spec: Json,
    public clusters: Json[],
  ) {
    for (const c of clusters) {
      this.remote.set(String((c['metadata'] as Json)['name']), {
        claim: undefined,
        job: undefined,
      });
    }
  }

  set(cluster: string, state: Partial<RemoteCluster>): void {
    const cur = this.remote.get(cluster);
    if (!cur) throw new Error(`unknown cluster ${cluster}`);
    this.remote.set(cluster, { ...cur, ...state });
  }

  request(): CoreRequest {
    const xr = f.modelCache(this.spec, {
      annotations: this.annotations,
      ...(this.status ? { status: this.status } : {}),
    });
    const req = f.request(xr, this.clusters, this.observe());
    if (!this.resolved) req.required = {};
    return req;
  }

  /** One reconcile: call the core and write status as server-side apply would. */
  reconcile(): CoreResponse {
    const res = composeModelCache(this.request());
    if (isFatal(res)) throw new Error(res.fatal);
    this.status = { ...res.status, conditions: res.conditions };
    this.desired = res.resources;
    return res;
  }

  /** The Objects as Crossplane would hand them back now, given each cluster's remote state. */
  observe(): Record<string, Json> {
    const observed: Record<string, Json> = {};
    for (const [key, desired] of Object.entries(this.desired)) {
      const [cluster, role] = key.split('/') as [string, string];
      const remote = this.remote.get(cluster);
      if (!remote) continue;
      if (role === 'pvc') {
        observed[key] = remote.claim
          ? f.pvcObserved(desired, remote.claim, remote.claimUID)
          : f.observedObject(desired, undefined);
      } else if (role.startsWith('fetch-')) {
        // The Object exists once desired; its remote Job may not (not created yet, or removed).
        observed[key] = remote.job
          ? f.jobObserved(desired, remote.job)
          : f.observedObject(desired, undefined);
      } else {
        observed[key] = f.synced(desired);
      }
    }
    return observed;
  }
}

/** "role" names of the desired resources of one cluster, sorted: what exists there. */
export function rolesOf(res: CoreResponse, cluster: string): string[] {
  return Object.keys(res.resources)
    .filter((k) => k.startsWith(`${cluster}/`))
    .map((k) => k.slice(cluster.length + 1).replace(/^fetch-[0-9a-f]{8}$/, 'fetch'))
    .sort();
}
