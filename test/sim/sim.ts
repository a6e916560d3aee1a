// The simulated fleet: a Crossplane control plane (an XR controller per XRD of the package —
// ModelCache, ModelCacheReplica, ModelDeployment, InferenceCluster — each with the
// Composition its XRD selects by default, driven by the real Function over gRPC;
// provider-kubernetes' Object controller; the Usage controller and webhook) and N workload
// clusters whose prefetch Jobs run the real fetch program. A ModelCache composes one
// ModelCacheReplica per matched cluster; each replica composes that cluster's Objects.
// Scenarios drive it like an operator: apply, delete, break things, wait.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { stringify, parse as parseYaml } from 'yaml';

import { VirtualClock, type RunOutcome } from './core/clock.js';
import { EventLog } from './core/events.js';
import { clone, isObj, obj, str, type Json } from './core/json.js';
import {
  Store,
  isApiError,
  keyOf,
  refOf,
  type KObject,
  type Manifest,
  type Ref,
} from './core/store.js';
import { controlPlaneAdmission } from './crossplane/admission.js';
import { CompositeController, type ControlPlaneFaults } from './crossplane/composite.js';
import { installed } from './crossplane/definitions.js';
import { FunctionRunner, type FunctionProcess } from './crossplane/function.js';
import { UsageController } from './crossplane/usage.js';
import { FetchProgramRunner } from './cluster/pods.js';
import { WorkloadCluster, type ConsumerMount, type StorageClassSpec } from './cluster/workload.js';
import {
  DEFAULT_PROVIDER_OPTIONS,
  OBJECT_API_VERSION,
  ObjectController,
  type ProviderOptions,
} from './provider/object.js';
import { verifyVolume, type Expected, type VolumeReport } from './checks.js';
import { ROOT } from './programs.js';

export const XR_API_VERSION = 'modelplane.ai/v1alpha1';
export const NS = 'team-a';
export const SYSTEM_NS = 'crossplane-system';

export interface Violation {
  kind:
    | 'ready-without-bytes'
    | 'consumer-without-bytes'
    | 'secret-in-function-output'
    | 'simulator-error';
  message: string;
  bytesLost: number;
}

/** A cluster's entry in a ModelCache's compact status. */
export interface ClusterEntry {
  name: string;
  phase: string;
  reason: string;
  progress?: { bytesDone: number; bytesTotal: number };
}

/** A ModelCacheReplica's status: the details of one cache on one cluster. */
export interface ReplicaView {
  /** The replica object's name. */
  replica: string;
  cluster: string;
  phase: string;
  reason: string;
  message: string;
  namespace: string;
  claimName: string;
  identity: string;
  progress?: { bytesDone: number; bytesTotal: number };
  resolvedRevision?: string;
}

export const XR_KINDS = [
  'ModelCache',
  'ModelCacheReplica',
  'ModelDeployment',
  'InferenceCluster',
] as const;
export type XrKind = (typeof XR_KINDS)[number];

export interface SimOptions {
  fn: FunctionProcess;
  /** Virtual ms per wall ms while a fetch program runs. */
  rate?: number;
  provider?: Partial<ProviderOptions>;
  keepWorkDir?: boolean;
}

export interface AddClusterOptions {
  labels?: Record<string, string>;
  /** The class the InferenceCluster names (undefined: none). */
  storageClassName?: string;
  /** Classes that exist on the cluster; default: the named class, binding after 15 s. */
  classes?: Record<string, StorageClassSpec>;
  /** Register the InferenceCluster and its provider config (default true). */
  register?: boolean;
  /** Create the ClusterProviderConfig (default true). */
  providerConfig?: boolean;
}

