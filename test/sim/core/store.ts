// An API server's object store, one per simulated cluster (the control plane and each
// workload cluster): uid, resourceVersion, generation, finalizers and deletionTimestamp,
// namespace existence, no-op writes that do not bump resourceVersion (and raise no watch
// event), owner references with the garbage collector's background, foreground and orphan
// propagation, admission hooks, and server-side-apply field ownership (ssa.ts).
import { randomUUID } from 'node:crypto';

import type { VirtualClock } from './clock.js';
import { clone, deepEqual, isObj, type Json } from './json.js';
import { applyConfig, recordUpdate, type FieldSets } from './ssa.js';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface Meta {
  name: string;
  namespace?: string;
  generateName?: string;
  uid: string;
  resourceVersion: string;
  generation: number;
  creationTimestamp: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  [key: string]: unknown;
}

/** What callers pass to create: a manifest whose metadata the server completes. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: Partial<Meta> & { name?: string };
  [key: string]: unknown;
}

export type ApiErrorCode =
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Forbidden'
  | 'Invalid'
  | 'Unavailable'
  | 'Unauthorized';

export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function isApiError(err: unknown, code?: ApiErrorCode): err is ApiError {
  return err instanceof ApiError && (code === undefined || err.code === code);
}

export interface Ref {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string | undefined;
}

export type WatchEvent = {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  obj: KObject;
  old: KObject | undefined;
};

export type Propagation = 'Background' | 'Foreground' | 'Orphan';

/** metav1.FinalizerDeleteDependents: set by the API server on a foreground deletion. */
export const FOREGROUND_FINALIZER = 'foregroundDeletion';
/** metav1.FinalizerOrphanDependents. */
export const ORPHAN_FINALIZER = 'orphan';

export type AdmissionOp = 'CREATE' | 'UPDATE' | 'DELETE';
/** Throws an ApiError to reject; may mutate `obj` on CREATE/UPDATE (defaulting). */
export type Admission = (op: AdmissionOp, obj: KObject, old: KObject | undefined) => void;

/** Cluster-scoped kinds; everything else is namespaced. */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'StorageClass',
  'PersistentVolume',
  'InferenceCluster',
  'ClusterProviderConfig',
  'ClusterUsage',
  'CustomResourceDefinition',
]);

export function isNamespaced(kind: string): boolean {
  return !CLUSTER_SCOPED.has(kind);
}

export function groupOf(apiVersion: string): string {
  const i = apiVersion.indexOf('/');
  return i < 0 ? '' : apiVersion.slice(0, i);
}

/** Resource name as the API server spells it in messages: `secrets "x" not found`. */
export function resourceName(kind: string, apiVersion: string): string {
  const plural = kind.toLowerCase().endsWith('s')
    ? `${kind.toLowerCase()}es`
    : kind.toLowerCase().endsWith('y')
      ? `${kind.toLowerCase().slice(0, -1)}ies`
      : `${kind.toLowerCase()}s`;
  const g = groupOf(apiVersion);
  return g === '' ? plural : `${plural}.${g}`;
}

export function keyOf(r: Ref): string {
  return `${groupOf(r.apiVersion)}/${r.kind}/${isNamespaced(r.kind) ? (r.namespace ?? '') : ''}/${r.name}`;
}

export function refOf(o: {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string };
}): Ref {
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    name: o.metadata.name ?? '',
    ...(o.metadata.namespace !== undefined ? { namespace: o.metadata.namespace } : {}),
  };
}

