// Objects as the API server stores and returns them: the metadata it and Crossplane add
// (uid, resourceVersion, owner reference, finalizer, labels, annotations) and managedFields.
// Crossplane reads observed resources from its informer cache without stripping managedFields
// (crossplane v2.3.4 sets no cache transform), so they travel in every RunFunctionRequest, and
// they are part of what etcd stores. Fixtures leave all of this out; benchmarks that count bytes
// must not.
import { createHash } from 'node:crypto';

import type { Json } from '../../function/k8s/object.js';

const TIME = '2026-06-08T00:00:00Z';

export function uidOf(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * The list fields the API server merges by key (x-kubernetes-list-type: map, or a set); every
 * other list is atomic and is owned whole (`f:list: {}`).
 */
const LIST_KEYS: Record<string, string> = {
  conditions: 'type',
  clusters: 'name',
  ownerReferences: 'uid',
};

/** A managedFields `fieldsV1` tree for the fields `value` sets, as structured-merge-diff writes it. */
export function fieldsV1(value: Json): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    const key = LIST_KEYS[k];
    if (Array.isArray(v) && key !== undefined) {
      const items: Json = {};
      for (const item of v as Json[]) {
        items[`k:${JSON.stringify({ [key]: item[key] })}`] = { '.': {}, ...fieldsV1(item) };
      }
      out[`f:${k}`] = items;
    } else if (k === 'finalizers' && Array.isArray(v)) {
      out[`f:${k}`] = Object.fromEntries(
        (v as string[]).map((s) => [`v:${JSON.stringify(s)}`, {}]),
      );
    } else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      out[`f:${k}`] = fieldsV1(v as Json);
    } else {
      out[`f:${k}`] = {};
    }
  }
  return out;
}

export interface Owner {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

export interface StoreOptions {
  /** Absent for a cluster-scoped object. */
  namespace?: string;
  /** The XR that composed this object (its controller), when it is a composed resource. */
  owner?: Owner;
  /** The composition-resource-name annotation: the key the Function composed it under. */
  resourceName?: string;
  /** A composite resource: Crossplane's finalizer and its spec.crossplane fields. */
  crossplane?: Json;
  /** Who writes the status: a composite's is applied by Crossplane, a managed resource's updated by its provider. */
  statusManager?: { manager: string; operation: 'Apply' | 'Update' };
}

/** `obj` as the API server returns it after Crossplane created it and its status was written. */
export function stored(obj: Json, opts: StoreOptions): Json {
  const meta = (obj['metadata'] ?? {}) as Json;
  const name = String(meta['name']);
  const applied: Json = {
    ...(opts.owner ? { labels: { 'crossplane.io/composite': opts.owner.name } } : {}),
    ...(opts.resourceName
      ? { annotations: { 'crossplane.io/composition-resource-name': opts.resourceName } }
      : {}),
    ...(opts.owner
      ? {
          ownerReferences: [{ ...opts.owner, controller: true, blockOwnerDeletion: true }],
        }
      : {}),
  };
  const metadata: Json = {
    ...meta,
    name,
    ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
    uid: uidOf(`${opts.namespace ?? ''}/${name}/${String(obj['kind'])}`),
    resourceVersion: '48213977',
    generation: 1,
    creationTimestamp: TIME,
    ...mergeMeta(meta, applied),
    ...(opts.crossplane ? { finalizers: ['composite.apiextensions.crossplane.io'] } : {}),
  };
  const spec = (obj['spec'] ?? {}) as Json;
  const status = obj['status'] as Json | undefined;
  const entry = (manager: string, operation: string, fields: Json, subresource?: string): Json => ({
    manager,
    operation,
    apiVersion: String(obj['apiVersion']),
    time: TIME,
    fieldsType: 'FieldsV1',
    fieldsV1: fields,
    ...(subresource !== undefined ? { subresource } : {}),
  });
  const managedFields: Json[] = [];
  if (opts.owner) {
    managedFields.push(
      entry(
        `apiextensions.crossplane.io/composed/${opts.owner.uid.slice(0, 8)}`,
        'Apply',
        fieldsV1({ metadata: mergeMeta(meta, applied), spec }),
      ),
    );
  }
  if (opts.crossplane) {
    managedFields.push(
      entry(
        'crossplane',
        'Update',
        fieldsV1({
          metadata: { finalizers: ['composite.apiextensions.crossplane.io'] },
          spec: { crossplane: opts.crossplane },
        }),
      ),
    );
  }
  if (status !== undefined && opts.statusManager) {
    managedFields.push(
      entry(
        opts.statusManager.manager,
        opts.statusManager.operation,
        fieldsV1({ status }),
        'status',
      ),
    );
  }
  return {
    ...obj,
    metadata: { ...metadata, managedFields: managedFields },
    spec: opts.crossplane ? { ...spec, crossplane: opts.crossplane } : spec,
    ...(status !== undefined ? { status } : {}),
  };
}

function mergeMeta(meta: Json, applied: Json): Json {
  const out: Json = {};
  for (const k of ['labels', 'annotations'] as const) {
    const merged = { ...((meta[k] ?? {}) as Json), ...((applied[k] ?? {}) as Json) };
    if (Object.keys(merged).length > 0) out[k] = merged;
  }
  if (applied['ownerReferences'] !== undefined) out['ownerReferences'] = applied['ownerReferences'];
  return out;
}

/** Crossplane's resourceRef to a composed resource (namespaced XR: no namespace, no uid). */
export function resourceRef(composed: Json): Json {
  return {
    apiVersion: String(composed['apiVersion']),
    kind: String(composed['kind']),
    name: String((composed['metadata'] as Json)['name']),
  };
}

/** Crossplane's own conditions on a composite, beside the Function's. */
export function crossplaneConditions(ready: boolean): Json[] {
  return [
    {
      type: 'Synced',
      status: 'True',
      reason: 'ReconcileSuccess',
      lastTransitionTime: TIME,
      observedGeneration: 1,
    },
    {
      type: 'Ready',
      status: ready ? 'True' : 'False',
      reason: ready ? 'Available' : 'Creating',
      lastTransitionTime: TIME,
      observedGeneration: 1,
    },
  ];
}

/** Crossplane's spec.crossplane of a composite XR with these composed resources. */
export function crossplaneSpec(composition: string, composed: Json[]): Json {
  return {
    compositionRef: { name: composition },
    compositionRevisionRef: { name: `${composition}-6f1c2ab` },
    compositionUpdatePolicy: 'Automatic',
    resourceRefs: composed
      .map(resourceRef)
      .sort((a, b) =>
        `${String(a['apiVersion'])}${String(a['kind'])}${String(a['name'])}`.localeCompare(
          `${String(b['apiVersion'])}${String(b['kind'])}${String(b['name'])}`,
        ),
      ),
  };
}