export class Sim {
  readonly clock: VirtualClock;
  readonly cp: Store;
  readonly events: EventLog;
  readonly clusters = new Map<string, WorkloadCluster>();
  readonly runner: FunctionRunner;
  readonly fetch = new FetchProgramRunner();
  readonly xr: Record<XrKind, CompositeController>;
  readonly provider: ObjectController;
  readonly usage: UsageController;
  readonly faults: ControlPlaneFaults = { failFetches: new Map() };
  readonly violations: Violation[] = [];
  readonly workDir: string;
  /** What each cache must hold: `${ns}/${name}` -> files. */
  private readonly expected = new Map<string, Expected>();
  /** Secret values that must never appear in the Function's output. */
  private readonly secrets = new Set<string>();
  /** Identities verified on a cluster: `${cluster}/${claim}/${identity}`. */
  private readonly verified = new Set<string>();
  readonly consumerChecks: (ConsumerMount & { report: VolumeReport })[] = [];
  private readonly byServer = new Map<string, WorkloadCluster>();

  private constructor(private readonly opts: SimOptions) {
    this.workDir = mkdtempSync(join(tmpdir(), 'modelcache-sim-'));
    this.clock = new VirtualClock(opts.rate ?? 50);
    this.cp = new Store('control-plane', this.clock, 42);
    this.events = new EventLog(this.clock);
    controlPlaneAdmission(this.cp);
    this.runner = new FunctionRunner({ 'function-modelcache': opts.fn });
    this.runner.taps.push((_req, rsp) => {
      this.checkSecrets(rsp);
    });
    const cpOpts = { realtime: true, pollIntervalMs: 60_000, faults: this.faults };
    const controllers = new Map<string, CompositeController>();
    for (const { xrd, composition } of installed()) {
      controllers.set(
        xrd.kind,
        new CompositeController(this.clock, this.cp, this.runner, composition, this.events, cpOpts),
      );
    }
    const ctl = (kind: XrKind): CompositeController => {
      const c = controllers.get(kind);
      if (!c) throw new Error(`the package defines no XRD for ${kind}`);
      return c;
    };
    this.xr = {
      ModelCache: ctl('ModelCache'),
      ModelCacheReplica: ctl('ModelCacheReplica'),
      ModelDeployment: ctl('ModelDeployment'),
      InferenceCluster: ctl('InferenceCluster'),
    };
    this.xr.ModelCache.afterReconcile.push((xr) => {
      this.checkReady(xr);
    });
    this.xr.ModelCacheReplica.afterReconcile.push((xr) => {
      this.checkReplicaReady(xr);
      this.recordTransition(xr);
    });
    this.provider = new ObjectController(
      this.clock,
      this.cp,
      (server) => {
        const c = this.byServer.get(server);
        if (!c) {
          throw new Error(
            `dial tcp ${server.replace(/^https:\/\//, '')}: connect: connection refused`,
          );
        }
        return c.client();
      },
      this.events,
      { ...DEFAULT_PROVIDER_OPTIONS, ...(opts.provider ?? {}) },
    );
    this.usage = new UsageController(this.clock, this.cp, (kind) =>
      (XR_KINDS as readonly string[]).includes(kind) ? XR_API_VERSION : 'v1',
    );
  }

