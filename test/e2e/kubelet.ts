// A stand-in kubelet for one fake Node of a workload cluster, and the small provisioner of its
// ReadWriteMany classes.
//
// The kubelet binds every unscheduled Pod to its Node (nothing else schedules here) and runs
// each container whose image it can map to a local directory as a local process: a private
// mount namespace holding a throwaway root (bind-mounted read-only onto itself, as
// readOnlyRootFilesystem asks), the image's content at its paths, and the pod's volumes
// (claim, emptyDir, ConfigMap, Secret, projected service-account token) at their mount paths,
// then chroot as the pod's uid/gid. It reports Running, then Succeeded/Failed with the exit
// code and the termination message, and on deletion stops the container and confirms. Pods of
// images it cannot map stay Pending in ImagePullBackOff, as on a cluster that cannot pull them.
//
// The provisioner answers every Pending claim of a StorageClass that exists on the cluster with
// a hostPath PersistentVolume pre-bound to it; the cluster's own PV controller binds the two.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { KubeError, type Json, type Kube } from './kube.js';

export interface KubeletOptions {
  node: string;
  /** Pods' roots, volumes, logs and termination messages live here. */
  workDir: string;
  /** Where the pods reach their API server (KUBERNETES_SERVICE_HOST/PORT). */
  apiHost: string;
  apiPort: number;
  caFile: string;
  /** Image repository (tag and digest ignored) → the directory its content is at. */
  images: Map<string, ImageContent>;
  log: string;
}

/** What an image holds, as host paths bound at the image's paths, and its configured environment. */
export interface ImageContent {
  binds: { host: string; target: string; file?: boolean }[];
  env: Record<string, string>;
}

interface Running {
  child: ChildProcess;
  deleted: boolean;
  killed: boolean;
}

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const obj = (v: unknown): Json => (v !== null && typeof v === 'object' ? (v as Json) : {});
const arr = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The host tools a container is set up with, by absolute path: the pod's PATH is not the host's. */
function hostTool(name: string): string {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (existsSync(join(d, name))) return join(d, name);
  }
  throw new Error(`the e2e kubelet needs ${name} (util-linux / coreutils)`);
}

/** Host directories every container sees read-only (shared libraries for the mapped binaries). */
const SYSTEM_DIRS = ['/usr', '/lib', '/lib64', '/bin'];

export class Kubelet {
  private readonly running = new Map<string, Running>();
  private readonly seen = new Set<string>();
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** Pod uid → number of containers started (a mid-download kill starts a new pod). */
  readonly started: { namespace: string; name: string; uid: string; at: number }[] = [];

  constructor(
    private readonly kube: Kube,
    private readonly opts: KubeletOptions,
  ) {
    mkdirSync(opts.workDir, { recursive: true });
  }

