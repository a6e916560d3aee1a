import {
  ANNOTATION_CACHE,
  ANNOTATION_CLUSTER,
  ANNOTATION_IDENTITY,
  ENV_FETCH_PLAN,
  EXIT_PERMANENT,
  FETCH_CONTAINER,
  FETCH_FILES_MOUNT,
  FETCH_VOLUME_MOUNT,
  LABEL_COMPONENT,
  LABEL_MANAGED_BY,
  MANAGED_BY,
  RUN_AS_ID,
} from '../constants.js';
import type { FunctionInput } from '../api/input.js';
import { FETCH_PLAN_VERSION, type FetchPlan } from '../contract/plan.js';
import { providerObject, type Json, type ManagementPolicy } from '../k8s/object.js';
import type { CacheModel, ClusterView } from './model.js';

/** Bytes per GiB: sizeGiB is a whole number of these. */
export const GIB = 1024 ** 3;
/** inline and configMap artifacts are small; the smallest claim is plenty. */
export const LOCAL_SOURCE_SIZE_GIB = 1;

const PVC_BOUND_CEL = 'object.status.phase == "Bound"';
/** Kubernetes' finalizer for foreground deletion (metav1.FinalizerDeleteDependents). */
const FOREGROUND_DELETION = 'foregroundDeletion';
const JOB_COMPLETE_CEL =
  'has(object.status.conditions) && object.status.conditions.exists(c, c.type == "Complete" && c.status == "True")';

function metadata(cache: CacheModel, cluster: ClusterView, name: string, component: string): Json {
  return {
    name,
    namespace: cache.namespace,
    labels: { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_COMPONENT]: component },
    annotations: {
      [ANNOTATION_CACHE]: `${cache.namespace}/${cache.name}`,
      [ANNOTATION_CLUSTER]: cluster.name,
    },
  };
}

/** The cache's namespace on the workload cluster: created if missing, never updated or deleted. */
export function namespaceObject(cache: CacheModel, cluster: ClusterView): Json {
  return providerObject({
    providerConfigRef: cluster.providerConfigRef,
    managementPolicies: ['Observe', 'Create'],
    manifest: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: cache.namespace } },
  });
}

export function claimSizeGiB(cache: CacheModel): number {
  return cache.spec.storage.pvc?.sizeGiB ?? LOCAL_SOURCE_SIZE_GIB;
}

/** The ReadWriteMany claim every pod of a gang mounts. */
export function pvcObject(cache: CacheModel, cluster: ClusterView, storageClassName: string): Json {
  return providerObject({
    providerConfigRef: cluster.providerConfigRef,
    readinessCel: PVC_BOUND_CEL,
    // Binding and completion are what a replica waits on: seen when they happen, not ~30 s on.
    watch: true,
    manifest: {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: metadata(cache, cluster, cache.names.claim, 'model-cache'),
      spec: {
        accessModes: ['ReadWriteMany'],
        storageClassName,
        volumeMode: 'Filesystem',
        resources: { requests: { storage: `${claimSizeGiB(cache)}Gi` } },
      },
    },
  });
}

/**
 * The credential Secret on the workload cluster. Its values are patched in by
 * provider-kubernetes from the control-plane Secret; the Function only names it.
 */
export function credentialsObject(cache: CacheModel, cluster: ClusterView): Json | undefined {
  const creds = cache.parts.credentials;
  if (!creds) return undefined;
  return providerObject({
    providerConfigRef: cluster.providerConfigRef,
    manifest: {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: metadata(cache, cluster, cache.names.secret, 'prefetch-credentials'),
      type: 'Opaque',
    },
    patchesFrom: creds.copies.map((c) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      name: creds.secretName,
      namespace: cache.namespace,
      fieldPath: c.fieldPath,
      toFieldPath: c.toFieldPath,
    })),
  });
}

/** The ConfigMap inline and configMap sources reach the Job through. */
export function filesObject(cache: CacheModel, cluster: ClusterView): Json | undefined {
  const files = cache.parts.files;
  if (!files) return undefined;
  const meta = metadata(cache, cluster, cache.names.files, 'prefetch-files');
  switch (files.from) {
    case 'inline':
      return providerObject({
        providerConfigRef: cluster.providerConfigRef,
        manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta, data: files.data },
      });
    case 'configMap':
      return providerObject({
        providerConfigRef: cluster.providerConfigRef,
        manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta },
        patchesFrom: [
          {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            name: files.name,
            namespace: cache.namespace,
            fieldPath: 'data',
            toFieldPath: 'data',
          },
        ],
      });
    default: {
      const unreachable: never = files;
      return unreachable;
    }
  }
}

/**
 * The fetch program's verbs on its own Job: `patch` merge-patches its progress annotations
 * (fetch/reporter.ts); `get` reads back its podReplacementPolicy before it trusts an earlier
 * pod of the Job to have stopped (fetch/pods.ts).
 */
export const REPORTER_VERBS = ['get', 'patch'];

/**
 * The prefetch Job's ServiceAccount, a Role allowing exactly its own Job to be read (`get`) and
 * annotated (`patch`: progress, resolved revision, error), and the binding between them.
 */
