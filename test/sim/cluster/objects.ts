// What the controllers of a simulated workload cluster share: the cluster's parts they act
// through, the finalizers admission puts on and they take off, and object helpers.
import type { VirtualClock } from '../core/clock.js';
import type { KObject, Ref, Store } from '../core/store.js';
import type { ApiServer } from './apiserver.js';
import type { WorkloadClusterOptions } from './workload.js';

export interface ClusterParts {
  readonly name: string;
  readonly store: Store;
  readonly clock: VirtualClock;
  readonly api: ApiServer;
  /** The cluster's directory: volumes and pod directories live under it. */
  readonly root: string;
  readonly opts: WorkloadClusterOptions;
  /** PersistentVolume name -> directory holding its bytes. */
  readonly volumes: Map<string, string>;
  record(o: KObject, type: 'Normal' | 'Warning', reason: string, message: string): void;
  /** The directory behind a claim, when it is bound. */
  volumeOf(namespace: string, claim: string): string | undefined;
}

export const PVC_PROTECTION = 'kubernetes.io/pvc-protection';
export const KUBELET_FINALIZER = 'sim.modelcache/kubelet-termination';

export function ownerUid(o: KObject, kind: string): string | undefined {
  return (o.metadata.ownerReferences ?? []).find((r) => r.kind === kind && r.controller === true)
    ?.uid;
}

export function refFromKey(key: string, apiVersion: string): Ref {
  const [, kind, namespace, name] = key.split('/');
  return {
    apiVersion,
    kind: kind ?? '',
    name: name ?? '',
    ...(namespace !== undefined && namespace !== '' ? { namespace } : {}),
  };
}
