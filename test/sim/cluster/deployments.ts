// The Deployment and LeaderWorkerSet controllers of a simulated workload cluster: pods created
// from the template (one per replica, or a leader and size-1 workers per group), replaced when
// the template changes, Available once every pod is Ready.
import { createHash } from 'node:crypto';

import { clone, conditions, deepEqual, num, obj, setCondition, type Json } from '../core/json.js';
import { Controller, type Result } from '../core/queue.js';
import { refOf } from '../core/store.js';
import { ownerUid, refFromKey, type ClusterParts } from './objects.js';

export class WorkloadController {
  readonly queue: Controller;

  constructor(private readonly cluster: ClusterParts) {
    this.queue = new Controller(cluster.clock, `${cluster.name}/workloads`, (k) =>
      this.syncWorkload(k),
    );
  }

  private async syncWorkload(key: string): Promise<Result> {
    await Promise.resolve();
    const [group, kind] = key.split('/');
    const apiVersion = kind === 'Deployment' ? 'apps/v1' : `${group ?? ''}/v1`;
    const ref = refFromKey(key, apiVersion);
    const w = this.cluster.store.get(ref);
    if (!w || w.metadata.deletionTimestamp !== undefined) return {};
    const isLws = w.kind === 'LeaderWorkerSet';
    const replicas = num(w, 'spec', 'replicas') ?? 1;
    const size = isLws ? (num(w, 'spec', 'leaderWorkerTemplate', 'size') ?? 1) : 1;
    const template = isLws
      ? obj(w, 'spec', 'leaderWorkerTemplate', 'leaderTemplate')
      : obj(w, 'spec', 'template');
    const hash = createHash('sha256')
      .update(JSON.stringify(template ?? {}))
      .digest('hex')
      .slice(0, 10);
    const pods = this.cluster.store
      .list('v1', 'Pod', { namespace: w.metadata.namespace })
      .filter(
        (p) => ownerUid(p, w.kind) === w.metadata.uid && p.metadata.deletionTimestamp === undefined,
      );
    const want = new Set<string>();
    for (let g = 0; g < replicas; g++) {
      for (let i = 0; i < size; i++) {
        want.add(
          isLws
            ? `${w.metadata.name}-${g}${i === 0 ? '' : `-${i}`}`
            : `${w.metadata.name}-${hash}-${g}`,
        );
      }
    }
    for (const p of pods) {
      if (!want.has(p.metadata.name) || p.metadata.labels?.['sim/template-hash'] !== hash)
        this.cluster.store.delete(refOf(p));
    }
    const have = new Set(
      pods
        .filter((p) => p.metadata.labels?.['sim/template-hash'] === hash)
        .map((p) => p.metadata.name),
    );
    for (const name of want) {
      if (have.has(name)) continue;
      try {
        this.cluster.store.create(
          {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: {
              name,
              namespace: w.metadata.namespace,
              labels: {
                ...((obj(template, 'metadata', 'labels') as Record<string, string> | undefined) ??
                  {}),
                'sim/template-hash': hash,
              },
              ownerReferences: [
                {
                  apiVersion: w.apiVersion,
                  kind: w.kind,
                  name: w.metadata.name,
                  uid: w.metadata.uid,
                  controller: true,
                },
              ],
            },
            spec: clone(obj(template, 'spec') ?? {}),
          },
          `${w.kind.toLowerCase()}-controller`,
        );
      } catch (err) {
        this.cluster.record(
          w,
          'Warning',
          'FailedCreate',
          err instanceof Error ? err.message : String(err),
        );
      }
    }
    const live = this.cluster.store
      .list('v1', 'Pod', { namespace: w.metadata.namespace })
      .filter(
        (p) => ownerUid(p, w.kind) === w.metadata.uid && p.metadata.deletionTimestamp === undefined,
      );
    const ready = live.filter((p) =>
      conditions(p, 'status', 'conditions').some((c) => c.type === 'Ready' && c.status === 'True'),
    ).length;
    const groupsReady = Math.floor(ready / size);
    const available = groupsReady >= replicas;
    const status: Json = isLws
      ? {
          replicas,
          readyReplicas: groupsReady,
          conditions: setCondition(
            conditions(w, 'status', 'conditions'),
            {
              type: 'Available',
              status: available ? 'True' : 'False',
              reason: available ? 'AllGroupsReady' : 'GroupsNotReady',
              message: available
                ? 'All replicas are ready'
                : `${groupsReady}/${replicas} groups ready`,
            },
            this.cluster.clock.iso(),
          ),
        }
      : {
          observedGeneration: w.metadata.generation,
          replicas: live.length,
          updatedReplicas: live.length,
          readyReplicas: ready,
          availableReplicas: ready,
          conditions: setCondition(
            conditions(w, 'status', 'conditions'),
            {
              type: 'Available',
              status: available ? 'True' : 'False',
              reason: available ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable',
              message: available
                ? 'Deployment has minimum availability.'
                : 'Deployment does not have minimum availability.',
            },
            this.cluster.clock.iso(),
          ),
        };
    if (!deepEqual(status, w['status'])) {
      w['status'] = status;
      this.cluster.store.updateStatus(w, `${w.kind.toLowerCase()}-controller`);
    }
    return {};
  }
}