/** Deterministic pseudo-random suffixes for generateName (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export class Store {
  private readonly objects = new Map<string, KObject>();
  private readonly fields = new Map<string, FieldSets>();
  private readonly watchers: ((ev: WatchEvent) => void)[] = [];
  private readonly admissions: Admission[] = [];
  private rv = 0;
  private readonly random: () => number;
  /** Count of writes that changed something, for the summary. */
  writes = 0;
  /** The last writes (a ring), to explain a livelock. */
  readonly recent: string[] = [];

  constructor(
    readonly name: string,
    private readonly clock: VirtualClock,
    seed = 1,
  ) {
    this.random = rng(seed);
  }

  watch(fn: (ev: WatchEvent) => void): void {
    this.watchers.push(fn);
  }

  admit(fn: Admission): void {
    this.admissions.push(fn);
  }

  private emit(ev: WatchEvent): void {
    this.recent.push(
      `${ev.type} ${ev.obj.kind}/${ev.obj.metadata.name} rv=${ev.obj.metadata.resourceVersion}`,
    );
    if (this.recent.length > 12) this.recent.shift();
    for (const w of this.watchers) w({ ...ev, obj: clone(ev.obj), old: ev.old && clone(ev.old) });
  }

  private notFound(r: Ref): ApiError {
    return new ApiError('NotFound', `${resourceName(r.kind, r.apiVersion)} "${r.name}" not found`);
  }

  get(r: Ref): KObject | undefined {
    const o = this.objects.get(keyOf(r));
    return o && clone(o);
  }

  mustGet(r: Ref): KObject {
    const o = this.get(r);
    if (!o) throw this.notFound(r);
    return o;
  }

  list(
    apiVersion: string,
    kind: string,
    opts: { namespace?: string | undefined; labels?: Record<string, string> | undefined } = {},
  ): KObject[] {
    const g = groupOf(apiVersion);
    const out: KObject[] = [];
    for (const o of this.objects.values()) {
      if (o.kind !== kind || groupOf(o.apiVersion) !== g) continue;
      if (
        opts.namespace !== undefined &&
        opts.namespace !== '' &&
        o.metadata.namespace !== opts.namespace
      )
        continue;
      const labels = o.metadata.labels ?? {};
      if (opts.labels && !Object.entries(opts.labels).every(([k, v]) => labels[k] === v)) continue;
      out.push(clone(o));
    }
    // Sorted by namespace and name, as Crossplane's required-resource fetcher returns them.
    return out.sort((a, b) =>
      `${a.metadata.namespace ?? ''}/${a.metadata.name}` <
      `${b.metadata.namespace ?? ''}/${b.metadata.name}`
        ? -1
        : 1,
    );
  }

  all(): KObject[] {
    return [...this.objects.values()].map((o) => clone(o));
  }

  private generatedName(prefix: string): string {
    let s = '';
    for (let i = 0; i < 5; i++)
      s += SUFFIX_ALPHABET[Math.floor(this.random() * SUFFIX_ALPHABET.length)] ?? 'x';
    return `${prefix}${s}`;
  }

  private bump(): string {
    this.rv++;
    this.writes++;
    return String(this.rv);
  }

  private checkNamespace(o: KObject): void {
    if (!isNamespaced(o.kind)) {
      delete o.metadata.namespace;
      return;
    }
    const ns = o.metadata.namespace;
    if (ns === undefined || ns === '')
      throw new ApiError('Invalid', `${o.kind} ${o.metadata.name}: namespace is required`);
    const nsObj = this.objects.get(keyOf({ apiVersion: 'v1', kind: 'Namespace', name: ns }));
    if (!nsObj) throw new ApiError('NotFound', `namespaces "${ns}" not found`);
    if (nsObj.metadata.deletionTimestamp !== undefined) {
      throw new ApiError(
        'Forbidden',
        `${resourceName(o.kind, o.apiVersion)} "${o.metadata.name}" is forbidden: unable to create new content in namespace ${ns} because it is being terminated`,
      );
    }
  }

  create(m: Manifest, manager = 'create'): KObject {
    const meta = m.metadata;
    let name = meta.name ?? '';
    if (name === '' && meta.generateName !== undefined) {
      do name = this.generatedName(meta.generateName);
      while (this.objects.has(keyOf({ ...refOf({ ...m, metadata: { ...meta, name } }) })));
    }
    if (name === '')
      throw new ApiError('Invalid', `${m.kind}: metadata.name or generateName is required`);
    const o = clone(m) as KObject;
    o.metadata = {
      ...clone(meta),
      name,
      uid: randomUUID(),
      resourceVersion: '',
      generation: 1,
      creationTimestamp: this.clock.iso(),
    };
    delete o.metadata.deletionTimestamp;
    this.checkNamespace(o);
    for (const a of this.admissions) a('CREATE', o, undefined);
    const key = keyOf(refOf(o));
    if (this.objects.has(key)) {
      throw new ApiError(
        'AlreadyExists',
        `${resourceName(o.kind, o.apiVersion)} "${name}" already exists`,
      );
    }
    o.metadata.resourceVersion = this.bump();
    this.objects.set(key, o);
    const sets: FieldSets = new Map();
    recordUpdate({}, stripSystem(o), manager, sets);
    this.fields.set(key, sets);
    this.emit({ type: 'ADDED', obj: o, old: undefined });
    return clone(o);
  }

  /**
   * Replace the object's spec and metadata (not status), as PUT does. Removing the last
   * finalizer of an object being deleted removes it.
   */
  update(next: KObject, manager = 'update'): KObject {
    const key = keyOf(refOf(next));
    const cur = this.objects.get(key);
    if (!cur) throw this.notFound(refOf(next));
    const o = clone(next);
    o.metadata = {
      ...clone(next.metadata),
      uid: cur.metadata.uid,
      creationTimestamp: cur.metadata.creationTimestamp,
      generation: cur.metadata.generation,
      resourceVersion: cur.metadata.resourceVersion,
      ...(cur.metadata.deletionTimestamp !== undefined
        ? { deletionTimestamp: cur.metadata.deletionTimestamp }
        : {}),
    };
    if ('status' in cur) o['status'] = clone(cur['status']);
    else delete o['status'];
    return this.commit(key, cur, o, manager);
  }

  /** Replace the status subresource only. */
  updateStatus(next: KObject, manager = 'update-status'): KObject {
    const key = keyOf(refOf(next));
    const cur = this.objects.get(key);
    if (!cur) throw this.notFound(refOf(next));
    const o = clone(cur);
    if (next['status'] === undefined) delete o['status'];
    else o['status'] = clone(next['status']);
    return this.commit(key, cur, o, manager);
  }

  /** Server-side apply of `config` (spec and metadata) with force, as `manager`. Creates if absent. */
  apply(config: Manifest, manager: string): KObject {
    const ref = refOf(config);
    const key = keyOf(ref);
    const cur = this.objects.get(key);
    const scoped = stripSystem(config);
    delete scoped['status'];
    if (!cur) {
      const created = this.create(config, manager);
      const sets: FieldSets = new Map();
      applyConfig({}, scoped, manager, sets);
      this.fields.set(keyOf(refOf(created)), sets);
      return created;
    }
    const sets = this.fields.get(key) ?? new Map<string, Set<string>>();
    const base = stripSystem(cur);
    const status = base['status'];
    delete base['status'];
    const merged = applyConfig(base, scoped, manager, sets);
    const o = {
      ...merged,
      metadata: { ...(merged['metadata'] as Json), ...systemMeta(cur.metadata) },
    } as KObject;
    if (status !== undefined) o['status'] = status;
    this.fields.set(key, sets);
    return this.commit(key, cur, o, undefined);
  }

  /** Server-side apply to the status subresource: `status` is the manager's full intent. */
  applyStatus(ref: Ref, status: Json, manager: string): KObject {
    const key = keyOf(ref);
    const cur = this.objects.get(key);
    if (!cur) throw this.notFound(ref);
    const sets = this.fields.get(key) ?? new Map<string, Set<string>>();
    const statusSets: FieldSets = new Map(
      [...sets].map(([m, s]) => [m, new Set([...s].filter((p) => p.startsWith('status\u0001')))]),
    );
    const merged = applyConfig({ status: cur['status'] ?? {} }, { status }, manager, statusSets);
    for (const [m, s] of statusSets) {
      const rest = [...(sets.get(m) ?? [])].filter((p) => !p.startsWith('status\u0001'));
      sets.set(m, new Set([...rest, ...s]));
    }
    this.fields.set(key, sets);
    const o = clone(cur);
    o['status'] = merged['status'] ?? {};
    return this.commit(key, cur, o, undefined);
  }

  /** JSON merge patch of metadata/spec (and status when `status` is true). */
  mergePatch(ref: Ref, patch: Json, manager = 'patch'): KObject {
    const key = keyOf(ref);
    const cur = this.objects.get(key);
    if (!cur) throw this.notFound(ref);
    const o = mergeJson(cur, patch) as KObject;
    o.metadata = { ...o.metadata, ...systemMeta(cur.metadata) };
    return this.commit(key, cur, o, manager);
  }

  private commit(key: string, cur: KObject, o: KObject, manager: string | undefined): KObject {
    for (const a of this.admissions) a('UPDATE', o, clone(cur));
    if (deepEqual(o, cur)) return clone(cur);
    const specChanged = !deepEqual(withoutMetaStatus(o), withoutMetaStatus(cur));
    if (specChanged) o.metadata.generation = cur.metadata.generation + 1;
    o.metadata.resourceVersion = this.bump();
    if (manager !== undefined) {
      const sets = this.fields.get(key) ?? new Map<string, Set<string>>();
      recordUpdate(stripSystem(cur), stripSystem(o), manager, sets);
      this.fields.set(key, sets);
    }
    if (o.metadata.deletionTimestamp !== undefined && (o.metadata.finalizers ?? []).length === 0) {
      this.remove(key, cur);
      return clone(o);
    }
    this.objects.set(key, o);
    this.emit({ type: 'MODIFIED', obj: o, old: cur });
    return clone(o);
  }

  /**
   * Delete: an object with finalizers gets a deletionTimestamp and stays until they are
   * removed; otherwise it goes now and the garbage collector handles its dependents.
   */
  delete(ref: Ref, propagation?: Propagation, preconditionUid?: string): void {
    const key = keyOf(ref);
    const cur = this.objects.get(key);
    if (!cur) throw this.notFound(ref);
    if (preconditionUid !== undefined && cur.metadata.uid !== preconditionUid) {
      throw new ApiError(
        'Conflict',
        `Precondition failed: UID in precondition: ${preconditionUid}, UID in object meta: ${cur.metadata.uid}`,
      );
    }
    for (const a of this.admissions) a('DELETE', clone(cur), undefined);
    if (cur.metadata.deletionTimestamp !== undefined) return;
    // An explicit policy wins; else the object's own `orphan` or `foregroundDeletion`
    // finalizer; else the type's default: batch/v1 Jobs orphan their pods (kubernetes
    // pkg/registry/batch/job/strategy.go DefaultGarbageCollectionPolicy). The API server
    // then keeps only the garbage-collection finalizer of the policy chosen
    // (apiserver registry/generic/registry/store.go deletionFinalizersForGarbageCollection).
    const fins = cur.metadata.finalizers ?? [];
    const policy: Propagation =
      propagation ??
      (fins.includes(ORPHAN_FINALIZER)
        ? 'Orphan'
        : fins.includes(FOREGROUND_FINALIZER)
          ? 'Foreground'
          : cur.kind === 'Job' && cur.apiVersion === 'batch/v1'
            ? 'Orphan'
            : 'Background');
    const own = fins.filter((f) => f !== FOREGROUND_FINALIZER && f !== ORPHAN_FINALIZER);
    if (policy === 'Orphan') this.orphanDependents(cur.metadata.uid);
    // Foreground: the owner stays, marked, until the garbage collector has removed every
    // dependent that blocks its deletion (dependents are deleted in foreground in turn).
    if (
      policy === 'Foreground' &&
      (fins.includes(FOREGROUND_FINALIZER) ||
        this.dependents(cur.metadata.uid).some((d) => this.blocks(d, cur.metadata.uid)))
    ) {
      const o = clone(cur);
      o.metadata.deletionTimestamp = this.clock.iso();
      o.metadata.finalizers = [...own, FOREGROUND_FINALIZER];
      o.metadata.resourceVersion = this.bump();
      this.objects.set(key, o);
      this.emit({ type: 'MODIFIED', obj: o, old: cur });
      for (const d of this.dependents(cur.metadata.uid)) {
        const refs = d.metadata.ownerReferences ?? [];
        if (refs.some((r) => r.uid !== cur.metadata.uid && this.live(r.uid))) {
          // Another owner keeps it: only the reference to the owner being deleted goes.
          const next = clone(d);
          next.metadata.ownerReferences = refs.filter((r) => r.uid !== cur.metadata.uid);
          this.commit(keyOf(refOf(d)), d, next, 'garbage-collector');
          continue;
        }
        if (d.metadata.deletionTimestamp !== undefined) continue;
        try {
          this.delete(refOf(d), 'Foreground');
        } catch (err) {
          // Refused (a webhook): the owner keeps waiting, as the real collector retries.
          if (!isApiError(err)) throw err;
        }
      }
      this.releaseForeground(cur.metadata.uid);
      return;
    }
    if (own.length > 0) {
      const o = clone(cur);
      o.metadata.deletionTimestamp = this.clock.iso();
      o.metadata.finalizers = own;
      o.metadata.resourceVersion = this.bump();
      this.objects.set(key, o);
      this.emit({ type: 'MODIFIED', obj: o, old: cur });
      return;
    }
    this.remove(key, cur);
  }

  private dependents(uid: string): KObject[] {
    return [...this.objects.values()].filter((o) =>
      (o.metadata.ownerReferences ?? []).some((r) => r.uid === uid),
    );
  }

  private blocks(o: KObject, ownerUid: string): boolean {
    return (o.metadata.ownerReferences ?? []).some(
      (r) => r.uid === ownerUid && r.blockOwnerDeletion === true,
    );
  }

  private live(uid: string): boolean {
    for (const o of this.objects.values()) if (o.metadata.uid === uid) return true;
    return false;
  }

  /** The garbage collector lifts `foregroundDeletion` once no blocking dependent is left. */
  private releaseForeground(uid: string): void {
    const owner = [...this.objects.entries()].find(([, o]) => o.metadata.uid === uid);
    if (!owner) return;
    const [key, cur] = owner;
    if (!(cur.metadata.finalizers ?? []).includes(FOREGROUND_FINALIZER)) return;
    if (this.dependents(uid).some((d) => this.blocks(d, uid))) return;
    const o = clone(cur);
    o.metadata.finalizers = (o.metadata.finalizers ?? []).filter((f) => f !== FOREGROUND_FINALIZER);
    this.commit(key, cur, o, 'garbage-collector');
  }

  private remove(key: string, cur: KObject): void {
    this.objects.delete(key);
    this.fields.delete(key);
    this.bump();
    const gone = clone(cur);
    gone.metadata.deletionTimestamp ??= this.clock.iso();
    this.emit({ type: 'DELETED', obj: gone, old: cur });
    this.collectDependents(cur.metadata.uid);
    for (const r of cur.metadata.ownerReferences ?? []) this.releaseForeground(r.uid);
  }

  private orphanDependents(uid: string): void {
    for (const [key, o] of [...this.objects]) {
      const refs = o.metadata.ownerReferences ?? [];
      if (!refs.some((r) => r.uid === uid)) continue;
      const next = clone(o);
      next.metadata.ownerReferences = refs.filter((r) => r.uid !== uid);
      if (next.metadata.ownerReferences.length === 0) delete next.metadata.ownerReferences;
      next.metadata.resourceVersion = this.bump();
      this.objects.set(key, next);
      this.emit({ type: 'MODIFIED', obj: next, old: o });
    }
  }

  /** Background propagation: dependents whose every owner is gone are deleted. */
  private collectDependents(uid: string): void {
    const live = new Set([...this.objects.values()].map((o) => o.metadata.uid));
    for (const o of [...this.objects.values()]) {
      const refs = o.metadata.ownerReferences ?? [];
      if (!refs.some((r) => r.uid === uid)) continue;
      if (refs.some((r) => live.has(r.uid))) continue;
      if (o.metadata.deletionTimestamp !== undefined) continue;
      this.delete(refOf(o), 'Background');
    }
  }
}

/** The object without fields the server owns (for ownership bookkeeping). */
function stripSystem(o: Json): Json {
  const out = clone(o);
  const meta = isObj(out['metadata']) ? { ...out['metadata'] } : {};
  for (const k of [
    'uid',
    'resourceVersion',
    'generation',
    'creationTimestamp',
    'deletionTimestamp',
    'managedFields',
  ]) {
    Reflect.deleteProperty(meta, k);
  }
  out['metadata'] = meta;
  return out;
}

function systemMeta(m: Meta): Partial<Meta> {
  return {
    name: m.name,
    ...(m.namespace !== undefined ? { namespace: m.namespace } : {}),
    uid: m.uid,
    resourceVersion: m.resourceVersion,
    generation: m.generation,
    creationTimestamp: m.creationTimestamp,
    ...(m.deletionTimestamp !== undefined ? { deletionTimestamp: m.deletionTimestamp } : {}),
  };
}

function withoutMetaStatus(o: KObject): Json {
  return Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'metadata' && k !== 'status'));
}

function mergeJson(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  const out: Json = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) Reflect.deleteProperty(out, k);
    else out[k] = mergeJson(out[k], v);
  }
  return out;
}
