// A simulated workload cluster: an API server's store, the controllers and the kubelet the
// product depends on, on virtual time. What it follows (kubernetes/kubernetes):
//  - PersistentVolumeClaims bind through their StorageClass's provisioner after a
//    configurable delay, or never; a missing class leaves them Pending
//    (pkg/controller/volume/persistentvolume); a bound claim gets a volume (a directory
//    here); deleting a claim waits while a pod uses it (kubernetes.io/pvc-protection,
//    pkg/controller/volume/pvcprotection), then the volume is reclaimed (Delete policy).
//  - Jobs: one pod at a time (completions 1), a failed pod is replaced after
//    10 s * 2^(failures-1) capped at 10 min, the Job fails with BackoffLimitExceeded once
//    failures exceed backoffLimit, or with DeadlineExceeded after activeDeadlineSeconds;
//    success sets SuccessCriteriaMet then Complete; status.active counts pending and
//    running pods (pkg/controller/job/job_controller.go). No TTL controller acts: the
//    Function composes no ttlSecondsAfterFinished. Deleting a batch/v1 Job without a
//    propagation policy orphans its pods (pkg/registry/batch/job/strategy.go).
//  - Pods: admission rejects a pod whose ServiceAccount does not exist
//    (plugin/pkg/admission/serviceaccount); the scheduler keeps a pod with an unbound claim
//    Pending; the kubelet keeps it in ContainerCreating while a ConfigMap volume is missing
//    and in CreateContainerConfigError while an env Secret (or its key) is missing,
//    retrying; a started container runs for real (pods.ts); termination sends SIGTERM,
//    then SIGKILL after the grace period (30 s).
//  - Deployments and LeaderWorkerSets: pods created from the template, Available once every
//    pod runs; engine pods do not run an engine, but check the bytes of every cache they
//    mount when they start (the simulator's data-safety probe).
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { SECOND, MINUTE, type VirtualClock } from '../core/clock.js';
import type { EventLog } from '../core/events.js';
import {
  arr,
  clone,
  conditions,
  deepEqual,
  isObj,
  num,
  obj,
  setCondition,
  str,
  type Condition,
  type Json,
} from '../core/json.js';
import { Controller, type Result } from '../core/queue.js';
import { ApiError, keyOf, refOf, Store, type KObject, type Ref } from '../core/store.js';
import type { RemoteClient } from '../provider/object.js';
import { ApiServer, servingCert } from './apiserver.js';
import type { ContainerRunner, RunningContainer } from './pods.js';

export interface StorageClassSpec {
  provisioner: string;
  /** How long provisioning and binding takes; 'never' leaves claims Pending for good. */
  bindAfterMs: number | 'never';
}

export interface ConsumerMount {
  cluster: string;
  pod: string;
  namespace: string;
  claim: string;
  mountPath: string;
  dir: string | undefined;
}

export interface WorkloadClusterOptions {
  name: string;
  storageClasses: Record<string, StorageClassSpec>;
  workDir: string;
  runner: ContainerRunner;
  /** Called when an engine pod starts, once per cache volume it mounts. */
  onConsumerStart: (m: ConsumerMount) => void;
}

const PVC_PROTECTION = 'kubernetes.io/pvc-protection';
const KUBELET_FINALIZER = 'sim.modelcache/kubelet-termination';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const TERMINATION_LOG = '/dev/termination-log';
const JOB_BACKOFF_BASE = 10 * SECOND;
const JOB_BACKOFF_MAX = 10 * MINUTE;
const KUBELET_RETRY = 10 * SECOND;
const TERMINATION_GRACE = 30 * SECOND;
const ENGINE_READY_AFTER = 5 * SECOND;

interface Running {
  container: RunningContainer | undefined;
  release: () => void;
  killed: boolean;
}