export function reporterObjects(cache: CacheModel, cluster: ClusterView): Json[] {
  const name = cache.names.reporter;
  const meta = metadata(cache, cluster, name, 'prefetch');
  const wrap = (manifest: Json): Json =>
    providerObject({ providerConfigRef: cluster.providerConfigRef, manifest });
  return [
    wrap({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: meta,
      automountServiceAccountToken: false,
    }),
    wrap({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: meta,
      rules: [
        {
          apiGroups: ['batch'],
          resources: ['jobs'],
          resourceNames: [cache.names.job],
          verbs: REPORTER_VERBS,
        },
      ],
    }),
    wrap({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: meta,
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: cache.namespace }],
    }),
  ];
}

/** The plan the Job's fetch program executes; JSON in its environment, no secrets. */
export function fetchPlanFor(cache: CacheModel): FetchPlan {
  const plan: FetchPlan = {
    version: FETCH_PLAN_VERSION,
    identity: cache.identity,
    artifactKind: cache.spec.artifact.kind,
    source: cache.parts.plan,
    targetDir: FETCH_VOLUME_MOUNT,
    report: { namespace: cache.namespace, jobName: cache.names.job },
  };
  if (cache.spec.storage.backend === 'PVC') plan.capacityBytes = claimSizeGiB(cache) * GIB;
  return plan;
}

const HARDENED_CONTAINER = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

/**
 * The one-shot prefetch Job: the project's own fetch program from the project's own
 * image, exec form (no shell), hardened pod, bounded by a deadline and a retry budget.
 */
export function jobObject(
  cache: CacheModel,
  cluster: ClusterView,
  input: FunctionInput,
  managementPolicies?: ManagementPolicy[],
): Json {
  const fetch = input.fetch;
  const volumes: Json[] = [
    { name: 'cache', persistentVolumeClaim: { claimName: cache.names.claim } },
    // The root filesystem is read-only; the program's scratch space is this.
    { name: 'tmp', emptyDir: { sizeLimit: '1Gi' } },
  ];
  const mounts: Json[] = [
    { name: 'cache', mountPath: FETCH_VOLUME_MOUNT },
    { name: 'tmp', mountPath: '/tmp' },
  ];
  const files = cache.parts.files;
  if (files) {
    volumes.push({
      name: 'files',
      configMap: { name: cache.names.files, ...(files.items ? { items: files.items } : {}) },
    });
    mounts.push({ name: 'files', mountPath: FETCH_FILES_MOUNT, readOnly: true });
  }
  const env: Json[] = [
    { name: ENV_FETCH_PLAN, value: JSON.stringify(fetchPlanFor(cache)) },
    ...(cache.parts.credentials?.env ?? []),
  ];
  const meta = metadata(cache, cluster, cache.names.job, 'prefetch');
  (meta['annotations'] as Record<string, string>)[ANNOTATION_IDENTITY] = cache.identity;
  // provider-kubernetes (v1.2) deletes with no propagation policy, and a batch/v1 Job's default
  // is to orphan its pods: a running orphan would keep its credentials. A Job carrying this
  // finalizer is deleted in the foreground instead (the API server lets an object's own
  // finalizer override the type's default): its pods go first.
  meta['finalizers'] = [FOREGROUND_DELETION];
  const podLabels = { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_COMPONENT]: 'prefetch' };
  return providerObject({
    providerConfigRef: cluster.providerConfigRef,
    ...(managementPolicies ? { managementPolicies } : {}),
    readinessCel: JOB_COMPLETE_CEL,
    watch: true,
    manifest: {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: meta,
      spec: {
        backoffLimit: fetch.backoffLimit,
        // A retry's pod starts only once the one before it has Failed, never beside one still
        // terminating: then an earlier pod's volume lock is known to be free (fetch/pods.ts)
        // and the next pod resumes at once instead of waiting out the lock's heartbeat.
        podReplacementPolicy: 'Failed',
        // A failure the next pod would meet again (a 404, a refused credential) fails the Job
        // at once rather than after backoffLimit pods and minutes of backoff; a pod evicted or
        // preempted (DisruptionTarget) is not the fetch's fault and does not use up a retry.
        podFailurePolicy: {
          rules: [
            {
              action: 'FailJob',
              onExitCodes: {
                containerName: FETCH_CONTAINER,
                operator: 'In',
                values: [EXIT_PERMANENT],
              },
            },
            { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
          ],
        },
        // The deadline is the pod's, not the Job's: a Job's runs from its creation, so a claim
        // that binds late would use it up before the first byte moved. A pod's runs once it is
        // started, after its claim is bound; each retry gets its own.
        template: {
          metadata: { labels: podLabels },
          spec: {
            restartPolicy: 'Never',
            activeDeadlineSeconds: fetch.activeDeadlineSeconds,
            // The token is mounted for this pod only: its Role allows nothing but its own Job.
            serviceAccountName: cache.names.reporter,
            automountServiceAccountToken: true,
            enableServiceLinks: false,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: RUN_AS_ID,
              runAsGroup: RUN_AS_ID,
              fsGroup: RUN_AS_ID,
              fsGroupChangePolicy: 'OnRootMismatch',
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name: FETCH_CONTAINER,
                image: fetch.image,
                imagePullPolicy: fetch.imagePullPolicy,
                command: fetch.command,
                env,
                volumeMounts: mounts,
                resources: fetch.resources,
                securityContext: HARDENED_CONTAINER,
                terminationMessagePolicy: 'FallbackToLogsOnError',
              },
            ],
            volumes,
          },
        },
      },
    },
  });
}
