// provider-kubernetes' namespaced Object controller (kubernetes.m.crossplane.io/v1alpha1),
// as of crossplane-contrib/provider-kubernetes v1.2.1, run by crossplane-runtime's managed
// reconciler:
//   provider-kubernetes internal/controller/namespaced/object/object.go  (Connect, Observe,
//     Create, Update, Delete, resolveReferencies, readiness policies, finalizers)
//   provider-kubernetes internal/controller/namespaced/object/syncer.go  (PatchingResourceSyncer:
//     last-applied annotation, apply as a merge patch)
//   crossplane-runtime pkg/reconciler/managed/reconciler.go  (order of steps, conditions,
//     requeues, "external resource does not exist" for Observe-only)
//   crossplane-runtime pkg/reconciler/managed/policies.go    (supported management policies)
import { parse as parseYaml } from 'yaml';

import { MINUTE, SECOND, type VirtualClock } from '../core/clock.js';
import { celReadiness } from '../core/cel.js';
import type { EventLog } from '../core/events.js';
import { getValue, setValue } from '../core/fieldpath.js';
import {
  at,
  clone,
  conditions,
  deepEqual,
  isObj,
  setCondition,
  str,
  type Condition,
  type Json,
} from '../core/json.js';
import { Controller, type Result } from '../core/queue.js';
import {
  ApiError,
  isApiError,
  keyOf,
  refOf,
  type KObject,
  type Ref,
  type Store,
} from '../core/store.js';

export const OBJECT_API_VERSION = 'kubernetes.m.crossplane.io/v1alpha1';
const OBJECT_FINALIZER = 'finalizer.managedresource.crossplane.io';
const REF_FINALIZER_PREFIX = 'kubernetes.crossplane.io/referred-by-object-';
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
const MANAGER = 'provider-kubernetes';

/** The slice of a workload cluster's API the provider uses (its kube client for that cluster). */
export interface RemoteClient {
  get(ref: Ref): KObject | undefined;
  create(obj: KObject): KObject;
  mergePatch(ref: Ref, patch: Json): KObject;
  delete(ref: Ref): void;
}

/** Resolve a kubeconfig's server URL to a client (the simulated network). */
export type Dialer = (server: string) => RemoteClient;

export interface ProviderOptions {
  /** --poll (default 10m): how often a Ready Object is re-observed. */
  pollMs: number;
  /** The poll interval hook: an Object that is not Ready is re-observed every 30 s. */
  unreadyPollMs: number;
  /** --sanitize-secrets: redact Secret data in status.atProvider.manifest. */
  sanitizeSecrets: boolean;
}

export const DEFAULT_PROVIDER_OPTIONS: ProviderOptions = {
  pollMs: 10 * MINUTE,
  unreadyPollMs: 30 * SECOND,
  sanitizeSecrets: false,
};

type Action = 'Observe' | 'Create' | 'Update' | 'Delete' | 'LateInitialize' | '*';
const SUPPORTED: Action[][] = [
  ['*'],
  ['Observe', 'Create', 'Update', 'LateInitialize', 'Delete'],
  ['Observe'],
  ['Observe', 'Create', 'Update', 'Delete'],
  ['Observe', 'Create', 'Update', 'LateInitialize'],
  ['Observe', 'Create', 'Update'],
  ['Observe', 'Create', 'Delete', 'LateInitialize'],
  ['Observe', 'Create', 'LateInitialize'],
  ['Observe', 'Create', 'Delete'],
  ['Observe', 'Create'],
  ['Observe', 'Delete'],
  ['Observe', 'Update'],
  ['Observe', 'Update', 'Delete'],
  ['Observe', 'LateInitialize'],
  ['Observe', 'Update', 'LateInitialize'],
];