  private say(msg: string): void {
    appendFileSync(this.opts.log, `${new Date().toISOString()} ${msg}\n`);
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const r of this.running.values()) {
      if (r.child.pid !== undefined) signalGroup(r.child.pid, 'SIGKILL');
    }
    await this.loop;
  }

  /** SIGKILL the running container of a pod (a crash mid-work); true if one was running. */
  killContainer(namespace: string, podName: string): boolean {
    for (const [key, r] of this.running) {
      if (key.startsWith(`${namespace}/${podName}/`) && r.child.pid !== undefined) {
        r.killed = true;
        signalGroup(r.child.pid, 'SIGKILL');
        return true;
      }
    }
    return false;
  }

  /** Every container log this kubelet wrote. */
  containerLogs(): string[] {
    const dir = join(this.opts.workDir, 'pods');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .map((d) => join(dir, d, 'container.log'))
      .filter((f) => existsSync(f));
  }

  runningPods(): string[] {
    return [...this.running.keys()].map((k) => k.split('/').slice(0, 2).join('/'));
  }

  private async run(): Promise<void> {
    let lastBeat = 0;
    while (!this.stopped) {
      try {
        if (Date.now() - lastBeat > 20_000) {
          await this.heartbeat();
          lastBeat = Date.now();
        }
        await this.provision();
        await this.syncPods();
      } catch (err) {
        this.say(`sync: ${err instanceof Error ? err.message : String(err)}`);
      }
      await sleep(500);
    }
  }

  private async heartbeat(): Promise<void> {
    const node = this.opts.node;
    const existing = await this.kube.getOrUndefined(`/api/v1/nodes/${node}`);
    if (!existing) {
      await this.kube.post('/api/v1/nodes', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: node, labels: { 'kubernetes.io/hostname': node } },
      });
    }
    const t = now();
    await this.kube.request(
      'PATCH',
      `/api/v1/nodes/${node}/status`,
      {
        status: {
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'KubeletReady',
              message: 'e2e kubelet is posting ready status',
              lastHeartbeatTime: t,
              lastTransitionTime: t,
            },
          ],
          capacity: { cpu: '2', memory: '24Gi', pods: '110' },
          allocatable: { cpu: '2', memory: '24Gi', pods: '110' },
          addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
        },
      },
      'application/merge-patch+json',
    );
  }

  // --- provisioner -------------------------------------------------------------------------

  private async provision(): Promise<void> {
    const claims = await this.kube.list('/api/v1/persistentvolumeclaims');
    for (const pvc of claims) {
      const meta = obj(pvc['metadata']);
      const spec = obj(pvc['spec']);
      const cls = str(spec['storageClassName']);
      if (str(obj(pvc['status'])['phase']) !== 'Pending' || str(spec['volumeName']) !== '' || !cls)
        continue;
      if (meta['deletionTimestamp']) continue;
      if (!(await this.kube.getOrUndefined(`/apis/storage.k8s.io/v1/storageclasses/${cls}`)))
        continue;
      const uid = str(meta['uid']);
      const name = `pvc-${uid}`;
      if (await this.kube.getOrUndefined(`/api/v1/persistentvolumes/${name}`)) continue;
      const path = join(this.opts.workDir, 'volumes', name);
      mkdirSync(path, { recursive: true });
      const storage = str(obj(obj(spec['resources'])['requests'])['storage']) || '1Gi';
      await this.kube.post('/api/v1/persistentvolumes', {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name, annotations: { 'pv.kubernetes.io/provisioned-by': 'e2e-provisioner' } },
        spec: {
          storageClassName: cls,
          capacity: { storage },
          accessModes: spec['accessModes'] ?? ['ReadWriteMany'],
          persistentVolumeReclaimPolicy: 'Retain',
          volumeMode: 'Filesystem',
          claimRef: {
            apiVersion: 'v1',
            kind: 'PersistentVolumeClaim',
            namespace: meta['namespace'],
            name: meta['name'],
            uid,
          },
          hostPath: { path, type: 'DirectoryOrCreate' },
        },
      });
      this.say(
        `provisioned ${name} (${cls}, ${storage}) for ${str(meta['namespace'])}/${str(meta['name'])} at ${path}`,
      );
    }
  }

  // --- pods ----------------------------------------------------------------------------------

  private async syncPods(): Promise<void> {
    const pods = await this.kube.list('/api/v1/pods');
    for (const pod of pods) {
      const meta = obj(pod['metadata']);
      const spec = obj(pod['spec']);
      const ns = str(meta['namespace']);
      const name = str(meta['name']);
      const uid = str(meta['uid']);
      const key = `${ns}/${name}/${uid}`;
      const nodeName = str(spec['nodeName']);
      if (nodeName !== '' && nodeName !== this.opts.node) continue;
      if (meta['deletionTimestamp']) {
        await this.onDelete(key, ns, name, pod);
        continue;
      }
      if (this.seen.has(uid)) continue;
      const phase = str(obj(pod['status'])['phase']);
      if (phase !== '' && phase !== 'Pending') {
        if (phase === 'Running' && !this.running.has(key)) {
          // Running on this node but not run by this kubelet: a previous life's container is gone.
          this.seen.add(uid);
          await this.patchStatus(ns, name, {
            phase: 'Failed',
            reason: 'NodeRestarted',
            message: 'the e2e kubelet restarted; the container is gone',
          });
        }
        continue;
      }
      this.seen.add(uid);
      if (nodeName === '') {
        try {
          await this.kube.post(`/api/v1/namespaces/${ns}/pods/${name}/binding`, {
            apiVersion: 'v1',
            kind: 'Binding',
            metadata: { name, namespace: ns },
            target: { apiVersion: 'v1', kind: 'Node', name: this.opts.node },
          });
        } catch (err) {
          this.seen.delete(uid);
          this.say(
            `${ns}/${name}: bind failed: ${err instanceof Error ? err.message : String(err)}`,
          );
          continue;
        }
      }
      void this.runPod(pod).catch((err: unknown) => {
        this.say(`${ns}/${name}: ${err instanceof Error ? err.message : String(err)}`);
      });
    }
  }

  private async onDelete(key: string, ns: string, name: string, pod: Json): Promise<void> {
    const r = this.running.get(key);
    if (r && !r.deleted) {
      r.deleted = true;
      const grace = Math.min(Number(obj(pod['spec'])['terminationGracePeriodSeconds'] ?? 30), 5);
      if (r.child.pid !== undefined) signalGroup(r.child.pid, 'SIGTERM');
      const pid = r.child.pid;
      setTimeout(() => {
        if (pid !== undefined && r.child.exitCode === null) signalGroup(pid, 'SIGKILL');
      }, grace * 1000).unref();
      this.say(`${ns}/${name}: deleting; container stopped (grace ${grace} s)`);
      return;
    }
    if (r) return;
    // No container (finished, or never ours to run): confirm the deletion as a kubelet does.
    await this.kube.delete(`/api/v1/namespaces/${ns}/pods/${name}`, {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      gracePeriodSeconds: 0,
    });
  }

  private async patchStatus(ns: string, name: string, status: Json): Promise<void> {
    try {
      await this.kube.request(
        'PATCH',
        `/api/v1/namespaces/${ns}/pods/${name}/status`,
        { status },
        'application/merge-patch+json',
      );
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return;
      throw err;
    }
  }

  private async runPod(pod: Json): Promise<void> {
    const meta = obj(pod['metadata']);
    const spec = obj(pod['spec']);
    const ns = str(meta['namespace']);
    const name = str(meta['name']);
    const uid = str(meta['uid']);
    const key = `${ns}/${name}/${uid}`;
    const containers = arr(spec['containers']);
    const c = containers[0] ?? {};
    const image = str(c['image']);
    const repo = imageRepository(image);
    const start = now();
    const cs = { name: str(c['name']), image, imageID: '', restartCount: 0 };
    const content = this.opts.images.get(repo);
    if (!content || containers.length !== 1 || arr(spec['initContainers']).length > 0) {
      const why = !content
        ? `the e2e kubelet runs only ${[...this.opts.images.keys()].join(', ')}; no local content for ${image}`
        : 'the e2e kubelet runs single-container pods without init containers';
      await this.patchStatus(ns, name, {
        phase: 'Pending',
        hostIP: '127.0.0.1',
        startTime: start,
        conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: start }],
        containerStatuses: [
          {
            ...cs,
            ready: false,
            started: false,
            state: { waiting: { reason: 'ImagePullBackOff', message: why } },
          },
        ],
      });
      this.say(`${ns}/${name}: ${why}; left Pending`);
      return;
    }
    const podDir = join(this.opts.workDir, 'pods', `${ns}_${name}_${uid}`);
    const root = join(podDir, 'root');
    const logFile = join(podDir, 'container.log');
    const termFile = join(podDir, 'termination-log');
    mkdirSync(root, { recursive: true });
    let state: Json;
    let phase: string;
    try {
      const env = await this.environment(content, ns, name, uid, c);
      const sc = { ...obj(spec['securityContext']), ...obj(c['securityContext']) };
      const runAs = Number(sc['runAsUser'] ?? 0);
      const runAsGroup = Number(sc['runAsGroup'] ?? 0);
      const fsGroup = obj(spec['securityContext'])['fsGroup'] as number | undefined;
      const binds = await this.volumeBinds(ns, name, uid, spec, c, podDir, fsGroup);
      for (const b of content.binds)
        binds.push({ host: b.host, target: b.target, file: b.file ?? false, ro: true });
      for (const d of SYSTEM_DIRS) {
        if (existsSync(d)) binds.push({ host: d, target: d, file: false, ro: true });
      }
      for (const dev of ['null', 'zero', 'random', 'urandom']) {
        binds.push({ host: `/dev/${dev}`, target: `/dev/${dev}`, file: true, ro: false });
      }
      writeFileSync(termFile, '');
      chmodSync(termFile, 0o666);
      binds.push({
        host: termFile,
        target: str(c['terminationMessagePath']) || '/dev/termination-log',
        file: true,
        ro: false,
      });

      // The root is bound onto itself first so it can be made read-only once the pod's
      // mounts are in place; the mounts below it keep their own (rw or ro) flags.
      const mount = hostTool('mount');
      const mkdir = hostTool('mkdir');
      const script = [
        'set -e',
        `echo ${quote(name)} > /proc/sys/kernel/hostname`,
        `${mount} --bind ${quote(root)} ${quote(root)}`,
      ];
      for (const b of binds) {
        const t = join(root, b.target);
        if (b.file) {
          mkdirSync(dirname(t), { recursive: true });
          if (!existsSync(t)) closeSync(openSync(t, 'a'));
        } else {
          mkdirSync(t, { recursive: true });
          // Again once the mounts before it are in place: a bind under a volume (the
          // checkout's node_modules under an emptyDir at /tmp, when the checkout is in /tmp)
          // needs its mount point inside that volume.
          script.push(`${mkdir} -p ${quote(t)}`);
        }
        script.push(`${mount} --bind ${quote(b.host)} ${quote(t)}`);
        if (b.ro) script.push(`${mount} -o remount,bind,ro ${quote(t)}`);
      }
      mkdirSync(join(root, 'proc'), { recursive: true });
      script.push(`${mount} -t proc proc ${quote(join(root, 'proc'))}`);
      if (sc['readOnlyRootFilesystem'] === true)
        script.push(`${mount} -o remount,bind,ro ${quote(root)}`);
      const argv = [...arr(c['command']), ...arr(c['args'])].map((a) => quote(str(a)));
      const groups = fsGroup !== undefined ? ` --groups=${fsGroup}` : '';
      script.push(
        `exec ${hostTool('chroot')} --userspec=${runAs}:${runAsGroup}${groups} ${quote(root)} ${argv.join(' ')}`,
      );

      await this.patchStatus(ns, name, {
        phase: 'Running',
        hostIP: '127.0.0.1',
        podIP: '127.0.0.1',
        startTime: start,
        conditions: ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({
          type,
          status: 'True',
          lastTransitionTime: start,
        })),
        containerStatuses: [
          { ...cs, ready: true, started: true, state: { running: { startedAt: start } } },
        ],
      });
      const out = openSync(logFile, 'a');
      const child = spawn(
        hostTool('unshare'),
        // Own mount, pid and UTS namespaces, as a pod sandbox has: the container sees its own
        // /proc and pid 1, and the pod's name as its host name.
        [
          '--mount',
          '--pid',
          '--fork',
          '--uts',
          '--propagation',
          'private',
          'sh',
          '-c',
          script.join('\n'),
        ],
        {
          env,
          stdio: ['ignore', out, out],
          detached: true,
        },
      );
      closeSync(out);
      const r: Running = { child, deleted: false, killed: false };
      this.running.set(key, r);
      this.started.push({ namespace: ns, name, uid, at: Date.now() });
      this.say(
        `${ns}/${name}: running ${argv.join(' ')} as ${runAs}:${runAsGroup} (log ${logFile})`,
      );
      const rc = await new Promise<number>((resolve) => {
        child.on('exit', (code, signal) => {
          resolve(code ?? (signal === 'SIGKILL' ? 137 : 143));
        });
      });
      this.running.delete(key);
      if (r.deleted) {
        await this.kube.delete(`/api/v1/namespaces/${ns}/pods/${name}`, {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          gracePeriodSeconds: 0,
        });
        this.say(`${ns}/${name}: stopped (exit ${rc}) and deleted`);
        return;
      }
      let msg = readFileSync(termFile, 'utf8');
      if (msg === '' && rc !== 0 && c['terminationMessagePolicy'] === 'FallbackToLogsOnError') {
        msg = readFileSync(logFile, 'utf8').split('\n').slice(-80).join('\n').slice(-2048);
      }
      state = {
        terminated: {
          exitCode: rc,
          reason: rc === 0 ? 'Completed' : 'Error',
          startedAt: start,
          finishedAt: now(),
          ...(msg !== '' ? { message: msg.slice(0, 4096) } : {}),
        },
      };
      phase = rc === 0 ? 'Succeeded' : 'Failed';
      this.say(
        `${ns}/${name}: exited ${rc}${r.killed ? ' (killed by the harness)' : ''} -> ${phase}`,
      );
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.say(`${ns}/${name}: cannot run: ${message}`);
      state = {
        terminated: {
          exitCode: 128,
          reason: 'ContainerCannotRun',
          message: message.slice(0, 4096),
          startedAt: start,
          finishedAt: now(),
        },
      };
      phase = 'Failed';
    }
    const t = now();
    await this.patchStatus(ns, name, {
      phase,
      conditions: [
        { type: 'Ready', status: 'False', reason: 'PodCompleted', lastTransitionTime: t },
        { type: 'ContainersReady', status: 'False', reason: 'PodCompleted', lastTransitionTime: t },
      ],
      containerStatuses: [{ ...cs, ready: false, started: false, state }],
    });
  }

  private async environment(
    image: ImageContent,
    ns: string,
    name: string,
    uid: string,
    c: Json,
  ): Promise<Record<string, string>> {
    const env: Record<string, string> = {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      ...image.env,
      // What runc sets when neither the image nor the pod does and the uid has no passwd entry.
      HOME: image.env['HOME'] ?? '/',
      HOSTNAME: name,
      KUBERNETES_SERVICE_HOST: this.opts.apiHost,
      KUBERNETES_SERVICE_PORT: String(this.opts.apiPort),
    };
    for (const e of arr(c['env'])) {
      const key = str(e['name']);
      if ('value' in e) {
        env[key] = str(e['value']);
        continue;
      }
      const from = obj(e['valueFrom']);
      const field = obj(from['fieldRef']);
      if (field['fieldPath'] !== undefined) {
        const fp = str(field['fieldPath']);
        env[key] =
          fp === 'metadata.namespace'
            ? ns
            : fp === 'metadata.name'
              ? name
              : fp === 'metadata.uid'
                ? uid
                : '';
        continue;
      }
      for (const [kind, plural] of [
        ['secretKeyRef', 'secrets'],
        ['configMapKeyRef', 'configmaps'],
      ] as const) {
        const ref = obj(from[kind]);
        if (ref['name'] === undefined) continue;
        const o = await this.kube.getOrUndefined(
          `/api/v1/namespaces/${ns}/${plural}/${str(ref['name'])}`,
        );
        const raw = o ? obj(o['data'])[str(ref['key'])] : undefined;
        if (raw === undefined) {
          if (ref['optional'] === true) continue;
          throw new Error(`${kind} ${str(ref['name'])}/${str(ref['key'])} not found`);
        }
        env[key] =
          kind === 'secretKeyRef' ? Buffer.from(str(raw), 'base64').toString('utf8') : str(raw);
      }
    }
    return env;
  }

  private async volumeBinds(
    ns: string,
    name: string,
    uid: string,
    spec: Json,
    c: Json,
    podDir: string,
    fsGroup: number | undefined,
  ): Promise<{ host: string; target: string; file: boolean; ro: boolean }[]> {
    const vols = new Map(arr(spec['volumes']).map((v) => [str(v['name']), v]));
    const binds: { host: string; target: string; file: boolean; ro: boolean }[] = [];
    for (const vm of arr(c['volumeMounts'])) {
      const vname = str(vm['name']);
      const v = vols.get(vname);
      if (!v) throw new Error(`volume mount ${vname} names no volume`);
      let ro = vm['readOnly'] === true;
      let host: string;
      const dir = join(podDir, 'volumes', vname);
      if (v['persistentVolumeClaim'] !== undefined) {
        const claim = obj(v['persistentVolumeClaim']);
        const pvc = await this.kube.get(
          `/api/v1/namespaces/${ns}/persistentvolumeclaims/${str(claim['claimName'])}`,
        );
        const pvName = str(obj(pvc['spec'])['volumeName']);
        if (!pvName) throw new Error(`claim ${str(claim['claimName'])} is not bound`);
        const pv = await this.kube.get(`/api/v1/persistentvolumes/${pvName}`);
        host = str(obj(obj(pv['spec'])['hostPath'])['path']);
        if (!host) throw new Error(`volume ${pvName} is not a hostPath volume`);
        mkdirSync(host, { recursive: true });
        if (fsGroup !== undefined) {
          // What the kubelet does for fsGroup: the volume's group, setgid so new files inherit it.
          chownSync(host, -1, fsGroup);
          chmodSync(host, 0o2775);
        }
        ro = ro || claim['readOnly'] === true;
      } else if (v['emptyDir'] !== undefined) {
        host = dir;
        mkdirSync(host, { recursive: true });
        chmodSync(host, 0o1777);
      } else if (v['configMap'] !== undefined || v['secret'] !== undefined) {
        host = dir;
        const isCm = v['configMap'] !== undefined;
        const src = obj(isCm ? v['configMap'] : v['secret']);
        const oname = str(isCm ? src['name'] : src['secretName']);
        const o = await this.kube.get(
          `/api/v1/namespaces/${ns}/${isCm ? 'configmaps' : 'secrets'}/${oname}`,
        );
        writeKeys(host, keysOf(o, isCm), arr(src['items']), Number(src['defaultMode'] ?? 0o644));
        ro = true;
      } else if (v['projected'] !== undefined) {
        host = dir;
        await this.projected(ns, name, uid, spec, obj(v['projected']), host);
        ro = true;
      } else {
        throw new Error(
          `the e2e kubelet cannot mount volume ${vname} (${Object.keys(v).join(', ')})`,
        );
      }
      binds.push({ host, target: str(vm['mountPath']), file: false, ro });
    }
    return binds;
  }

  private async projected(
    ns: string,
    name: string,
    uid: string,
    spec: Json,
    p: Json,
    host: string,
  ): Promise<void> {
    mkdirSync(host, { recursive: true });
    const mode = Number(p['defaultMode'] ?? 0o644);
    for (const s of arr(p['sources'])) {
      if (s['serviceAccountToken'] !== undefined) {
        const t = obj(s['serviceAccountToken']);
        const sa = str(spec['serviceAccountName']) || 'default';
        const res = await this.kube.post(`/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: {
            ...(t['audience'] !== undefined ? { audiences: [t['audience']] } : {}),
            expirationSeconds: Number(t['expirationSeconds'] ?? 3607),
            boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name, uid },
          },
        });
        const token = str(obj(res['status'])['token']);
        const f = join(host, str(t['path']) || 'token');
        writeFileSync(f, token);
        chmodSync(f, mode);
      } else if (s['configMap'] !== undefined || s['secret'] !== undefined) {
        const isCm = s['configMap'] !== undefined;
        const src = obj(isCm ? s['configMap'] : s['secret']);
        const o = await this.kube.getOrUndefined(
          `/api/v1/namespaces/${ns}/${isCm ? 'configmaps' : 'secrets'}/${str(src['name'])}`,
        );
        if (!o) {
          if (src['optional'] === true) continue;
          throw new Error(
            `projected ${isCm ? 'configMap' : 'secret'} ${str(src['name'])} not found`,
          );
        }
        writeKeys(host, keysOf(o, isCm), arr(src['items']), mode);
      } else if (s['downwardAPI'] !== undefined) {
        for (const item of arr(obj(s['downwardAPI'])['items'])) {
          const fp = str(obj(item['fieldRef'])['fieldPath']);
          const value =
            fp === 'metadata.namespace'
              ? ns
              : fp === 'metadata.name'
                ? name
                : fp === 'metadata.uid'
                  ? uid
                  : '';
          const f = join(host, str(item['path']));
          mkdirSync(dirname(f), { recursive: true });
          writeFileSync(f, value);
          chmodSync(f, mode);
        }
      }
    }
  }
}

function keysOf(o: Json, isConfigMap: boolean): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(obj(o['data']))) {
    out.set(k, isConfigMap ? Buffer.from(str(v), 'utf8') : Buffer.from(str(v), 'base64'));
  }
  if (isConfigMap) {
    for (const [k, v] of Object.entries(obj(o['binaryData'])))
      out.set(k, Buffer.from(str(v), 'base64'));
  }
  return out;
}

function writeKeys(dir: string, keys: Map<string, Buffer>, items: Json[], mode: number): void {
  mkdirSync(dir, { recursive: true });
  const wanted =
    items.length > 0 ? items : [...keys.keys()].map((k): Json => ({ key: k, path: k }));
  for (const it of wanted) {
    const data = keys.get(str(it['key']));
    if (data === undefined) throw new Error(`key ${str(it['key'])} not found`);
    const f = join(dir, str(it['path']));
    mkdirSync(dirname(f), { recursive: true });
    writeFileSync(f, data);
    chmodSync(f, Number(it['mode'] ?? mode));
  }
}

/** The repository part of an image reference: no tag, no digest. */
export function imageRepository(image: string): string {
  const noDigest = image.split('@')[0] ?? image;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/** A snapshot of the code under test laid out as the image lays it out (/app, /nodejs/bin/node). */
export function functionImage(
  appDir: string,
  nodeModules: string,
  env: Record<string, string>,
): ImageContent {
  return {
    env,
    binds: [
      { host: appDir, target: '/app' },
      // /app/node_modules is a symlink to this absolute path, so it is bound at the same path.
      { host: nodeModules, target: nodeModules },
      { host: process.execPath, target: '/nodejs/bin/node', file: true },
    ],
  };
}

export function copyInto(src: string, dst: string): void {
  mkdirSync(dirname(dst), { recursive: true });
  copyFileSync(src, dst);
}
