import { OBJECT_API_VERSION, OBJECT_KIND } from '../constants.js';
import type { ProviderConfigRef } from '../api/inferencecluster.js';

/** A JSON object as it crosses the protobuf Struct boundary. */
export type Json = Record<string, unknown>;

/** provider-kubernetes management policies; leaving out Delete orphans the remote object. */
export type ManagementPolicy = 'Observe' | 'Create' | 'Update' | 'Delete' | 'LateInitialize' | '*';

/** A value provider-kubernetes copies from a control-plane object into the manifest. */
export interface PatchFrom {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  fieldPath: string;
  toFieldPath: string;
}

export interface ObjectOptions {
  providerConfigRef: ProviderConfigRef;
  manifest: Json;
  managementPolicies?: ManagementPolicy[];
  /** CEL over `object` (the observed remote object); absent: ready once created. */
  readinessCel?: string;
  patchesFrom?: PatchFrom[];
  /**
   * Ask provider-kubernetes to watch the remote object (spec.watch): with its --enable-watches
   * the change is seen at once instead of at its next re-observe (~30 s for an unready Object).
   * Without that flag the field is ignored.
   */
  watch?: boolean;
}

/** A provider-kubernetes Object wrapping one remote manifest on a workload cluster. */
export function providerObject(opts: ObjectOptions): Json {
  const spec: Json = {
    forProvider: { manifest: opts.manifest },
    providerConfigRef: { kind: opts.providerConfigRef.kind, name: opts.providerConfigRef.name },
  };
  if (opts.managementPolicies) spec['managementPolicies'] = opts.managementPolicies;
  if (opts.watch === true) spec['watch'] = true;
  if (opts.readinessCel !== undefined) {
    spec['readiness'] = { policy: 'DeriveFromCelQuery', celQuery: opts.readinessCel };
  }
  if (opts.patchesFrom && opts.patchesFrom.length > 0) {
    spec['references'] = opts.patchesFrom.map((p) => ({
      patchesFrom: {
        apiVersion: p.apiVersion,
        kind: p.kind,
        name: p.name,
        namespace: p.namespace,
        fieldPath: p.fieldPath,
      },
      toFieldPath: p.toFieldPath,
    }));
  }
  return { apiVersion: OBJECT_API_VERSION, kind: OBJECT_KIND, spec };
}

/** Narrow an unknown value to a JSON object. */
export function asJson(value: unknown): Json | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Json)
    : undefined;
}

/** Follow a path of keys through nested JSON objects. */
export function at(value: unknown, ...path: string[]): unknown {
  let cur: unknown = value;
  for (const key of path) {
    const obj = asJson(cur);
    if (obj === undefined) return undefined;
    cur = obj[key];
  }
  return cur;
}

export function stringAt(value: unknown, ...path: string[]): string | undefined {
  const v = at(value, ...path);
  return typeof v === 'string' ? v : undefined;
}

/** A Kubernetes-style condition as observed on any object. */
export interface ObservedCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export function conditionsAt(value: unknown, ...path: string[]): ObservedCondition[] {
  const v = at(value, ...path);
  if (!Array.isArray(v)) return [];
  return v.flatMap((c) => {
    const type = stringAt(c, 'type');
    const status = stringAt(c, 'status');
    if (type === undefined || status === undefined) return [];
    const cond: ObservedCondition = { type, status };
    const reason = stringAt(c, 'reason');
    const message = stringAt(c, 'message');
    if (reason !== undefined) cond.reason = reason;
    if (message !== undefined) cond.message = message;
    return [cond];
  });
}

/** The remote object provider-kubernetes last observed, status included. */
export function remoteManifest(observedObject: unknown): Json | undefined {
  return asJson(at(observedObject, 'status', 'atProvider', 'manifest'));
}

/** True when the object's status lists a condition of this type with this status. */
function hasCondition(observedObject: unknown, type: string, status: string): boolean {
  return conditionsAt(observedObject, 'status', 'conditions').some(
    (c) => c.type === type && c.status === status,
  );
}

/** True when provider-kubernetes reports the Object Ready (its readiness policy passed). */
export function objectReady(observedObject: unknown): boolean {
  return hasCondition(observedObject, 'Ready', 'True');
}

/** True when the Object reports it cannot sync (e.g. a referenced Secret is missing). */
export function objectSyncFailed(observedObject: unknown): boolean {
  return hasCondition(observedObject, 'Synced', 'False');
}

/**
 * Desired state that keeps an observed Object exactly as it is. Used when the inputs
 * needed to recompute it are briefly missing: dropping it would delete the remote object.
 * Status and server-set metadata are left out; only what a composer owns is echoed.
 */
export function holdObserved(observedObject: unknown): Json | undefined {
  const obj = asJson(observedObject);
  const spec = asJson(obj?.['spec']);
  const apiVersion = obj?.['apiVersion'];
  const kind = obj?.['kind'];
  if (spec === undefined || typeof apiVersion !== 'string' || typeof kind !== 'string') {
    return undefined;
  }
  const held: Json = { apiVersion, kind, spec };
  const name = stringAt(obj, 'metadata', 'name');
  if (name !== undefined) held['metadata'] = { name };
  return held;
}