class Policy {
  private readonly set: Set<string>;
  constructor(list: unknown) {
    this.set = new Set(Array.isArray(list) ? list.map(String) : ['*']);
  }
  validate(): string | undefined {
    const ok = SUPPORTED.some((p) => p.length === this.set.size && p.every((a) => this.set.has(a)));
    return ok
      ? undefined
      : `\`spec.managementPolicies\` is set to a value(${JSON.stringify([...this.set])}) which is not supported. Check docs for supported policies`;
  }
  has(a: Action): boolean {
    return this.set.has(a) || this.set.has('*');
  }
  get onlyObserve(): boolean {
    return this.set.size === 1 && this.set.has('Observe');
  }
}

class ReconcileError extends Error {}

export class ObjectController {
  readonly queue: Controller;
  /** Remote writes per cluster and kind: creates, updates, deletes (for assertions). */
  readonly writes: {
    op: 'create' | 'update' | 'delete';
    server: string;
    kind: string;
    name: string;
  }[] = [];

  constructor(
    private readonly clock: VirtualClock,
    private readonly store: Store,
    private readonly dial: Dialer,
    private readonly events: EventLog,
    private readonly opts: ProviderOptions = DEFAULT_PROVIDER_OPTIONS,
  ) {
    this.queue = new Controller(clock, 'provider-kubernetes', (k) => this.reconcile(k));
    // The managed reconciler watches its kind for changes to what it should do (spec,
    // metadata, deletion): not for its own status writes.
    store.watch((ev) => {
      if (ev.obj.kind !== 'Object' || ev.obj.apiVersion !== OBJECT_API_VERSION) return;
      const key = keyOf(refOf(ev.obj));
      if (ev.type !== 'MODIFIED') {
        this.queue.enqueue(key);
        return;
      }
      const desired = (o: KObject): Json =>
        Object.fromEntries(
          Object.entries({ ...o, metadata: { ...o.metadata, resourceVersion: '' } }).filter(
            ([k]) => k !== 'status',
          ),
        );
      if (!deepEqual(desired(ev.obj), desired(ev.old ?? ev.obj))) {
        this.queue.enqueue(key);
      }
    });
  }

  private ref(key: string): Ref {
    const [, , namespace, name] = key.split('/');
    return { apiVersion: OBJECT_API_VERSION, kind: 'Object', name: name ?? '', namespace };
  }

  private record(o: KObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.events.record(
      'control-plane',
      `Object/${o.metadata.namespace ?? ''}/${o.metadata.name}`,
      type,
      reason,
      message,
    );
  }

  private setStatus(o: KObject, conds: Condition[], extra?: Json): void {
    const latest = this.store.get(refOf(o));
    if (!latest) return;
    let list = conditions(latest, 'status', 'conditions');
    for (const c of conds) list = setCondition(list, c, this.clock.iso());
    const status = {
      ...(isObj(latest['status']) ? latest['status'] : {}),
      ...(extra ?? {}),
      conditions: list,
    };
    latest['status'] = status;
    this.store.updateStatus(latest, MANAGER);
  }

