// A simulated workload cluster: an API server's store, its admission, and the controllers and
// the kubelet the product depends on, on virtual time, one file each (claims.ts, jobs.ts,
// workloads.ts, kubelet.ts), as kubernetes/kubernetes keeps one package per controller under
// pkg/controller. What they follow:
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
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import type { VirtualClock } from '../core/clock.js';
import type { EventLog } from '../core/events.js';
import { deepEqual, isObj, obj, str } from '../core/json.js';
import { ApiError, keyOf, refOf, Store, type KObject } from '../core/store.js';
import type { RemoteClient } from '../provider/object.js';
import { ApiServer, servingCert } from './apiserver.js';
import { ClaimController } from './claims.js';
import { JobController } from './jobs.js';
import { Kubelet } from './kubelet.js';
import { KUBELET_FINALIZER, PVC_PROTECTION, ownerUid, type ClusterParts } from './objects.js';
import type { ContainerRunner } from './pods.js';
import { WorkloadController } from './deployments.js';

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
  private readonly claims: ClaimController;
  private readonly jobs: JobController;
  private readonly kubelet: Kubelet;
  private readonly workloads: WorkloadController;
  private readonly root: string;

  constructor(
    clock: VirtualClock,
    private readonly events: EventLog,
    private readonly opts: WorkloadClusterOptions,
  ) {
    this.root = join(opts.workDir, opts.name);
    mkdirSync(this.root, { recursive: true });
    this.store = new Store(opts.name, clock, seedOf(opts.name));
    this.api = new ApiServer(this.store, () => undefined);
    const parts: ClusterParts = {
      name: opts.name,
      store: this.store,
      clock,
      api: this.api,
      root: this.root,
      opts,
      volumes: this.volumes,
      record: (o, type, reason, message) => {
        this.record(o, type, reason, message);
      },
      volumeOf: (namespace, claim) => this.volumeOf(namespace, claim),
    };
    this.claims = new ClaimController(parts);
    this.jobs = new JobController(parts);
    this.kubelet = new Kubelet(parts);
    this.workloads = new WorkloadController(parts);
    this.admission();
    this.store.watch((ev) => {
      const key = keyOf(refOf(ev.obj));
      switch (ev.obj.kind) {
        case 'PersistentVolumeClaim':
          this.claims.queue.enqueue(key);
          if (ev.type === 'DELETED') this.claims.reclaim(ev.obj);
          break;
        case 'StorageClass':
          for (const c of this.store.list('v1', 'PersistentVolumeClaim'))
            this.claims.queue.enqueue(keyOf(refOf(c)));
          break;
        case 'Job':
          this.jobs.queue.enqueue(key);
          break;
        case 'Pod': {
          this.kubelet.queue.enqueue(key);
          const job = ownerUid(ev.obj, 'Job');
          if (job !== undefined) this.enqueueOwner('batch/v1', 'Job', job, this.jobs.queue);
          for (const kind of ['Deployment', 'LeaderWorkerSet']) {
            const uid = ownerUid(ev.obj, kind);
            if (uid !== undefined) {
              this.enqueueOwner(
                kind === 'Deployment' ? 'apps/v1' : 'leaderworkerset.x-k8s.io/v1',
                kind,
                uid,
                this.workloads.queue,
              );
            }
          }
          // A pod going away may release a claim held by pvc-protection.
          if (ev.type === 'DELETED' || ev.obj.metadata.deletionTimestamp !== undefined) {
            for (const c of this.store.list('v1', 'PersistentVolumeClaim')) {
              if (c.metadata.deletionTimestamp !== undefined)
                this.claims.queue.enqueue(keyOf(refOf(c)));
            }
          }
          break;
        }
        case 'Deployment':
        case 'LeaderWorkerSet':
          this.workloads.queue.enqueue(key);
          break;
        case 'Secret':
        case 'ConfigMap':
        case 'ServiceAccount':
          for (const p of this.store.list('v1', 'Pod')) {
            if (str(p, 'status', 'phase') === 'Pending')
              this.kubelet.queue.enqueue(keyOf(refOf(p)));
          }
          for (const j of this.store.list('batch/v1', 'Job'))
            this.jobs.queue.enqueue(keyOf(refOf(j)));
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

  private enqueueOwner(
    apiVersion: string,
    kind: string,
    uid: string,
    ctl: { enqueue(key: string): void },
  ): void {
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

  /** Every fetch pod started on this cluster (name), in order. */
  get fetchPods(): readonly string[] {
    return this.kubelet.fetchPods;
  }

  /** Running fetch pods (name and uid), for fault injection. */
  runningFetchPods(): { name: string; uid: string }[] {
    return this.kubelet.runningFetchPods();
  }

  /** Kill a pod's process as the kernel would (OOM, node trouble): the pod fails. */
  killProcess(uid: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
    return this.kubelet.killProcess(uid, signal);
  }

  async close(): Promise<void> {
    await this.kubelet.stop();
    await this.api.close();
  }
}

function seedOf(name: string): number {
  let n = 7;
  for (let i = 0; i < name.length; i++) n = (n * 31 + name.charCodeAt(i)) >>> 0;
  return n;
}
