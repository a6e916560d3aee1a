// The kubelet of a simulated workload cluster: the scheduler keeps a pod with an unbound claim
// Pending; a pod stays in ContainerCreating while a ConfigMap volume is missing and in
// CreateContainerConfigError while an env Secret (or its key) is missing, retrying; a started
// fetch container runs for real (pods.ts), with its service-account token, termination log and
// volumes; termination sends SIGTERM, then SIGKILL after the grace period (30 s). Engine pods run
// no engine but report each cache they mount when they start (the data-safety probe).
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { SECOND } from '../core/clock.js';
import {
  arr,
  conditions,
  deepEqual,
  isObj,
  obj,
  setCondition,
  str,
  type Json,
} from '../core/json.js';
import { Controller, type Result } from '../core/queue.js';
import { keyOf, refOf, type KObject } from '../core/store.js';
import { servingCert } from './apiserver.js';
import { KUBELET_FINALIZER, refFromKey, type ClusterParts } from './objects.js';
import type { RunningContainer } from './pods.js';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const TERMINATION_LOG = '/dev/termination-log';
const KUBELET_RETRY = 10 * SECOND;
const TERMINATION_GRACE = 30 * SECOND;
const ENGINE_READY_AFTER = 5 * SECOND;

interface Running {
  container: RunningContainer | undefined;
  release: () => void;
  killed: boolean;
}

export class Kubelet {
  readonly queue: Controller;
  private readonly running = new Map<string, Running>();
  private seq = 0;
  /** Every fetch pod started on this cluster (name), in order. */
  readonly fetchPods: string[] = [];

  constructor(private readonly cluster: ClusterParts) {
    this.queue = new Controller(cluster.clock, `${cluster.name}/kubelet`, (k) => this.syncPod(k));
  }

  private podStatus(
    pod: KObject,
    phase: string,
    container: Json,
    ready = false,
    extra: Json = {},
  ): void {
    const latest = this.cluster.store.get(refOf(pod));
    if (!latest) return;
    const status: Json = {
      ...(isObj(latest['status']) ? latest['status'] : {}),
      phase,
      containerStatuses: [
        // at() does not index arrays: the container's own name, which podFailurePolicy keys on.
        { name: containerName(pod), ready, ...container },
      ],
      conditions: setCondition(
        conditions(latest, 'status', 'conditions'),
        { type: 'Ready', status: ready ? 'True' : 'False' },
        this.cluster.clock.iso(),
      ),
      ...extra,
    };
    if (deepEqual(status, latest['status'])) return;
    latest['status'] = status;
    this.cluster.store.updateStatus(latest, 'kubelet');
  }