  /** resolveProviderConfig + KubeForProviderConfig: the kubeconfig's server, dialled. */
  private connect(o: KObject): { client: RemoteClient; server: string } {
    const pcRef = isObj(at(o, 'spec', 'providerConfigRef'))
      ? (at(o, 'spec', 'providerConfigRef') as Json)
      : {};
    const kind = typeof pcRef['kind'] === 'string' ? pcRef['kind'] : 'ClusterProviderConfig';
    const name = typeof pcRef['name'] === 'string' ? pcRef['name'] : 'default';
    if (kind !== 'ClusterProviderConfig' && kind !== 'ProviderConfig') {
      throw new ReconcileError(`unknown provider config kind: "${kind}"`);
    }
    const pc = this.store.get({
      apiVersion: OBJECT_API_VERSION,
      kind,
      name,
      ...(kind === 'ProviderConfig' ? { namespace: o.metadata.namespace } : {}),
    });
    if (!pc) {
      throw new ReconcileError(
        `cannot get provider config: ${kind === 'ProviderConfig' ? 'providerconfigs' : 'clusterproviderconfigs'}.kubernetes.m.crossplane.io "${name}" not found`,
      );
    }
    const secretRef = at(pc, 'spec', 'credentials', 'secretRef');
    if (str(pc, 'spec', 'credentials', 'source') !== 'Secret' || !isObj(secretRef)) {
      throw new ReconcileError(
        'cannot build kube client for provider config: only credentials.source Secret is simulated',
      );
    }
    const secret = this.store.get({
      apiVersion: 'v1',
      kind: 'Secret',
      name: String(secretRef['name']),
      namespace: String(secretRef['namespace']),
    });
    const raw = str(secret, 'data', String(secretRef['key']));
    if (secret === undefined || raw === undefined) {
      throw new ReconcileError(
        `cannot build kube client for provider config: cannot get credentials secret ${String(secretRef['namespace'])}/${String(secretRef['name'])}`,
      );
    }
    const kubeconfig = parseYaml(Buffer.from(raw, 'base64').toString('utf8')) as unknown;
    const clusters = at(kubeconfig, 'clusters');
    const server = Array.isArray(clusters) ? str(clusters[0], 'cluster', 'server') : undefined;
    if (server === undefined)
      throw new ReconcileError(
        'cannot build kube client for provider config: no server in kubeconfig',
      );
    return { client: this.dial(server), server };
  }