  static async start(opts: SimOptions): Promise<Sim> {
    const sim = new Sim(opts);
    if (!opts.fn.running) await opts.fn.start();
    for (const ns of [SYSTEM_NS, NS]) {
      sim.cp.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, 'kubectl');
    }
    return sim;
  }

  // -------------------------------------------------------------------------------------
  // Fleet.

  async addCluster(name: string, o: AddClusterOptions = {}): Promise<WorkloadCluster> {
    const classes =
      o.classes ??
      (o.storageClassName !== undefined
        ? { [o.storageClassName]: { provisioner: 'nfs.csi.k8s.io', bindAfterMs: 15_000 } }
        : {});
    const cluster = new WorkloadCluster(this.clock, this.events, {
      name,
      storageClasses: { ...classes },
      workDir: this.workDir,
      runner: this.fetch,
      onConsumerStart: (m) => {
        this.checkConsumer(m);
      },
    });
    await cluster.start();
    this.clusters.set(name, cluster);
    this.byServer.set(cluster.server, cluster);
    const kubeconfig = stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name, cluster: { server: cluster.server } }],
      contexts: [{ name, context: { cluster: name, user: 'provider-kubernetes' } }],
      'current-context': name,
      users: [{ name: 'provider-kubernetes', user: { token: `sim-${name}-admin` } }],
    });
    this.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${name}-kubeconfig`, namespace: SYSTEM_NS },
      data: { kubeconfig: Buffer.from(kubeconfig).toString('base64') },
    });
    if (o.providerConfig !== false && o.register !== false) this.addProviderConfig(name);
    if (o.register !== false) {
      this.apply({
        apiVersion: XR_API_VERSION,
        kind: 'InferenceCluster',
        metadata: { name, labels: o.labels ?? {} },
        spec: {
          providerConfigRef: { kind: 'ClusterProviderConfig', name },
          ...(o.storageClassName !== undefined
            ? { storage: { storageClassName: o.storageClassName } }
            : {}),
        },
      });
    }
    return cluster;
  }

  /**
   * Register a cluster the control plane cannot reach: its InferenceCluster and provider
   * config exist, but the kubeconfig's server refuses every connection.
   */
  registerUnreachable(
    name: string,
    labels: Record<string, string>,
    storageClassName = 'nfs-rwx',
  ): void {
    const kubeconfig = stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name, cluster: { server: 'https://127.0.0.1:1' } }],
      contexts: [{ name, context: { cluster: name, user: 'provider-kubernetes' } }],
      'current-context': name,
      users: [{ name: 'provider-kubernetes', user: { token: `sim-${name}-admin` } }],
    });
    this.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${name}-kubeconfig`, namespace: SYSTEM_NS },
      data: { kubeconfig: Buffer.from(kubeconfig).toString('base64') },
    });
    this.addProviderConfig(name);
    this.apply({
      apiVersion: XR_API_VERSION,
      kind: 'InferenceCluster',
      metadata: { name, labels },
      spec: {
        providerConfigRef: { kind: 'ClusterProviderConfig', name },
        storage: { storageClassName },
      },
    });
  }

  addProviderConfig(name: string): void {
    this.apply({
      apiVersion: OBJECT_API_VERSION,
      kind: 'ClusterProviderConfig',
      metadata: { name },
      spec: {
        credentials: {
          source: 'Secret',
          secretRef: { namespace: SYSTEM_NS, name: `${name}-kubeconfig`, key: 'kubeconfig' },
        },
      },
    });
  }

  cluster(name: string): WorkloadCluster {
    const c = this.clusters.get(name);
    if (!c) throw new Error(`no cluster ${name}`);
    return c;
  }

  // -------------------------------------------------------------------------------------
  // kubectl.

  /** `kubectl apply`: create, or replace spec/data and merge labels and annotations. */
  apply(m: Manifest | Json): KObject {
    const manifest = clone(m) as Manifest;
    if (manifest.kind === 'Secret') {
      for (const v of Object.values(obj(manifest, 'data') ?? {}))
        if (typeof v === 'string') this.secret(Buffer.from(v, 'base64').toString('utf8'));
      for (const v of Object.values(obj(manifest, 'stringData') ?? {}))
        if (typeof v === 'string') this.secret(v);
    }
    const ref = refOf(manifest);
    const cur = this.cp.get(ref);
    if (!cur) return this.cp.create(manifest, 'kubectl');
    const next = clone(cur);
    next.metadata.labels = { ...(cur.metadata.labels ?? {}), ...(manifest.metadata.labels ?? {}) };
    next.metadata.annotations = {
      ...(cur.metadata.annotations ?? {}),
      ...(manifest.metadata.annotations ?? {}),
    };
    for (const [k, v] of Object.entries(manifest)) {
      if (k === 'metadata' || k === 'status' || k === 'apiVersion' || k === 'kind') continue;
      if (k === 'spec' && isObj(v) && isObj(cur['spec']) && isObj(cur['spec']['crossplane'])) {
        next['spec'] = { ...v, crossplane: cur['spec']['crossplane'] };
      } else next[k] = clone(v);
    }
    if (manifest.kind === 'Secret' && manifest['stringData'] !== undefined) delete next['data'];
    return this.cp.update(next, 'kubectl');
  }

  /** `kubectl label` / `kubectl annotate` (null removes). */
  patchMeta(
    ref: Ref,
    change: { labels?: Record<string, string | null>; annotations?: Record<string, string | null> },
  ): KObject {
    return this.cp.mergePatch(ref, { metadata: change }, 'kubectl');
  }

  /** `kubectl delete`; returns the API error message when refused. */
  delete(ref: Ref): string | undefined {
    try {
      this.cp.delete(ref);
      return undefined;
    } catch (err) {
      if (isApiError(err)) return err.message;
      throw err;
    }
  }

  get(ref: Ref): KObject | undefined {
    return this.cp.get(ref);
  }

  secret(value: string): void {
    if (value.length >= 6) {
      this.secrets.add(value);
      this.secrets.add(Buffer.from(value).toString('base64'));
    }
  }

  // -------------------------------------------------------------------------------------
  // Reading state.

  cacheRef(name: string, namespace = NS): Ref {
    return { apiVersion: XR_API_VERSION, kind: 'ModelCache', name, namespace };
  }

  deploymentRef(name: string, namespace = NS): Ref {
    return { apiVersion: XR_API_VERSION, kind: 'ModelDeployment', name, namespace };
  }

  /** The compact per-cluster entries of a ModelCache's status, by cluster. */
  clustersOf(name: string, namespace = NS): Map<string, ClusterEntry> {
    const xr = this.cp.get(this.cacheRef(name, namespace));
    const list =
      isObj(xr?.['status']) && Array.isArray(xr['status']['clusters'])
        ? (xr['status']['clusters'] as ClusterEntry[])
        : [];
    return new Map(list.map((c) => [c.name, c]));
  }

  /** The ModelCacheReplicas a cache controls (deleting ones included), by cluster. */
  replicaObjects(name: string, namespace = NS): Map<string, KObject> {
    const cache = this.cp.get(this.cacheRef(name, namespace));
    const out = new Map<string, KObject>();
    if (!cache) return out;
    for (const r of this.cp.list(XR_API_VERSION, 'ModelCacheReplica', { namespace })) {
      const ctl = (r.metadata.ownerReferences ?? []).find((o) => o.controller === true);
      if (ctl?.uid !== cache.metadata.uid) continue;
      const cluster = str(r, 'spec', 'cluster') ?? '';
      const prev = out.get(cluster);
      // A replica being deleted gives way to a live one for the same cluster.
      if (prev && prev.metadata.deletionTimestamp === undefined) continue;
      out.set(cluster, r);
    }
    return out;
  }

  /** What each of a cache's replicas reports (its status), by cluster. */
  replicas(name: string, namespace = NS): Map<string, ReplicaView> {
    const out = new Map<string, ReplicaView>();
    for (const [cluster, r] of this.replicaObjects(name, namespace)) {
      const v = replicaView(r);
      if (v) out.set(cluster, v);
    }
    return out;
  }

  /** One replica's report, if it has made one. */
  replica(name: string, cluster: string, namespace = NS): ReplicaView | undefined {
    return this.replicas(name, namespace).get(cluster);
  }

  /**
   * The Objects a cache's replicas compose, keyed `<cluster>/<role>` (role = the composition
   * resource name inside the replica).
   */
  cacheObjects(name: string, namespace = NS): Map<string, KObject> {
    const out = new Map<string, KObject>();
    for (const [cluster, r] of this.replicaObjects(name, namespace)) {
      for (const [role, o] of this.composed(refOf(r))) out.set(`${cluster}/${role}`, o);
    }
    return out;
  }

  phases(name: string, namespace = NS): Record<string, string> {
    return Object.fromEntries(
      [...this.clustersOf(name, namespace)].map(([c, e]) => [c, `${e.phase}/${e.reason}`]),
    );
  }

  condition(
    ref: Ref,
    type: string,
  ): { status: string; reason: string; message: string } | undefined {
    const xr = this.cp.get(ref);
    const list =
      isObj(xr?.['status']) && Array.isArray(xr['status']['conditions'])
        ? (xr['status']['conditions'] as Json[])
        : [];
    const c = list.find((x) => x['type'] === type);
    return (
      c && {
        status: typeof c['status'] === 'string' ? c['status'] : '',
        reason: typeof c['reason'] === 'string' ? c['reason'] : '',
        message: typeof c['message'] === 'string' ? c['message'] : '',
      }
    );
  }

  /** Composed Objects of an XR, by composition resource name. */
  composed(ref: Ref): Map<string, KObject> {
    const xr = this.cp.get(ref);
    const out = new Map<string, KObject>();
    if (!xr) return out;
    for (const o of this.cp.list(OBJECT_API_VERSION, 'Object', {
      namespace: xr.metadata.namespace ?? SYSTEM_NS,
    })) {
      if ((o.metadata.ownerReferences ?? []).some((r) => r.uid === xr.metadata.uid)) {
        out.set(
          o.metadata.annotations?.['crossplane.io/composition-resource-name'] ?? o.metadata.name,
          o,
        );
      }
    }
    return out;
  }

  remote(cluster: string, apiVersion: string, kind: string, namespace?: string): KObject[] {
    return this.cluster(cluster).store.list(apiVersion, kind, { namespace });
  }

  // -------------------------------------------------------------------------------------
  // Time.

  async until(
    label: string,
    pred: () => boolean,
    withinMs: number,
    realMs = 180_000,
  ): Promise<void> {
    const out: RunOutcome = await this.clock.run(pred, { virtualMs: withinMs, realMs });
    if (out !== 'done') {
      throw new Error(
        `${label}: not reached within ${Math.round(withinMs / 1000)} s of virtual time (${out}, at ${this.clock.stamp()})\n${this.diagnose()}`,
      );
    }
  }

  /** Let `ms` of virtual time pass; running out of wall time first is a failure, not a pass. */
  async runFor(ms: number, realMs = 240_000): Promise<void> {
    const end = this.clock.now() + ms;
    const out = await this.clock.run(() => false, { virtualMs: ms, realMs });
    if (out === 'real-timeout' || out === 'livelock' || this.clock.now() < end) {
      throw new Error(
        `${Math.round(ms / 1000)} s of virtual time did not pass within ${Math.round(realMs / 1000)} s of wall time (${out}, at ${this.clock.stamp()})\n${this.diagnose()}`,
      );
    }
  }

  diagnose(): string {
    const lines: string[] = [];
    for (const xr of this.cp.list(XR_API_VERSION, 'ModelCache')) {
      lines.push(
        `  ModelCache ${xr.metadata.name}: ${JSON.stringify(this.phases(xr.metadata.name, xr.metadata.namespace))}`,
      );
    }
    for (const xr of this.cp.list(XR_API_VERSION, 'ModelDeployment')) {
      const st = isObj(xr['status']) ? xr['status'] : {};
      lines.push(`  ModelDeployment ${xr.metadata.name}: ${JSON.stringify(st['clusters'] ?? [])}`);
    }
    for (const r of this.cp.list(XR_API_VERSION, 'ModelCacheReplica')) {
      const v = replicaView(r);
      lines.push(
        `  ModelCacheReplica ${r.metadata.name}${r.metadata.deletionTimestamp !== undefined ? ' (deleting)' : ''}: ${v ? `${v.phase}/${v.reason}: ${v.message.slice(0, 200)}` : 'no status'}`,
      );
    }
    for (const kind of XR_KINDS) {
      for (const [k, e] of this.xr[kind].queue.lastError)
        lines.push(`  XR error ${k}: ${e.slice(0, 300)}`);
      for (const o of this.xr[kind].breaker.openings)
        lines.push(
          `  circuit opened for ${o.target} at +${Math.round(o.at / 1000)} s by ${o.triggeredBy}`,
        );
    }
    for (const o of this.cp.list(OBJECT_API_VERSION, 'Object')) {
      const synced = (
        isObj(o['status']) && Array.isArray(o['status']['conditions'])
          ? (o['status']['conditions'] as Json[])
          : []
      ).find((c) => c['type'] === 'Synced');
      if (synced && synced['status'] === 'False')
        lines.push(
          `  Object ${o.metadata.name} (${o.metadata.annotations?.['crossplane.io/composition-resource-name'] ?? ''}): ${String(synced['message']).slice(0, 200)}`,
        );
    }
    // Why fetch pods failed (their termination messages), the first few per cluster.
    for (const [name, c] of this.clusters) {
      const failed = c.store
        .list('v1', 'Pod')
        .filter((p) => str(p, 'status', 'phase') === 'Failed')
        .slice(0, 3);
      for (const p of failed) {
        const cs = (obj(p, 'status') ?? {})['containerStatuses'];
        const first: unknown = Array.isArray(cs) ? cs[0] : undefined;
        const msg = str(first, 'state', 'terminated', 'message') ?? '';
        lines.push(`  pod ${name}/${p.metadata.name} failed: ${msg.slice(0, 300)}`);
      }
    }
    for (const err of this.clock.errors.slice(0, 5))
      lines.push(`  simulator error: ${err.slice(0, 400)}`);
    return lines.join('\n');
  }

  // -------------------------------------------------------------------------------------
  // Invariants.

  /** Register what a cache must hold, to compare staged bytes with the source. */
  expect(cache: string, files: Expected, namespace = NS): void {
    this.expected.set(`${namespace}/${cache}`, files);
  }

  private claimOwner(cluster: string, namespace: string, claim: string): string | undefined {
    for (const xr of this.cp.list(XR_API_VERSION, 'ModelCache', { namespace })) {
      if (str(xr, 'status', 'claimName') === claim) return `${namespace}/${xr.metadata.name}`;
      const v = this.replica(xr.metadata.name, cluster, namespace);
      if (v?.claimName === claim) return `${namespace}/${xr.metadata.name}`;
    }
    return undefined;
  }

  private verifyOnce(
    who: string,
    cluster: string,
    namespace: string,
    claim: string,
    identity: string,
    expected: Expected | undefined,
  ): void {
    const key = `${cluster}/${namespace}/${claim}/${identity}`;
    if (this.verified.has(key)) return;
    this.verified.add(key);
    const dir = this.clusters.get(cluster)?.volumeOf(namespace, claim);
    const report = verifyVolume(dir, identity, expected);
    if (!report.ok) {
      this.violations.push({
        kind: 'ready-without-bytes',
        message: `${who} Ready on ${cluster} at ${this.clock.stamp()} but: ${report.problems.slice(0, 4).join('; ')}`,
        bytesLost: report.bytesLost,
      });
    }
  }

  /**
   * Whenever a cache says Ready on a cluster, the claim its consumers mount (the status'
   * claimName and namespace) must hold the bytes of the identity the replica staged.
   */
  private checkReady(xr: KObject): void {
    const ns = xr.metadata.namespace ?? NS;
    const replicas = this.replicas(xr.metadata.name, ns);
    for (const e of this.clustersOf(xr.metadata.name, ns).values()) {
      if (e.phase === 'Ready') this.noteReady(`${ns}/${xr.metadata.name}/${e.name}`, 'cache');
      if (e.phase !== 'Ready' || e.reason !== 'Staged') continue;
      const r = replicas.get(e.name);
      if (!r || r.phase !== 'Ready') {
        this.violations.push({
          kind: 'ready-without-bytes',
          message: `${xr.metadata.name} Ready on ${e.name} at ${this.clock.stamp()} but its replica reports ${r ? `${r.phase}/${r.reason}` : 'nothing'}`,
          bytesLost: 0,
        });
        continue;
      }
      this.verifyOnce(
        xr.metadata.name,
        e.name,
        str(xr, 'status', 'namespace') ?? r.namespace,
        str(xr, 'status', 'claimName') ?? r.claimName,
        r.identity,
        this.expected.get(`${ns}/${xr.metadata.name}`),
      );
    }
  }

  /** Each replica's (phase/reason) sequence, by `<namespace>/<cache>` then cluster. */
  private readonly history = new Map<string, Map<string, string[]>>();

  /** When each replica, and its cache's entry, first said Ready: `<ns>/<cache>/<cluster>`. */
  private readonly firstReady = new Map<string, { replica?: number; cache?: number }>();

  private noteReady(key: string, who: 'replica' | 'cache'): void {
    const e = this.firstReady.get(key) ?? {};
    e[who] ??= this.clock.now();
    this.firstReady.set(key, e);
  }

  /**
   * Virtual ms between a replica first saying Ready and its cache first saying so for that
   * cluster (how long the aggregate lags), by cluster; clusters not Ready on both are left out.
   */
  readyLag(name: string, namespace = NS): Record<string, number> {
    const prefix = `${namespace}/${name}/`;
    const out: Record<string, number> = {};
    for (const [k, e] of this.firstReady) {
      if (!k.startsWith(prefix) || e.replica === undefined || e.cache === undefined) continue;
      out[k.slice(prefix.length)] = e.cache - e.replica;
    }
    return out;
  }

  private recordTransition(r: KObject): void {
    const v = replicaView(r);
    if (!v) return;
    const cache = `${r.metadata.namespace ?? NS}/${str(r, 'spec', 'cacheRef', 'name') ?? ''}`;
    if (v.phase === 'Ready') this.noteReady(`${cache}/${v.cluster}`, 'replica');
    let byCluster = this.history.get(cache);
    if (!byCluster) this.history.set(cache, (byCluster = new Map<string, string[]>()));
    const seq = byCluster.get(v.cluster) ?? [];
    const now = `${v.phase}/${v.reason}`;
    if (seq[seq.length - 1] !== now) seq.push(now);
    byCluster.set(v.cluster, seq);
  }

  /**
   * The (phase/reason) sequence each of a cache's replicas went through, by cluster: what
   * the e2e harness records on the real stack, to compare the two (issue 11 item 5).
   */
  transitions(name: string, namespace = NS): Record<string, string[]> {
    return Object.fromEntries(this.history.get(`${namespace}/${name}`) ?? []);
  }

  /** Whenever a replica says Ready/Staged, its claim must hold its identity's bytes. */
  private checkReplicaReady(r: KObject): void {
    const v = replicaView(r);
    if (v?.phase !== 'Ready' || v.reason !== 'Staged') return;
    const ns = r.metadata.namespace ?? NS;
    const cache = str(r, 'spec', 'cacheRef', 'name') ?? '';
    this.verifyOnce(
      `ModelCacheReplica ${r.metadata.name}`,
      v.cluster,
      v.namespace,
      v.claimName,
      v.identity,
      this.expected.get(`${ns}/${cache}`),
    );
  }

  private checkConsumer(m: ConsumerMount): void {
    const owner = this.claimOwner(m.cluster, m.namespace, m.claim);
    const report = verifyVolume(
      m.dir,
      undefined,
      owner === undefined ? undefined : this.expected.get(owner),
    );
    this.consumerChecks.push({ ...m, report });
    if (!report.ok) {
      this.violations.push({
        kind: 'consumer-without-bytes',
        message: `pod ${m.pod} on ${m.cluster} started with claim ${m.claim} at ${m.mountPath}: ${report.problems.slice(0, 4).join('; ')}`,
        bytesLost: report.bytesLost,
      });
    }
  }

  private checkSecrets(rsp: unknown): void {
    const text = JSON.stringify(rsp);
    for (const s of this.secrets) {
      if (text.includes(s)) {
        this.violations.push({
          kind: 'secret-in-function-output',
          message: `a Secret value (${s.slice(0, 3)}…) appears in a RunFunctionResponse`,
          bytesLost: 0,
        });
      }
    }
  }

  /**
   * Verify every cluster where the cache says Ready now; returns the bytes lost. Used at
   * the end of a scenario (the Ready transitions were checked as they happened).
   */
  verifyCache(
    name: string,
    namespace = NS,
  ): { lost: number; verified: number; problems: string[] } {
    let lost = 0;
    let verified = 0;
    const problems: string[] = [];
    const xr = this.cp.get(this.cacheRef(name, namespace));
    const replicas = this.replicas(name, namespace);
    for (const e of this.clustersOf(name, namespace).values()) {
      if (e.phase !== 'Ready' || e.reason !== 'Staged') continue;
      const r = replicas.get(e.name);
      if (!r) {
        problems.push(`${e.name}: Ready without a replica reporting`);
        continue;
      }
      const dir = this.clusters
        .get(e.name)
        ?.volumeOf(
          str(xr, 'status', 'namespace') ?? r.namespace,
          str(xr, 'status', 'claimName') ?? r.claimName,
        );
      const v = verifyVolume(dir, r.identity, this.expected.get(`${namespace}/${name}`));
      lost += v.bytesLost;
      verified += v.bytesVerified;
      for (const p of v.problems) problems.push(`${e.name}: ${p}`);
    }
    return { lost, verified, problems };
  }

  /** Remote objects of one kind on every cluster, by cluster. */
  count(apiVersion: string, kind: string): Record<string, number> {
    return Object.fromEntries(
      [...this.clusters].map(([n, c]) => [n, c.store.list(apiVersion, kind).length]),
    );
  }

  async close(): Promise<void> {
    this.runner.close();
    for (const c of this.clusters.values()) await c.close();
    if (this.opts.keepWorkDir !== true) rmSync(this.workDir, { recursive: true, force: true });
  }

  key(r: Ref): string {
    return keyOf(r);
  }

  /** The YAML of an example file's documents (examples/...). */
  static docs(relative: string): Json[] {
    const text = readFileSync(join(ROOT, relative), 'utf8');
    return text
      .split(/^---\s*$/m)
      .map((d) => parseYaml(d) as unknown)
      .filter((d): d is Json => isObj(d));
  }
}

/** A replica's status as the simulator reads it (undefined until it has reported). */
export function replicaView(r: KObject): ReplicaView | undefined {
  const st = obj(r, 'status');
  const phase = str(st, 'phase');
  if (st === undefined || phase === undefined) return undefined;
  const progress = obj(st, 'progress');
  const revision = str(st, 'resolvedRevision');
  return {
    replica: r.metadata.name,
    cluster: str(r, 'spec', 'cluster') ?? '',
    phase,
    reason: str(st, 'reason') ?? '',
    message: str(st, 'message') ?? '',
    namespace: str(st, 'namespace') ?? '',
    claimName: str(st, 'claimName') ?? '',
    identity: str(st, 'identity') ?? '',
    ...(progress !== undefined
      ? {
          progress: {
            bytesDone: Number(progress['bytesDone'] ?? 0),
            bytesTotal: Number(progress['bytesTotal'] ?? 0),
          },
        }
      : {}),
    ...(revision !== undefined ? { resolvedRevision: revision } : {}),
  };
}