  private waiting(pod: KObject, reason: string, message: string): Result {
    this.podStatus(pod, 'Pending', { state: { waiting: { reason, message } } });
    this.cluster.record(
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
    const pod = this.cluster.store.get(refFromKey(key, 'v1'));
    if (!pod) return {};
    const run = this.running.get(pod.metadata.uid);
    if (pod.metadata.deletionTimestamp !== undefined) {
      if (run?.container && !run.killed) {
        run.killed = true;
        run.container.kill('SIGTERM');
        const c = run.container;
        this.cluster.clock.schedule(
          TERMINATION_GRACE,
          `${this.cluster.name} SIGKILL ${pod.metadata.name}`,
          () => {
            c.kill('SIGKILL');
          },
        );
        return {};
      }
      if (run?.container) return {};
      this.running.delete(pod.metadata.uid);
      pod.metadata.finalizers = (pod.metadata.finalizers ?? []).filter(
        (f) => f !== KUBELET_FINALIZER,
      );
      this.cluster.store.update(pod, 'kubelet');
      return {};
    }
    const phase = str(pod, 'status', 'phase');
    if (phase === 'Succeeded' || phase === 'Failed' || run !== undefined) return {};
    const ns = pod.metadata.namespace ?? 'default';
    // Scheduling: every claim must exist and be bound.
    const mounts: Record<string, string> = {};
    const volumeDirs = new Map<string, { dir: string; claim?: string }>();
    const podDir = join(
      this.cluster.root,
      'pods',
      `${pod.metadata.name}-${pod.metadata.uid.slice(0, 8)}`,
    );
    for (const v of arr(pod, 'spec', 'volumes')) {
      const name = str(v, 'name') ?? '';
      const claim = str(v, 'persistentVolumeClaim', 'claimName');
      const cm = str(v, 'configMap', 'name');
      if (claim !== undefined) {
        const pvc = this.cluster.store.get({
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
        const dir = this.cluster.volumeOf(ns, claim);
        if (str(pvc, 'status', 'phase') !== 'Bound' || dir === undefined) {
          return this.waiting(
            pod,
            'Unschedulable',
            '0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.',
          );
        }
        volumeDirs.set(name, { dir, claim });
      } else if (cm !== undefined) {
        const map = this.cluster.store.get({
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
      const secret = this.cluster.store.get({
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
    const engine = !this.cluster.opts.runner.accepts(command);
    if (engine) return this.startEngine(pod, c0, volumeDirs);
    // Service-account token (projected by the kubelet for automountServiceAccountToken pods).
    const saName = str(pod, 'spec', 'serviceAccountName') ?? 'default';
    const sa = this.cluster.store.get({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      name: saName,
      namespace: ns,
    });
    const saDir = join(podDir, 'serviceaccount');
    mkdirSync(saDir, { recursive: true });
    const token = `sim-${this.cluster.name}-${pod.metadata.uid}`;
    writeFileSync(join(saDir, 'token'), token);
    writeFileSync(join(saDir, 'ca.crt'), (await servingCert()).cert);
    writeFileSync(join(saDir, 'namespace'), ns);
    if (
      sa &&
      pod['spec'] !== undefined &&
      (pod['spec'] as Json)['automountServiceAccountToken'] !== false
    ) {
      this.cluster.api.tokens.set(token, {
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
    const release = this.cluster.clock.hold(`${this.cluster.name}/${pod.metadata.name}`);
    const c = this.cluster.opts.runner.start({
      command,
      env,
      mounts,
      fixedPaths: { [SA_DIR]: saDir, [TERMINATION_LOG]: termination },
      logFile,
      apiHost: '127.0.0.1',
      apiPort: this.cluster.api.port,
    });
    const entry: Running = { container: c, release, killed: false };
    this.running.set(pod.metadata.uid, entry);
    this.podStatus(
      pod,
      'Running',
      { state: { running: { startedAt: this.cluster.clock.iso() } } },
      true,
      {
        startTime: this.cluster.clock.iso(),
      },
    );
    void c.exited.then(({ code, signal }) => {
      // The exit is observed in virtual time, at the virtual now of its wall-clock moment.
      this.cluster.clock.schedule(0, `${this.cluster.name} exit ${pod.metadata.name}`, () => {
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
                finishedAt: this.cluster.clock.iso(),
              },
            },
          },
          false,
        );
        this.queue.enqueue(keyOf(refOf(pod)));
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
      this.cluster.opts.onConsumerStart({
        cluster: this.cluster.name,
        pod: pod.metadata.name,
        namespace: ns,
        claim: v.claim,
        mountPath: str(m, 'mountPath') ?? '',
        dir: v.dir,
      });
    }
    this.podStatus(
      pod,
      'Running',
      { state: { running: { startedAt: this.cluster.clock.iso() } } },
      false,
      {
        startTime: this.cluster.clock.iso(),
      },
    );
    this.cluster.clock.schedule(
      ENGINE_READY_AFTER,
      `${this.cluster.name} ready ${pod.metadata.name}`,
      () => {
        const p = this.cluster.store.get(refOf(pod));
        if (p?.metadata.deletionTimestamp !== undefined || p === undefined) return;
        this.podStatus(
          p,
          'Running',
          {
            state: {
              running: { startedAt: str(p, 'status', 'startTime') ?? this.cluster.clock.iso() },
            },
          },
          true,
        );
      },
    );
    return {};
  }

  /** A ConfigMap volume as the kubelet's atomic writer lays it out: ..data -> ..<ts>/. */
  private projectConfigMap(podDir: string, volume: string, cm: KObject, items: unknown[]): string {
    const dir = join(podDir, 'volumes', volume);
    rmSync(dir, { recursive: true, force: true });
    const ts = `..${this.cluster.clock.iso().replace(/[-:]/g, '_')}.${String(++this.seq)}`;
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

  /** Running fetch pods (name -> pid), for fault injection. */
  runningFetchPods(): { name: string; uid: string }[] {
    return this.cluster.store
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

  /** Every container killed and its resources released, for teardown. */
  async stop(): Promise<void> {
    const waits: Promise<unknown>[] = [];
    for (const r of this.running.values()) {
      if (r.container) {
        r.container.kill('SIGKILL');
        waits.push(r.container.exited);
      }
      r.release();
    }
    await Promise.all(waits);
  }
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

function containerName(pod: Json): string {
  const containers = (pod['spec'] as { containers?: { name?: unknown }[] } | undefined)?.containers;
  const name = containers?.[0]?.name;
  return typeof name === 'string' ? name : 'main';
}