  /** resolveReferencies: read every referenced object on the control plane; patch values in. */
  private resolveReferences(o: KObject, manifest: Json): void {
    const refs = at(o, 'spec', 'references');
    if (!Array.isArray(refs)) return;
    for (const r of refs) {
      if (!isObj(r)) continue;
      const p = isObj(r['patchesFrom'])
        ? r['patchesFrom']
        : isObj(r['dependsOn'])
          ? r['dependsOn']
          : undefined;
      if (!p) continue;
      const ref: Ref = {
        apiVersion: typeof p['apiVersion'] === 'string' ? p['apiVersion'] : OBJECT_API_VERSION,
        kind: typeof p['kind'] === 'string' ? p['kind'] : 'Object',
        name: String(p['name']),
        namespace: typeof p['namespace'] === 'string' ? p['namespace'] : undefined,
      };
      const got = this.store.get(ref);
      if (!got) {
        throw new ReconcileError(
          `cannot resolve resource references: cannot get referenced resource: ${ref.kind === 'Secret' ? 'secrets' : ref.kind === 'ConfigMap' ? 'configmaps' : ref.kind.toLowerCase() + 's'} "${ref.name}" not found`,
        );
      }
      if (isObj(r['patchesFrom']) && typeof p['fieldPath'] === 'string') {
        let value: unknown;
        try {
          value = getValue(got, p['fieldPath']);
        } catch (err) {
          throw new ReconcileError(
            `cannot resolve resource references: cannot patch from referenced resource: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
        const to = typeof r['toFieldPath'] === 'string' ? r['toFieldPath'] : p['fieldPath'];
        setValue(manifest, to, value);
      }
    }
  }

  /** Referenced objects carry a finalizer naming the Object (objFinalizer.AddFinalizer). */
  private refFinalizers(o: KObject, add: boolean): void {
    const refs = at(o, 'spec', 'references');
    if (!Array.isArray(refs)) return;
    const fin = `${REF_FINALIZER_PREFIX}${o.metadata.uid}`;
    for (const r of refs) {
      const p = isObj(r)
        ? isObj(r['patchesFrom'])
          ? r['patchesFrom']
          : isObj(r['dependsOn'])
            ? r['dependsOn']
            : undefined
        : undefined;
      if (!p) continue;
      const got = this.store.get({
        apiVersion: typeof p['apiVersion'] === 'string' ? p['apiVersion'] : OBJECT_API_VERSION,
        kind: typeof p['kind'] === 'string' ? p['kind'] : 'Object',
        name: String(p['name']),
        namespace: typeof p['namespace'] === 'string' ? p['namespace'] : undefined,
      });
      if (!got) continue;
      const fins = got.metadata.finalizers ?? [];
      if (add === fins.includes(fin)) continue;
      got.metadata.finalizers = add ? [...fins, fin] : fins.filter((f) => f !== fin);
      this.store.update(got, MANAGER);
    }
  }

  private readiness(o: KObject, observed: Json): Condition | undefined {
    const policy = str(o, 'spec', 'readiness', 'policy') ?? 'SuccessfulCreate';
    const available: Condition = { type: 'Ready', status: 'True', reason: 'Available' };
    const unavailable = (message?: string): Condition => ({
      type: 'Ready',
      status: 'False',
      reason: 'Unavailable',
      ...(message !== undefined ? { message } : {}),
    });
    switch (policy) {
      case 'DeriveFromObject':
        return conditions(observed, 'status', 'conditions').some(
          (c) => c.type === 'Ready' && c.status === 'True',
        )
          ? available
          : unavailable();
      case 'AllTrue': {
        const cs = conditions(observed, 'status', 'conditions');
        return cs.length > 0 && cs.every((c) => c.status === 'True') ? available : unavailable();
      }
      case 'DeriveFromCelQuery': {
        const v = celReadiness(str(o, 'spec', 'readiness', 'celQuery') ?? '', observed);
        return 'error' in v ? unavailable(v.error) : v.ready ? available : unavailable();
      }
      default:
        return undefined; // SuccessfulCreate: decided when the object is up to date.
    }
  }

  private atProvider(observed: KObject): Json {
    const copy = clone(observed) as unknown as Json;
    if (this.opts.sanitizeSecrets && observed.kind === 'Secret' && observed.apiVersion === 'v1') {
      copy['data'] = { redacted: null };
    }
    return { manifest: copy };
  }

  /** The poll interval hook: unready Objects every 30 s, ready ones every --poll. */
  private pollAfter(key: string): number {
    const o = this.store.get(this.ref(key));
    const ready = conditions(o, 'status', 'conditions').find((c) => c.type === 'Ready');
    return ready?.status === 'True' ? this.opts.pollMs : this.opts.unreadyPollMs;
  }

  async reconcile(key: string): Promise<Result> {
    await Promise.resolve();
    const o = this.store.get(this.ref(key));
    if (!o) return {};
    const policy = new Policy(at(o, 'spec', 'managementPolicies'));
    const invalid = policy.validate();
    if (invalid !== undefined) {
      this.record(o, 'Warning', 'CannotUseInvalidManagementPolicy', invalid);
      this.setStatus(o, [
        { type: 'Synced', status: 'False', reason: 'ReconcileError', message: invalid },
      ]);
      return {};
    }
    const deleting = o.metadata.deletionTimestamp !== undefined;
    const removeFinalizers = (): void => {
      this.refFinalizers(o, false);
      const latest = this.store.get(refOf(o));
      if (!latest) return;
      latest.metadata.finalizers = (latest.metadata.finalizers ?? []).filter(
        (f) => f !== OBJECT_FINALIZER,
      );
      this.store.update(latest, MANAGER);
    };
    // Deleted and not allowed to delete: orphan the remote object (no Observe needed).
    if (deleting && !policy.has('Delete')) {
      removeFinalizers();
      return {};
    }
    let client: RemoteClient;
    let server: string;
    try {
      ({ client, server } = this.connect(o));
    } catch (err) {
      const msg = `connect failed: ${err instanceof Error ? err.message : String(err)}`;
      this.record(o, 'Warning', 'CannotConnectToProvider', msg);
      this.setStatus(o, [
        { type: 'Synced', status: 'False', reason: 'ReconcileError', message: msg },
      ]);
      return { requeue: true };
    }
    const spec = isObj(o['spec']) ? o['spec'] : {};
    const manifest = clone(
      isObj(at(spec, 'forProvider', 'manifest'))
        ? (at(spec, 'forProvider', 'manifest') as Json)
        : {},
    );
    const fail = (
      prefix: string,
      reason: string,
      err: unknown,
      extra: Condition[] = [],
    ): Result => {
      const msg = `${prefix}: ${err instanceof Error ? err.message : String(err)}`;
      this.record(o, 'Warning', reason, msg);
      this.setStatus(o, [
        ...extra,
        { type: 'Synced', status: 'False', reason: 'ReconcileError', message: msg },
      ]);
      return { requeue: true };
    };

    // Observe.
    let current: KObject | undefined;
    try {
      if (!deleting) this.resolveReferences(o, manifest);
      const meta = isObj(manifest['metadata']) ? manifest['metadata'] : {};
      if (typeof meta['name'] !== 'string' || meta['name'] === '') meta['name'] = o.metadata.name;
      manifest['metadata'] = meta;
      current = client.get(refOf(manifest as unknown as KObject));
    } catch (err) {
      return fail(
        'observe failed',
        'CannotObserveExternalResource',
        err instanceof ApiError ? new Error(`cannot get object: ${err.message}`) : err,
      );
    }
    const observedConds: Condition[] = [];
    let extra: Json | undefined;
    let upToDate = false;
    if (current) {
      extra = { atProvider: this.atProvider(current) };
      const r = this.readiness(o, current);
      if (r) observedConds.push(r);
      // Not allowed to create or update: treated as up to date.
      if (!policy.has('Create') && !policy.has('Update')) upToDate = true;
      const last = current.metadata.annotations?.[LAST_APPLIED];
      if (last !== undefined) {
        const lastObj = JSON.parse(last) as Json;
        const lastMeta = isObj(lastObj['metadata']) ? lastObj['metadata'] : {};
        if (typeof lastMeta['name'] !== 'string') lastMeta['name'] = o.metadata.name;
        lastObj['metadata'] = lastMeta;
        if (deepEqual(lastObj, manifest)) upToDate = true;
      }
      const policyName = str(o, 'spec', 'readiness', 'policy') ?? 'SuccessfulCreate';
      if (upToDate && policyName === 'SuccessfulCreate') {
        observedConds.push({ type: 'Ready', status: 'True', reason: 'Available' });
      }
    }

    if (!current && policy.onlyObserve) {
      const msg = 'observe failed: external resource does not exist';
      this.record(
        o,
        'Warning',
        'CannotObserveExternalResource',
        'external resource does not exist',
      );
      this.setStatus(o, [
        { type: 'Synced', status: 'False', reason: 'ReconcileError', message: msg },
      ]);
      return { requeueAfter: this.pollAfter(key) };
    }

    if (deleting) {
      if (current && policy.has('Delete')) {
        try {
          client.delete(refOf(current));
          this.writes.push({
            op: 'delete',
            server,
            kind: current.kind,
            name: current.metadata.name,
          });
        } catch (err) {
          if (!isApiError(err, 'NotFound')) {
            return fail(
              'delete failed',
              'CannotDeleteExternalResource',
              new Error(
                `cannot delete object: ${err instanceof Error ? err.message : String(err)}`,
              ),
              [{ type: 'Ready', status: 'False', reason: 'Deleting' }],
            );
          }
        }
        this.record(
          o,
          'Normal',
          'DeletedExternalResource',
          'Successfully requested deletion of external resource',
        );
        this.setStatus(o, [
          { type: 'Ready', status: 'False', reason: 'Deleting' },
          { type: 'Synced', status: 'True', reason: 'ReconcileSuccess' },
        ]);
        return { requeue: true };
      }
      removeFinalizers();
      return {};
    }

    // AddFinalizer: on the Object and on every object it references.
    if (!(o.metadata.finalizers ?? []).includes(OBJECT_FINALIZER)) {
      const latest = this.store.mustGet(refOf(o));
      latest.metadata.finalizers = [...(latest.metadata.finalizers ?? []), OBJECT_FINALIZER];
      this.store.update(latest, MANAGER);
    }
    this.refFinalizers(o, true);

    if (!current && policy.has('Create')) {
      // Before Create the managed resource is updated (external-create-pending): the
      // manifest with the values patched in from references is persisted in the Object's
      // spec (managed reconciler: r.client.Update after SetExternalCreatePending).
      const latest = this.store.mustGet(refOf(o));
      setValue(latest, 'spec.forProvider.manifest', manifest);
      latest.metadata.annotations = {
        ...(latest.metadata.annotations ?? {}),
        'crossplane.io/external-create-pending': this.clock.iso(),
      };
      this.store.update(latest, MANAGER);
      try {
        const created = this.syncResource(client, manifest);
        this.writes.push({ op: 'create', server, kind: created.kind, name: created.metadata.name });
        const again = this.store.mustGet(refOf(o));
        again.metadata.annotations = {
          ...(again.metadata.annotations ?? {}),
          'crossplane.io/external-create-succeeded': this.clock.iso(),
        };
        this.store.update(again, MANAGER);
        const r = this.readiness(o, created);
        this.record(
          o,
          'Normal',
          'CreatedExternalResource',
          'Successfully requested creation of external resource',
        );
        this.setStatus(
          o,
          [
            ...(r ? [r] : []),
            { type: 'Ready', status: 'False', reason: 'Creating' },
            { type: 'Synced', status: 'True', reason: 'ReconcileSuccess' },
          ],
          { atProvider: this.atProvider(created) },
        );
        return { requeue: true };
      } catch (err) {
        return fail(
          'create failed',
          'CannotCreateExternalResource',
          new Error(`cannot create object: ${err instanceof Error ? err.message : String(err)}`),
          [{ type: 'Ready', status: 'False', reason: 'Creating' }],
        );
      }
    }

    if (upToDate || !policy.has('Update')) {
      this.setStatus(
        o,
        [...observedConds, { type: 'Synced', status: 'True', reason: 'ReconcileSuccess' }],
        extra,
      );
      return { requeueAfter: this.pollAfter(key) };
    }

    try {
      const updated = this.syncResource(client, manifest);
      this.writes.push({ op: 'update', server, kind: updated.kind, name: updated.metadata.name });
      const r = this.readiness(o, updated);
      this.record(
        o,
        'Normal',
        'UpdatedExternalResource',
        'Successfully requested update of external resource',
      );
      this.setStatus(
        o,
        [...(r ? [r] : []), { type: 'Synced', status: 'True', reason: 'ReconcileSuccess' }],
        {
          atProvider: this.atProvider(updated),
        },
      );
      return { requeueAfter: this.pollAfter(key) };
    } catch (err) {
      return fail(
        'update failed',
        'CannotUpdateExternalResource',
        new Error(`cannot apply object: ${err instanceof Error ? err.message : String(err)}`),
      );
    }
  }

  /** PatchingResourceSyncer.SyncResource: last-applied annotation, then APIPatchingApplicator.Apply. */
  private syncResource(client: RemoteClient, manifest: Json): KObject {
    const desired = clone(manifest);
    const meta = isObj(desired['metadata']) ? desired['metadata'] : {};
    const annotations = isObj(meta['annotations'])
      ? (meta['annotations'] as Record<string, string>)
      : {};
    annotations[LAST_APPLIED] = JSON.stringify(manifest);
    meta['annotations'] = annotations;
    desired['metadata'] = meta;
    const ref = refOf(desired as unknown as KObject);
    if (!client.get(ref)) return client.create(desired as unknown as KObject);
    return client.mergePatch(ref, desired);
  }
}