function ownerUid(o: KObject, kind: string): string | undefined {
  return (o.metadata.ownerReferences ?? []).find((r) => r.kind === kind && r.controller === true)
    ?.uid;
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

export class WorkloadCluster {
  readonly store: Store;
  readonly api: ApiServer;
  /** false: the control plane cannot reach this cluster (a network partition). */
  reachable = true;
  /** PersistentVolume name -> directory holding its bytes. */
  readonly volumes = new Map<string, string>();
  private readonly running = new Map<string, Running>();
  private readonly bindTimers = new Set<string>();
  private readonly pvcCtl: Controller;
  private readonly jobCtl: Controller;
  private readonly kubelet: Controller;
  private readonly workloadCtl: Controller;
  private readonly root: string;
  private seq = 0;
  /** Every fetch pod started on this cluster (name), in order. */
  readonly fetchPods: string[] = [];

  constructor(
    private readonly clock: VirtualClock,
    private readonly events: EventLog,
    private readonly opts: WorkloadClusterOptions,
  ) {
    this.root = join(opts.workDir, opts.name);
    mkdirSync(this.root, { recursive: true });
    this.store = new Store(opts.name, clock, seedOf(opts.name));
    this.api = new ApiServer(this.store, () => undefined);
    this.pvcCtl = new Controller(clock, `${opts.name}/pv-controller`, (k) => this.syncClaim(k));
    this.jobCtl = new Controller(clock, `${opts.name}/job-controller`, (k) => this.syncJob(k));
    this.kubelet = new Controller(clock, `${opts.name}/kubelet`, (k) => this.syncPod(k));
    this.workloadCtl = new Controller(clock, `${opts.name}/workloads`, (k) => this.syncWorkload(k));
    this.admission();
    this.store.watch((ev) => {
      const key = keyOf(refOf(ev.obj));
      switch (ev.obj.kind) {
        case 'PersistentVolumeClaim':
          this.pvcCtl.enqueue(key);
          if (ev.type === 'DELETED') this.reclaim(ev.obj);
          break;
        case 'StorageClass':
          for (const c of this.store.list('v1', 'PersistentVolumeClaim'))
            this.pvcCtl.enqueue(keyOf(refOf(c)));
          break;
        case 'Job':
          this.jobCtl.enqueue(key);
          break;
        case 'Pod': {
          this.kubelet.enqueue(key);
          const job = ownerUid(ev.obj, 'Job');
          if (job !== undefined) this.enqueueOwner('batch/v1', 'Job', job, this.jobCtl);
          for (const kind of ['Deployment', 'LeaderWorkerSet']) {
            const uid = ownerUid(ev.obj, kind);
            if (uid !== undefined) {
              this.enqueueOwner(
                kind === 'Deployment' ? 'apps/v1' : 'leaderworkerset.x-k8s.io/v1',
                kind,
                uid,
                this.workloadCtl,
              );
            }
          }
          // A pod going away may release a claim held by pvc-protection.
          if (ev.type === 'DELETED' || ev.obj.metadata.deletionTimestamp !== undefined) {
            for (const c of this.store.list('v1', 'PersistentVolumeClaim')) {
              if (c.metadata.deletionTimestamp !== undefined) this.pvcCtl.enqueue(keyOf(refOf(c)));
            }
          }
          break;
        }
        case 'Deployment':
        case 'LeaderWorkerSet':
          this.workloadCtl.enqueue(key);
          break;
        case 'Secret':
        case 'ConfigMap':
        case 'ServiceAccount':
          for (const p of this.store.list('v1', 'Pod')) {
            if (str(p, 'status', 'phase') === 'Pending') this.kubelet.enqueue(keyOf(refOf(p)));
          }
          for (const j of this.store.list('batch/v1', 'Job')) this.jobCtl.enqueue(keyOf(refOf(j)));
          break;
        default:
          break;
      }
    });
  }

  get name(): string {
    return this.opts.name;
  }

  get server(): string {
    return `https://127.0.0.1:${this.api.port}`;
  }

  async start(): Promise<void> {
    await this.api.start();
    await servingCert();
    for (const ns of ['default', 'kube-system']) {
      this.store.create(
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
        'kube-apiserver',
      );
    }
    for (const [name, sc] of Object.entries(this.opts.storageClasses)) {
      this.addStorageClass(name, sc);
    }
  }

  addStorageClass(name: string, sc: StorageClassSpec): void {
    this.opts.storageClasses[name] = sc;
    this.store.create(
      {
        apiVersion: 'storage.k8s.io/v1',
        kind: 'StorageClass',
        metadata: { name },
        provisioner: sc.provisioner,
        reclaimPolicy: 'Delete',
        volumeBindingMode: 'Immediate',
      },
      'kubectl',
    );
  }

  private enqueueOwner(apiVersion: string, kind: string, uid: string, ctl: Controller): void {
    const owner = this.store.list(apiVersion, kind).find((o) => o.metadata.uid === uid);
    if (owner) ctl.enqueue(keyOf(refOf(owner)));
  }

  private record(o: KObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.events.record(
      this.name,
      `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`,
      type,
      reason,
      message,
    );
  }

  /** What the API server's admission chain does for the kinds the product composes. */
  private admission(): void {
    this.store.admit((op, o, old) => {
      if (op === 'DELETE') return;
      if ((o.kind === 'Secret' || o.kind === 'ConfigMap') && isObj(o['stringData'])) {
        const data = isObj(o['data']) ? { ...o['data'] } : {};
        for (const [k, v] of Object.entries(o['stringData']))
          data[k] = o.kind === 'Secret' ? b64(String(v)) : String(v);
        o['data'] = data;
        delete o['stringData'];
      }
      if (o.kind === 'PersistentVolumeClaim') {
        if (op === 'CREATE') {
          o.metadata.finalizers = [...(o.metadata.finalizers ?? []), PVC_PROTECTION];
        } else if (old) {
          const strip = (x: unknown): unknown => {
            const s = isObj(x) ? { ...x } : {};
            delete s['volumeName'];
            delete s['resources'];
            return s;
          };
          if (!deepEqual(strip(o['spec']), strip(old['spec']))) {
            throw new ApiError(
              'Invalid',
              `PersistentVolumeClaim "${o.metadata.name}" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims`,
            );
          }
        }
      }
      if (o.kind === 'Job' && op === 'UPDATE' && old) {
        if (!deepEqual(obj(o, 'spec', 'template'), obj(old, 'spec', 'template'))) {
          throw new ApiError(
            'Invalid',
            `Job.batch "${o.metadata.name}" is invalid: spec.template: Invalid value: "": field is immutable`,
          );
        }
      }
      if (o.kind === 'Pod' && op === 'CREATE') {
        const sa = str(o, 'spec', 'serviceAccountName') ?? 'default';
        if (
          sa !== 'default' &&
          !this.store.get({
            apiVersion: 'v1',
            kind: 'ServiceAccount',
            name: sa,
            namespace: o.metadata.namespace,
          })
        ) {
          throw new ApiError(
            'Forbidden',
            `pods "${o.metadata.name}" is forbidden: error looking up service account ${o.metadata.namespace ?? ''}/${sa}: serviceaccount "${sa}" not found`,
          );
        }
        o.metadata.finalizers = [...(o.metadata.finalizers ?? []), KUBELET_FINALIZER];
        o['status'] = { phase: 'Pending' };
      }
    });
  }

  /** The provider's kube client for this cluster; refused while partitioned. */
  client(): RemoteClient {
    const guard = (): void => {
      if (!this.reachable) {
        throw new ApiError(
          'Unavailable',
          `Get "${this.server}/api": dial tcp 127.0.0.1:${this.api.port}: connect: connection refused`,
        );
      }
    };
    return {
      get: (ref) => {
        guard();
        return this.store.get(ref);
      },
      create: (o) => {
        guard();
        return this.store.create(o, 'provider-kubernetes');
      },
      mergePatch: (ref, patch) => {
        guard();
        return this.store.mergePatch(ref, patch, 'provider-kubernetes');
      },
      delete: (ref) => {
        guard();
        this.store.delete(ref);
      },
    };
  }

  /** The directory behind a claim, when it is bound. */
  volumeOf(namespace: string, claim: string): string | undefined {
    const pvc = this.store.get({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      name: claim,
      namespace,
    });
    const pv = str(pvc, 'spec', 'volumeName');
    return pv === undefined ? undefined : this.volumes.get(pv);
  }

  // ---------------------------------------------------------------------------------------
  // PV controller, provisioner, pvc-protection, reclaim.

  private async syncClaim(key: string): Promise<Result> {
    await Promise.resolve();
    const ref = refFromKey(key, 'v1');
    const pvc = this.store.get(ref);
    if (!pvc) return {};
    if (pvc.metadata.deletionTimestamp !== undefined) {
      const inUse = this.store
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
      this.store.update(pvc, 'pvc-protection-controller');
      return {};
    }
    if (str(pvc, 'status', 'phase') === 'Bound') return {};
    if (str(pvc, 'status', 'phase') !== 'Pending') {
      pvc['status'] = { phase: 'Pending' };
      this.store.updateStatus(pvc, 'persistentvolume-controller');
    }
    const className = str(pvc, 'spec', 'storageClassName');
    const cls =
      className === undefined
        ? undefined
        : this.store.get({
            apiVersion: 'storage.k8s.io/v1',
            kind: 'StorageClass',
            name: className,
          });
    if (!cls || className === undefined) {
      this.record(
        pvc,
        'Warning',
        'ProvisioningFailed',
        `storageclass.storage.k8s.io "${className ?? ''}" not found`,
      );
      return {};
    }
    const spec = this.opts.storageClasses[className];
    if (spec === undefined || spec.bindAfterMs === 'never') {
      this.record(
        pvc,
        'Normal',
        'ExternalProvisioning',
        `Waiting for a volume to be created either by the external provisioner '${cls['provisioner'] as string}' or manually by the system administrator.`,
      );
      return {};
    }
    if (this.bindTimers.has(pvc.metadata.uid)) return {};
    this.bindTimers.add(pvc.metadata.uid);
    this.clock.schedule(spec.bindAfterMs, `${this.name} bind ${pvc.metadata.name}`, () => {
      this.bind(ref, pvc.metadata.uid, String(cls['provisioner']));
    });
    return {};
  }

  private bind(ref: Ref, uid: string, provisioner: string): void {
    const pvc = this.store.get(ref);
    if (!pvc || pvc.metadata.uid !== uid || pvc.metadata.deletionTimestamp !== undefined) return;
    const pv = `pvc-${uid}`;
    const dir = join(this.root, 'volumes', pv);
    mkdirSync(dir, { recursive: true });
    this.volumes.set(pv, dir);
    pvc['spec'] = { ...(obj(pvc, 'spec') ?? {}), volumeName: pv };
    this.store.update(pvc, 'persistentvolume-controller');
    const bound = this.store.mustGet(ref);
    bound['status'] = {
      phase: 'Bound',
      accessModes: arr(pvc, 'spec', 'accessModes'),
      capacity: { storage: str(pvc, 'spec', 'resources', 'requests', 'storage') ?? '1Gi' },
    };
    this.store.updateStatus(bound, 'persistentvolume-controller');
    this.record(
      pvc,
      'Normal',
      'ProvisioningSucceeded',
      `Successfully provisioned volume ${pv} (${provisioner})`,
    );
  }

  /** reclaimPolicy Delete: the volume and its bytes go with the claim. */
  private reclaim(pvc: KObject): void {
    const pv = str(pvc, 'spec', 'volumeName');
    if (pv === undefined) return;
    const dir = this.volumes.get(pv);
    this.volumes.delete(pv);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------------------------------
  // Job controller.

  private async syncJob(key: string): Promise<Result> {
    await Promise.resolve();
    const ref = refFromKey(key, 'batch/v1');
    const job = this.store.get(ref);
    if (!job || job.metadata.deletionTimestamp !== undefined) return {};
    const conds = conditions(job, 'status', 'conditions');
    if (conds.some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True'))
      return {};
    const pods = this.store
      .list('v1', 'Pod', { namespace: job.metadata.namespace })
      .filter((p) => ownerUid(p, 'Job') === job.metadata.uid);
    const status = isObj(job['status']) ? { ...job['status'] } : {};
    let succeeded = num(status, 'succeeded') ?? 0;
    let failed = num(status, 'failed') ?? 0;
    let lastFailure = str(status, 'sim', 'lastFailure');
    // Count terminated pods once (the real controller tracks them with a finalizer).
    for (const p of pods) {
      const phase = str(p, 'status', 'phase');
      if (
        (phase !== 'Succeeded' && phase !== 'Failed') ||
        p.metadata.annotations?.['sim/counted'] === 'true'
      )
        continue;
      if (phase === 'Succeeded') succeeded++;
      else {
        failed++;
        lastFailure = String(this.clock.now());
      }
      p.metadata.annotations = { ...(p.metadata.annotations ?? {}), 'sim/counted': 'true' };
      this.store.update(p, 'job-controller');
    }
    const active = pods.filter((p) => {
      const phase = str(p, 'status', 'phase');
      return (
        phase !== 'Succeeded' && phase !== 'Failed' && p.metadata.deletionTimestamp === undefined
      );
    });
    const now = this.clock.iso();
    let list: Condition[] = conds;
    const finish = (type: 'Complete' | 'Failed', reason: string, message: string): void => {
      const pre = type === 'Complete' ? 'SuccessCriteriaMet' : 'FailureTarget';
      list = setCondition(list, { type: pre, status: 'True', reason, message }, now);
      list = setCondition(list, { type, status: 'True', reason, message }, now);
      for (const p of active) this.store.delete(refOf(p));
    };
    const deadline = num(job, 'spec', 'activeDeadlineSeconds');
    const startTime = str(status, 'startTime');
    let result: Result = {};
    if (succeeded >= 1) {
      finish('Complete', 'CompletionsReached', 'Reached expected number of succeeded pods');
      status['completionTime'] = now;
    } else if (
      deadline !== undefined &&
      startTime !== undefined &&
      Date.parse(now) - Date.parse(startTime) >= deadline * 1000
    ) {
      finish('Failed', 'DeadlineExceeded', 'Job was active longer than specified deadline');
    } else if (failed > (num(job, 'spec', 'backoffLimit') ?? 6)) {
      finish('Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit');
      this.record(
        job,
        'Warning',
        'BackoffLimitExceeded',
        'Job has reached the specified backoff limit',
      );
    } else if (active.length === 0) {
      const since = lastFailure === undefined ? Infinity : this.clock.now() - Number(lastFailure);
      const wait =
        failed === 0 ? 0 : Math.min(JOB_BACKOFF_MAX, JOB_BACKOFF_BASE * 2 ** (failed - 1)) - since;
      if (wait > 0) result = { requeueAfter: wait };
      else {
        try {
          const pod = this.createJobPod(job);
          active.push(pod);
          status['startTime'] ??= now;
          this.record(job, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`);
        } catch (err) {
          this.record(
            job,
            'Warning',
            'FailedCreate',
            `Error creating: ${err instanceof Error ? err.message : String(err)}`,
          );
          result = { requeue: true };
        }
      }
    }
    if (deadline !== undefined && startTime !== undefined && result.requeueAfter === undefined) {
      const left = Date.parse(startTime) + deadline * 1000 - Date.parse(now);
      if (left > 0) result = { ...result, requeueAfter: left };
    }
    const next: Json = {
      ...status,
      active: active.length,
      ready: active.filter((p) => str(p, 'status', 'phase') === 'Running').length,
      succeeded,
      failed,
      ...(lastFailure !== undefined ? { sim: { lastFailure } } : {}),
      ...(list.length > 0 ? { conditions: list } : {}),
    };
    if (next['active'] === 0) delete next['active'];
    if (!deepEqual(next, job['status'])) {
      const latest = this.store.get(ref);
      if (latest) {
        latest['status'] = next;
        this.store.updateStatus(latest, 'job-controller');
      }
    }
    return result;
  }

  private createJobPod(job: KObject): KObject {
    const template = obj(job, 'spec', 'template') ?? {};
    const labels = {
      ...((obj(template, 'metadata', 'labels') as Record<string, string> | undefined) ?? {}),
      'batch.kubernetes.io/job-name': job.metadata.name,
      'job-name': job.metadata.name,
    };
    const pod = this.store.create(
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          generateName: `${job.metadata.name}-`,
          namespace: job.metadata.namespace,
          labels,
          ownerReferences: [
            {
              apiVersion: 'batch/v1',
              kind: 'Job',
              name: job.metadata.name,
              uid: job.metadata.uid,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: clone(obj(template, 'spec') ?? {}),
      },
      'job-controller',
    );
    return pod;
  }

  // ---------------------------------------------------------------------------------------
  // Deployments and LeaderWorkerSets.

  private async syncWorkload(key: string): Promise<Result> {
    await Promise.resolve();
    const [group, kind] = key.split('/');
    const apiVersion = kind === 'Deployment' ? 'apps/v1' : `${group ?? ''}/v1`;
    const ref = refFromKey(key, apiVersion);
    const w = this.store.get(ref);
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
    const pods = this.store
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
        this.store.delete(refOf(p));
    }
    const have = new Set(
      pods
        .filter((p) => p.metadata.labels?.['sim/template-hash'] === hash)
        .map((p) => p.metadata.name),
    );
    for (const name of want) {
      if (have.has(name)) continue;
      try {
        this.store.create(
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
        this.record(w, 'Warning', 'FailedCreate', err instanceof Error ? err.message : String(err));
      }
    }
    const live = this.store
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
            this.clock.iso(),
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
            this.clock.iso(),
          ),
        };
    if (!deepEqual(status, w['status'])) {
      w['status'] = status;
      this.store.updateStatus(w, `${w.kind.toLowerCase()}-controller`);
    }
    return {};
  }

  // ---------------------------------------------------------------------------------------
  // Kubelet.

  private podStatus(
    pod: KObject,
    phase: string,
    container: Json,
    ready = false,
    extra: Json = {},
  ): void {
    const latest = this.store.get(refOf(pod));
    if (!latest) return;
    const status: Json = {
      ...(isObj(latest['status']) ? latest['status'] : {}),
      phase,
      containerStatuses: [
        { name: str(pod, 'spec', 'containers', '0', 'name') ?? 'main', ready, ...container },
      ],
      conditions: setCondition(
        conditions(latest, 'status', 'conditions'),
        { type: 'Ready', status: ready ? 'True' : 'False' },
        this.clock.iso(),
      ),
      ...extra,
    };
    if (deepEqual(status, latest['status'])) return;
    latest['status'] = status;
    this.store.updateStatus(latest, 'kubelet');
  }

  private waiting(pod: KObject, reason: string, message: string): Result {
    this.podStatus(pod, 'Pending', { state: { waiting: { reason, message } } });
    this.record(
      pod,
      'Warning',
      reason === 'ContainerCreating'
        ? 'FailedMount'
        : reason === 'Unschedulable'
          ? 'FailedScheduling'
          : 'Failed',
      message,
    );
    return { requeueAfter: KUBELET_RETRY };
  }

  private async syncPod(key: string): Promise<Result> {
    await Promise.resolve();
    const pod = this.store.get(refFromKey(key, 'v1'));
    if (!pod) return {};
    const run = this.running.get(pod.metadata.uid);
    if (pod.metadata.deletionTimestamp !== undefined) {
      if (run?.container && !run.killed) {
        run.killed = true;
        run.container.kill('SIGTERM');
        const c = run.container;
        this.clock.schedule(TERMINATION_GRACE, `${this.name} SIGKILL ${pod.metadata.name}`, () => {
          c.kill('SIGKILL');
        });
        return {};
      }
      if (run?.container) return {};
      this.running.delete(pod.metadata.uid);
      pod.metadata.finalizers = (pod.metadata.finalizers ?? []).filter(
        (f) => f !== KUBELET_FINALIZER,
      );
      this.store.update(pod, 'kubelet');
      return {};
    }
    const phase = str(pod, 'status', 'phase');
    if (phase === 'Succeeded' || phase === 'Failed' || run !== undefined) return {};
    const ns = pod.metadata.namespace ?? 'default';
    // Scheduling: every claim must exist and be bound.
    const mounts: Record<string, string> = {};
    const volumeDirs = new Map<string, { dir: string; claim?: string }>();
    const podDir = join(this.root, 'pods', `${pod.metadata.name}-${pod.metadata.uid.slice(0, 8)}`);
    for (const v of arr(pod, 'spec', 'volumes')) {
      const name = str(v, 'name') ?? '';
      const claim = str(v, 'persistentVolumeClaim', 'claimName');
      const cm = str(v, 'configMap', 'name');
      if (claim !== undefined) {
        const pvc = this.store.get({
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          name: claim,
          namespace: ns,
        });
        if (!pvc)
          return this.waiting(
            pod,
            'Unschedulable',
            `0/1 nodes are available: persistentvolumeclaim "${claim}" not found.`,
          );
        const dir = this.volumeOf(ns, claim);
        if (str(pvc, 'status', 'phase') !== 'Bound' || dir === undefined) {
          return this.waiting(
            pod,
            'Unschedulable',
            '0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.',
          );
        }
        volumeDirs.set(name, { dir, claim });
      } else if (cm !== undefined) {
        const map = this.store.get({
          apiVersion: 'v1',
          kind: 'ConfigMap',
          name: cm,
          namespace: ns,
        });
        if (!map)
          return this.waiting(
            pod,
            'ContainerCreating',
            `MountVolume.SetUp failed for volume "${name}" : configmap "${cm}" not found`,
          );
        volumeDirs.set(name, {
          dir: this.projectConfigMap(podDir, name, map, arr(v, 'configMap', 'items')),
        });
      } else {
        const dir = join(podDir, 'volumes', name);
        mkdirSync(dir, { recursive: true });
        volumeDirs.set(name, { dir });
      }
    }
    const containers = arr(pod, 'spec', 'containers');
    const c0 = isObj(containers[0]) ? containers[0] : {};
    for (const m of arr(c0, 'volumeMounts')) {
      const v = volumeDirs.get(str(m, 'name') ?? '');
      const path = str(m, 'mountPath');
      if (v !== undefined && path !== undefined) mounts[path] = v.dir;
    }
    // Environment: a missing Secret or key keeps the container from being created.
    const env: Record<string, string> = {};
    for (const e of arr(c0, 'env')) {
      const name = str(e, 'name') ?? '';
      const value = str(e, 'value');
      if (value !== undefined) {
        env[name] = value;
        continue;
      }
      const ref = obj(e, 'valueFrom', 'secretKeyRef');
      if (!ref) continue;
      const secretName = String(ref['name']);
      const k = String(ref['key']);
      const optional = ref['optional'] === true;
      const secret = this.store.get({
        apiVersion: 'v1',
        kind: 'Secret',
        name: secretName,
        namespace: ns,
      });
      if (!secret) {
        if (optional) continue;
        return this.waiting(pod, 'CreateContainerConfigError', `secret "${secretName}" not found`);
      }
      const data = str(secret, 'data', k);
      if (data === undefined) {
        if (optional) continue;
        return this.waiting(
          pod,
          'CreateContainerConfigError',
          `couldn't find key ${k} in Secret ${ns}/${secretName}`,
        );
      }
      env[name] = Buffer.from(data, 'base64').toString('utf8');
    }
    const command = arr(c0, 'command').map(String);
    const engine = !this.opts.runner.accepts(command);
    if (engine) return this.startEngine(pod, c0, volumeDirs);
    // Service-account token (projected by the kubelet for automountServiceAccountToken pods).
    const saName = str(pod, 'spec', 'serviceAccountName') ?? 'default';
    const sa = this.store.get({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      name: saName,
      namespace: ns,
    });
    const saDir = join(podDir, 'serviceaccount');
    mkdirSync(saDir, { recursive: true });
    const token = `sim-${this.name}-${pod.metadata.uid}`;
    writeFileSync(join(saDir, 'token'), token);
    writeFileSync(join(saDir, 'ca.crt'), (await servingCert()).cert);
    writeFileSync(join(saDir, 'namespace'), ns);
    if (
      sa &&
      pod['spec'] !== undefined &&
      (pod['spec'] as Json)['automountServiceAccountToken'] !== false
    ) {
      this.api.tokens.set(token, {
        namespace: ns,
        serviceAccount: saName,
        saUid: sa.metadata.uid,
        pod: pod.metadata.name,
      });
    }
    const termination = join(podDir, 'termination-log');
    writeFileSync(termination, '');
    const logFile = join(podDir, 'container.log');
    this.fetchPods.push(pod.metadata.name);
    const release = this.clock.hold(`${this.name}/${pod.metadata.name}`);
    const c = this.opts.runner.start({
      command,
      env,
      mounts,
      fixedPaths: { [SA_DIR]: saDir, [TERMINATION_LOG]: termination },
      logFile,
      apiHost: '127.0.0.1',
      apiPort: this.api.port,
    });
    const entry: Running = { container: c, release, killed: false };
    this.running.set(pod.metadata.uid, entry);
    this.podStatus(pod, 'Running', { state: { running: { startedAt: this.clock.iso() } } }, true, {
      startTime: this.clock.iso(),
    });
    void c.exited.then(({ code, signal }) => {
      // The exit is observed in virtual time, at the virtual now of its wall-clock moment.
      this.clock.schedule(0, `${this.name} exit ${pod.metadata.name}`, () => {
        entry.container = undefined;
        release();
        const exitCode = code ?? (signal === 'SIGKILL' ? 137 : signal === 'SIGTERM' ? 143 : 1);
        let message = '';
        try {
          message = readSmall(termination);
        } catch {
          message = '';
        }
        if (message === '' && exitCode !== 0) message = tail(logFile);
        this.podStatus(
          pod,
          exitCode === 0 ? 'Succeeded' : 'Failed',
          {
            state: {
              terminated: {
                exitCode,
                reason: exitCode === 0 ? 'Completed' : signal === 'SIGKILL' ? 'Error' : 'Error',
                ...(message !== '' ? { message } : {}),
                finishedAt: this.clock.iso(),
              },
            },
          },
          false,
        );
        this.kubelet.enqueue(keyOf(refOf(pod)));
      });
    });
    return {};
  }

  /** An inference engine pod: no engine runs; its cache mounts are checked when it starts. */
  private startEngine(
    pod: KObject,
    c0: Json,
    volumes: Map<string, { dir: string; claim?: string }>,
  ): Result {
    const ns = pod.metadata.namespace ?? 'default';
    this.running.set(pod.metadata.uid, {
      container: undefined,
      release: () => undefined,
      killed: false,
    });
    for (const m of arr(c0, 'volumeMounts')) {
      const v = volumes.get(str(m, 'name') ?? '');
      if (v?.claim === undefined) continue;
      this.opts.onConsumerStart({
        cluster: this.name,
        pod: pod.metadata.name,
        namespace: ns,
        claim: v.claim,
        mountPath: str(m, 'mountPath') ?? '',
        dir: v.dir,
      });
    }
    this.podStatus(pod, 'Running', { state: { running: { startedAt: this.clock.iso() } } }, false, {
      startTime: this.clock.iso(),
    });
    this.clock.schedule(ENGINE_READY_AFTER, `${this.name} ready ${pod.metadata.name}`, () => {
      const p = this.store.get(refOf(pod));
      if (p?.metadata.deletionTimestamp !== undefined || p === undefined) return;
      this.podStatus(
        p,
        'Running',
        { state: { running: { startedAt: str(p, 'status', 'startTime') ?? this.clock.iso() } } },
        true,
      );
    });
    return {};
  }

  /** A ConfigMap volume as the kubelet's atomic writer lays it out: ..data -> ..<ts>/. */
  private projectConfigMap(podDir: string, volume: string, cm: KObject, items: unknown[]): string {
    const dir = join(podDir, 'volumes', volume);
    rmSync(dir, { recursive: true, force: true });
    const ts = `..${this.clock.iso().replace(/[-:]/g, '_')}.${String(++this.seq)}`;
    mkdirSync(join(dir, ts), { recursive: true });
    const data = isObj(cm['data']) ? cm['data'] : {};
    const entries: [string, string][] =
      items.length > 0
        ? items.flatMap((it) => {
            const k = str(it, 'key');
            const p = str(it, 'path');
            return k !== undefined && p !== undefined && typeof data[k] === 'string'
              ? [[p, data[k]] as [string, string]]
              : [];
          })
        : Object.entries(data).map(([k, v]) => [k, String(v)] as [string, string]);
    const tops = new Set<string>();
    for (const [p, v] of entries) {
      const file = join(dir, ts, p);
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileSync(file, v);
      tops.add(p.split('/')[0] ?? p);
    }
    symlinkSync(ts, join(dir, '..data'));
    for (const t of tops) symlinkSync(join('..data', t), join(dir, t));
    return dir;
  }

  // ---------------------------------------------------------------------------------------
  // Faults and teardown.

  /** Running fetch pods (name -> pid), for fault injection. */
  runningFetchPods(): { name: string; uid: string }[] {
    return this.store
      .list('v1', 'Pod')
      .filter((p) => this.running.get(p.metadata.uid)?.container !== undefined)
      .map((p) => ({ name: p.metadata.name, uid: p.metadata.uid }));
  }

  /** Kill a pod's process as the kernel would (OOM, node trouble): the pod fails. */
  killProcess(uid: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
    const r = this.running.get(uid);
    if (!r?.container) return false;
    r.container.kill(signal);
    return true;
  }

  async close(): Promise<void> {
    const waits: Promise<unknown>[] = [];
    for (const r of this.running.values()) {
      if (r.container) {
        r.container.kill('SIGKILL');
        waits.push(r.container.exited);
      }
      r.release();
    }
    await Promise.all(waits);
    await this.api.close();
  }
}

function seedOf(name: string): number {
  let n = 7;
  for (let i = 0; i < name.length; i++) n = (n * 31 + name.charCodeAt(i)) >>> 0;
  return n;
}

function refFromKey(key: string, apiVersion: string): Ref {
  const [, kind, namespace, name] = key.split('/');
  return {
    apiVersion,
    kind: kind ?? '',
    name: name ?? '',
    ...(namespace !== undefined && namespace !== '' ? { namespace } : {}),
  };
}

function readSmall(path: string): string {
  return readFileSync(path, 'utf8').slice(0, 4096).trim();
}

/** terminationMessagePolicy FallbackToLogsOnError: the end of the log (here its last line). */
function tail(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    return (lines[lines.length - 1] ?? '').slice(0, 2048);
  } catch {
    return '';
  }
}
