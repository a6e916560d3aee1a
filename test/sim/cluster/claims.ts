// The PersistentVolume controller, the provisioner, pvc-protection and reclaim of a simulated
// workload cluster (kubernetes/kubernetes pkg/controller/volume/persistentvolume and
// pvcprotection): claims bind through their StorageClass's provisioner after the class's delay,
// or never; a missing class leaves them Pending; a claim being deleted waits while a pod uses
// it; its volume (a directory) goes with it (reclaimPolicy Delete).
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { arr, obj, str } from '../core/json.js';
import { Controller, type Result } from '../core/queue.js';
import type { KObject, Ref } from '../core/store.js';
import { PVC_PROTECTION, refFromKey, type ClusterParts } from './objects.js';

export class ClaimController {
  readonly queue: Controller;
  private readonly bindTimers = new Set<string>();

  constructor(private readonly cluster: ClusterParts) {
    this.queue = new Controller(cluster.clock, `${cluster.name}/pv-controller`, (k) =>
      this.syncClaim(k),
    );
  }

  private async syncClaim(key: string): Promise<Result> {
    await Promise.resolve();
    const ref = refFromKey(key, 'v1');
    const pvc = this.cluster.store.get(ref);
    if (!pvc) return {};
    if (pvc.metadata.deletionTimestamp !== undefined) {
      const inUse = this.cluster.store
        .list('v1', 'Pod', { namespace: pvc.metadata.namespace })
        .some((p) => {
          const phase = str(p, 'status', 'phase');
          if (phase === 'Succeeded' || phase === 'Failed') return false;
          return arr(p, 'spec', 'volumes').some(
            (v) => str(v, 'persistentVolumeClaim', 'claimName') === pvc.metadata.name,
          );
        });
      if (inUse) return {};
      pvc.metadata.finalizers = (pvc.metadata.finalizers ?? []).filter((f) => f !== PVC_PROTECTION);
      this.cluster.store.update(pvc, 'pvc-protection-controller');
      return {};
    }
    if (str(pvc, 'status', 'phase') === 'Bound') return {};
    if (str(pvc, 'status', 'phase') !== 'Pending') {
      pvc['status'] = { phase: 'Pending' };
      this.cluster.store.updateStatus(pvc, 'persistentvolume-controller');
    }
    const className = str(pvc, 'spec', 'storageClassName');
    const cls =
      className === undefined
        ? undefined
        : this.cluster.store.get({
            apiVersion: 'storage.k8s.io/v1',
            kind: 'StorageClass',
            name: className,
          });
    if (!cls || className === undefined) {
      this.cluster.record(
        pvc,
        'Warning',
        'ProvisioningFailed',
        `storageclass.storage.k8s.io "${className ?? ''}" not found`,
      );
      return {};
    }
    const spec = this.cluster.opts.storageClasses[className];
    if (spec === undefined || spec.bindAfterMs === 'never') {
      this.cluster.record(
        pvc,
        'Normal',
        'ExternalProvisioning',
        `Waiting for a volume to be created either by the external provisioner '${cls['provisioner'] as string}' or manually by the system administrator.`,
      );
      return {};
    }
    if (this.bindTimers.has(pvc.metadata.uid)) return {};
    this.bindTimers.add(pvc.metadata.uid);
    this.cluster.clock.schedule(
      spec.bindAfterMs,
      `${this.cluster.name} bind ${pvc.metadata.name}`,
      () => {
        this.bind(ref, pvc.metadata.uid, String(cls['provisioner']));
      },
    );
    return {};
  }

  private bind(ref: Ref, uid: string, provisioner: string): void {
    const pvc = this.cluster.store.get(ref);
    if (!pvc || pvc.metadata.uid !== uid || pvc.metadata.deletionTimestamp !== undefined) return;
    const pv = `pvc-${uid}`;
    const dir = join(this.cluster.root, 'volumes', pv);
    mkdirSync(dir, { recursive: true });
    this.cluster.volumes.set(pv, dir);
    pvc['spec'] = { ...(obj(pvc, 'spec') ?? {}), volumeName: pv };
    this.cluster.store.update(pvc, 'persistentvolume-controller');
    const bound = this.cluster.store.mustGet(ref);
    bound['status'] = {
      phase: 'Bound',
      accessModes: arr(pvc, 'spec', 'accessModes'),
      capacity: { storage: str(pvc, 'spec', 'resources', 'requests', 'storage') ?? '1Gi' },
    };
    this.cluster.store.updateStatus(bound, 'persistentvolume-controller');
    this.cluster.record(
      pvc,
      'Normal',
      'ProvisioningSucceeded',
      `Successfully provisioned volume ${pv} (${provisioner})`,
    );
  }

  /** reclaimPolicy Delete: the volume and its bytes go with the claim. */
  reclaim(pvc: KObject): void {
    const pv = str(pvc, 'spec', 'volumeName');
    if (pv === undefined) return;
    const dir = this.cluster.volumes.get(pv);
    this.cluster.volumes.delete(pv);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}
