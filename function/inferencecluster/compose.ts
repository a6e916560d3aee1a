import { functionInput } from '../api/input.js';
import { inferenceClusterSpec } from '../api/inferencecluster.js';
import {
  CONDITION_STORAGE_CLASS_FOUND,
  REASON_CLASS_FOUND,
  REASON_CLASS_NOT_FOUND,
  REASON_CLASS_NOT_SET,
  REASON_CLASS_UNKNOWN,
} from '../constants.js';
import {
  describeIssues,
  type CoreCondition,
  type CoreEvent,
  type CoreRequest,
  type CoreResult,
} from '../core.js';
import {
  at,
  conditionsAt,
  providerObject,
  remoteManifest,
  stringAt,
  type Json,
} from '../k8s/object.js';

/** Composition resource name of the Object that observes the cluster's StorageClass. */
export const STORAGE_CLASS_KEY = 'storage-class';

/** crossplane-runtime's message for an Observe-only resource whose external object is absent. */
const NOT_EXIST_MESSAGE = 'external resource does not exist';

type ClassState = { exists: true; provisioner: string | undefined } | { exists: false } | undefined;

function observeClass(observedObject: Json | undefined): ClassState {
  if (observedObject === undefined) return undefined;
  const manifest = remoteManifest(observedObject);
  if (manifest !== undefined)
    return { exists: true, provisioner: stringAt(manifest, 'provisioner') };
  const synced = conditionsAt(observedObject, 'status', 'conditions').find(
    (c) => c.type === 'Synced',
  );
  if (synced?.status === 'False' && (synced.message ?? '').includes(NOT_EXIST_MESSAGE)) {
    return { exists: false };
  }
  return undefined;
}

/**
 * The InferenceCluster core: report the effective provider config and storage class, and
 * observe (never manage) the StorageClass on the workload cluster.
 */
export function composeInferenceCluster(req: CoreRequest): CoreResult {
  const input = functionInput.safeParse(req.input ?? {});
  if (!input.success)
    return { fatal: `invalid function input: ${describeIssues('input', input.error)}` };
  const parsed = inferenceClusterSpec.safeParse(req.composite['spec']);
  if (!parsed.success)
    return { fatal: `invalid InferenceCluster: ${describeIssues('spec', parsed.error)}` };
  const spec = parsed.data;
  const className = spec.storage?.storageClassName;
  const resources: Record<string, Json> = {};
  let condition: CoreCondition;
  const storage: Json = {};
  if (className === undefined) {
    condition = {
      type: CONDITION_STORAGE_CLASS_FOUND,
      status: 'False',
      reason: REASON_CLASS_NOT_SET,
      message:
        'spec.storage.storageClassName is not set: caches on this cluster fail with NoRWXStorageClass unless they name a class',
    };
  } else {
    storage['storageClassName'] = className;
    const obj = providerObject({
      providerConfigRef: spec.providerConfigRef,
      managementPolicies: ['Observe'],
      manifest: {
        apiVersion: 'storage.k8s.io/v1',
        kind: 'StorageClass',
        metadata: { name: className },
      },
    });
    // The XR is cluster-scoped and Objects are namespaced: the namespace must be explicit.
    obj['metadata'] = { namespace: input.data.inferenceClusterNamespace };
    resources[STORAGE_CLASS_KEY] = obj;
    const state = observeClass(req.observed[STORAGE_CLASS_KEY]);
    if (state === undefined) {
      condition = {
        type: CONDITION_STORAGE_CLASS_FOUND,
        status: 'Unknown',
        reason: REASON_CLASS_UNKNOWN,
        message: `StorageClass ${className} has not been observed on the cluster yet`,
      };
    } else if (state.exists) {
      storage['classExists'] = true;
      if (state.provisioner !== undefined) storage['provisioner'] = state.provisioner;
      condition = {
        type: CONDITION_STORAGE_CLASS_FOUND,
        status: 'True',
        reason: REASON_CLASS_FOUND,
        message: `StorageClass ${className} exists${state.provisioner !== undefined ? ` (provisioner ${state.provisioner})` : ''}`,
      };
    } else {
      storage['classExists'] = false;
      condition = {
        type: CONDITION_STORAGE_CLASS_FOUND,
        status: 'False',
        reason: REASON_CLASS_NOT_FOUND,
        message: `StorageClass ${className} does not exist on the cluster: caches here fail with NoRWXStorageClass`,
      };
    }
  }
  const previousReason = conditionsAt(req.composite, 'status', 'conditions').find(
    (c) => c.type === CONDITION_STORAGE_CLASS_FOUND,
  )?.reason;
  const events: CoreEvent[] =
    previousReason === condition.reason
      ? []
      : [
          {
            severity: condition.reason === REASON_CLASS_NOT_FOUND ? 'Warning' : 'Normal',
            reason: condition.reason,
            message: condition.message,
          },
        ];
  const status: Json = {
    providerConfigRef: { kind: spec.providerConfigRef.kind, name: spec.providerConfigRef.name },
  };
  if (Object.keys(storage).length > 0) status['storage'] = storage;
  return {
    resources,
    status,
    ready: className === undefined || at(storage, 'classExists') === true,
    conditions: [condition],
    events,
    requirements: {},
    ttlSeconds: input.data.ttlSeconds,
  };
}
